// The instant-query client against a hand-written stand-in for Prometheus on loopback: each answer
// shape, each error kind (never quoting the server's body), the timeout, a closed port, the outcome callback.
import { expect } from 'chai';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import {
  PrometheusClient,
  type PrometheusErrorKind,
  type QueryOutcome,
  type QueryResult,
} from '../../src/analysis/prometheus-client.js';
import { MAX_SOCKETS, prometheusAgent } from '../../src/analysis/prometheus-transport.js';
import { freePort, LOOPBACK } from '../../src/sandbox/free-port.js';

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;

interface Received {
  method: string | undefined;
  path: string | undefined;
  contentType: string | undefined;
  form: URLSearchParams;
}

function expectError(result: QueryResult, kind: PrometheusErrorKind) {
  if (result.ok) throw new Error(`expected a ${kind} error, got ${JSON.stringify(result.data)}`);
  expect(result.error.kind, result.error.message).to.equal(kind);
  return result.error;
}

/** What a hostile or broken server writes, which must never reach a message (status, Events). */
const SERVER_TEXT = 'EVIL <script>alert(1)</script> click http://phish.example';

function expectData(result: QueryResult) {
  if (!result.ok) throw new Error(`expected data, got ${result.error.kind}: ${result.error.message}`);
  return result;
}

const json = (res: ServerResponse, status: number, body: unknown) =>
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));

describe('prometheus client', () => {
  let server: Server;
  let address: string;
  let handler: Handler;
  let received: Received[];

  before(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        received.push({
          method: req.method,
          path: req.url,
          contentType: req.headers['content-type'],
          form: new URLSearchParams(body),
        });
        handler(req, body, res);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, LOOPBACK, resolve));
    const port = (server.address() as { port: number }).port;
    address = `http://${LOOPBACK}:${port}`;
  });
  beforeEach(() => {
    received = [];
  });
  afterEach(() => {
    // A handler that never answers leaves its connection open; end it so the next test starts clean.
    server.closeAllConnections();
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('POSTs the query and time form-encoded to /api/v1/query and returns a vector', async () => {
    const result = [{ metric: { destination_name: 'canary' }, value: [1700000000.5, '99.5'] }];
    handler = (_req, _body, res) =>
      json(res, 200, { status: 'success', data: { resultType: 'vector', result }, warnings: ['w'] });
    const client = new PrometheusClient({ address: `${address}/` });
    const answer = expectData(
      await client.query('sum(rate(x{a="b c"}[5s])) * 100', { time: new Date(1700000000500) }),
    );
    expect(answer.data).to.deep.equal({ resultType: 'vector', result });
    expect(answer.warnings).to.deep.equal(['w']);
    const [req] = received;
    expect(req?.method).to.equal('POST');
    expect(req?.path).to.equal('/api/v1/query');
    expect(req?.contentType).to.equal('application/x-www-form-urlencoded');
    expect(req?.form.get('query')).to.equal('sum(rate(x{a="b c"}[5s])) * 100');
    expect(req?.form.get('time')).to.equal('1700000000.5');
  });

  it('keeps a path prefix in the address and omits time when none is given', async () => {
    handler = (_req, _body, res) =>
      json(res, 200, { status: 'success', data: { resultType: 'scalar', result: [1, '1'] } });
    const answer = expectData(await new PrometheusClient({ address: `${address}/prom` }).query('1'));
    expect(answer.data).to.deep.equal({ resultType: 'scalar', result: [1, '1'] });
    expect(answer.warnings).to.deep.equal([]);
    expect(received[0]?.path).to.equal('/prom/api/v1/query');
    expect(received[0]?.form.has('time')).to.equal(false);
  });

  for (const data of [
    { resultType: 'scalar', result: [1, 'NaN'] },
    { resultType: 'string', result: [1, 'hello'] },
    { resultType: 'vector', result: [] },
    {
      resultType: 'matrix',
      result: [
        {
          metric: { a: 'b' },
          values: [
            [1, '1'],
            [2, '+Inf'],
          ],
        },
      ],
    },
  ]) {
    it(`returns a ${data.resultType} result as sent`, async () => {
      handler = (_req, _body, res) => json(res, 200, { status: 'success', data });
      expect(expectData(await new PrometheusClient({ address }).query('q')).data).to.deep.equal(data);
    });
  }

  it("reports 400 bad_data as a 'query' error with Prometheus's errorType, its error only in detail", async () => {
    handler = (_req, _body, res) =>
      json(res, 400, {
        status: 'error',
        errorType: 'bad_data',
        error: 'invalid parameter "query": 1:5: parse error: unclosed left parenthesis',
      });
    const error = expectError(await new PrometheusClient({ address }).query('sum('), 'query');
    expect(error.status).to.equal(400);
    expect(error.errorType).to.equal('bad_data');
    expect(error.message).to.equal(`Prometheus at ${address} rejected the query (bad_data, HTTP 400)`);
    expect(error.detail).to.include('unclosed left parenthesis');
  });

  it("reports 422 execution as a 'query' error", async () => {
    handler = (_req, _body, res) =>
      json(res, 422, { status: 'error', errorType: 'execution', error: SERVER_TEXT });
    const error = expectError(await new PrometheusClient({ address }).query('x'), 'query');
    expect(error.status).to.equal(422);
    expect(error.message).to.equal(`Prometheus at ${address} rejected the query (execution, HTTP 422)`);
    expect(error.detail).to.equal(SERVER_TEXT);
  });

  it('keeps an errorType only from the API vocabulary; any other is the server text, only in detail', async () => {
    handler = (_req, _body, res) => json(res, 500, { status: 'error', errorType: SERVER_TEXT, error: 'e' });
    const error = expectError(await new PrometheusClient({ address }).query('x'), 'http');
    expect(error).to.not.have.property('errorType');
    expect(error.message).to.equal(`Prometheus at ${address} failed the query (HTTP 500)`);
    expect(error.detail).to.equal(`errorType ${SERVER_TEXT}: e`);
  });

  it('cuts the detail to one line of 200 characters', async () => {
    handler = (_req, _body, res) =>
      res.writeHead(502, { 'content-type': 'text/plain' }).end(`line one\nline two ${'x'.repeat(500)}`);
    const error = expectError(await new PrometheusClient({ address }).query('x'), 'http');
    expect(error.detail).to.match(/^line one line two x+\.\.\.$/);
    expect(error.detail).to.have.length(203);
  });

  it("reports a 2xx answer with status error as a 'query' error", async () => {
    handler = (_req, _body, res) => json(res, 200, { status: 'error', errorType: 'bad_data', error: 'nope' });
    expect(expectError(await new PrometheusClient({ address }).query('x'), 'query').errorType).to.equal(
      'bad_data',
    );
  });

  it("reports 503 with Prometheus's JSON as 'http', keeping errorType, its error only in detail", async () => {
    handler = (_req, _body, res) =>
      json(res, 503, { status: 'error', errorType: 'unavailable', error: 'TSDB not ready' });
    const error = expectError(await new PrometheusClient({ address }).query('x'), 'http');
    expect(error.status).to.equal(503);
    expect(error.errorType).to.equal('unavailable');
    expect(error.message).to.equal(`Prometheus at ${address} failed the query (unavailable, HTTP 503)`);
    expect(error.detail).to.equal('TSDB not ready');
  });

  it("reports a plain-text 503 (a proxy in front) as 'http': the status and address, the body only in detail", async () => {
    handler = (_req, _body, res) =>
      res.writeHead(503, { 'content-type': 'text/plain' }).end(`${SERVER_TEXT}\n`);
    const error = expectError(await new PrometheusClient({ address }).query('x'), 'http');
    expect(error.status).to.equal(503);
    expect(error).to.not.have.property('errorType');
    expect(error.message).to.equal(`HTTP 503 from ${address}`);
    expect(error.detail).to.equal(SERVER_TEXT);
  });

  it("reports a 404 (a wrong path prefix) as 'http' without its page", async () => {
    handler = (_req, _body, res) => res.writeHead(404, { 'content-type': 'text/html' }).end(SERVER_TEXT);
    const error = expectError(await new PrometheusClient({ address: `${address}/wrong` }).query('x'), 'http');
    expect(error.message).to.equal(`HTTP 404 from ${address}/wrong`);
  });

  it("reports a 200 that is not JSON as 'bad-response', without its page", async () => {
    handler = (_req, _body, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(SERVER_TEXT);
    const error = expectError(await new PrometheusClient({ address }).query('x'), 'bad-response');
    expect(error.message).to.equal(`Prometheus at ${address} answered 200 without the Prometheus API's JSON`);
    expect(error.detail).to.equal(SERVER_TEXT);
  });

  for (const [what, body] of [
    [
      'a status that is not success',
      { status: SERVER_TEXT, data: { resultType: 'scalar', result: [1, '1'] } },
    ],
    ['no data', { status: 'success' }],
    ['an unknown resultType', { status: 'success', data: { resultType: SERVER_TEXT, result: [] } }],
    ['a scalar that is not a pair', { status: 'success', data: { resultType: 'scalar', result: ['1'] } }],
    ['a number value', { status: 'success', data: { resultType: 'scalar', result: [1, 1] } }],
    [
      'a vector sample without value',
      { status: 'success', data: { resultType: 'vector', result: [{ metric: {} }] } },
    ],
    [
      'non-string labels',
      { status: 'success', data: { resultType: 'vector', result: [{ metric: { a: 1 }, value: [1, '1'] }] } },
    ],
    [
      'a matrix without values',
      { status: 'success', data: { resultType: 'matrix', result: [{ metric: {} }] } },
    ],
    ['a JSON array', [1, 2]],
  ] as const) {
    it(`reports ${what} as 'bad-response', quoting nothing the server sent`, async () => {
      handler = (_req, _body, res) => json(res, 200, body);
      const error = expectError(await new PrometheusClient({ address }).query('x'), 'bad-response');
      expect(error.message).to.match(new RegExp(`^Prometheus at ${address} answered 200 (with|without) `));
      expect(error.message).to.not.include('EVIL');
    });
  }

  it("reports a server that accepts but never answers as 'timeout' within the configured timeout", async () => {
    handler = () => undefined;
    const started = Date.now();
    const error = expectError(await new PrometheusClient({ address, timeoutMs: 300 }).query('x'), 'timeout');
    const elapsed = Date.now() - started;
    expect(elapsed).to.be.at.least(290).and.below(1500);
    expect(error.message).to.include('300 ms');
  });

  it("reports a server that stalls mid-body as 'timeout'", async () => {
    handler = (_req, _body, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"status":"success","data":');
    };
    expectError(await new PrometheusClient({ address, timeoutMs: 300 }).query('x'), 'timeout');
  });

  it("reports a closed port as 'unreachable', naming the address", async () => {
    const closed = `http://${LOOPBACK}:${await freePort()}`;
    const error = expectError(await new PrometheusClient({ address: closed }).query('x'), 'unreachable');
    expect(error.message).to.include(closed).and.include('ECONNREFUSED');
  });

  it("reports a name that does not resolve as 'unreachable'", async () => {
    const dnsFailure: typeof fetch = () =>
      Promise.reject(
        new TypeError('fetch failed', {
          cause: Object.assign(new Error('getaddrinfo ENOTFOUND prometheus.monitoring'), {
            code: 'ENOTFOUND',
          }),
        }),
      );
    const client = new PrometheusClient({ address: 'http://prometheus.monitoring:9090', fetch: dnsFailure });
    expect(expectError(await client.query('x'), 'unreachable').message).to.include('ENOTFOUND');
  });

  it('sends the queries of clients sharing an agent over at most MAX_SOCKETS connections, kept for the next', async () => {
    let connections = 0;
    const count = () => connections++;
    server.on('connection', count);
    try {
      // Answers come a little later, so every query of a round is in flight at once.
      handler = (_req, _body, res) =>
        setTimeout(
          () => json(res, 200, { status: 'success', data: { resultType: 'scalar', result: [1, '1'] } }),
          10,
        );
      const agent = prometheusAgent(address);
      const clients = [1000, 2000].map((timeoutMs) => new PrometheusClient({ address, timeoutMs, agent }));
      const round = () => Promise.all(Array.from({ length: 100 }, (_, i) => clients[i % 2]!.query(`q${i}`)));
      const first = await round();
      expect(first.every((r) => r.ok)).to.equal(true);
      expect(received).to.have.length(100);
      expect(connections).to.be.within(1, MAX_SOCKETS);
      const opened = connections;
      expect((await round()).every((r) => r.ok)).to.equal(true);
      expect(connections, 'the second round reuses the first round’s connections').to.equal(opened);
      agent.destroy();
    } finally {
      server.off('connection', count);
    }
  });

  it("reports an address that is not a URL as 'unreachable'", async () => {
    for (const bad of ['prometheus:9090', 'ftp://prometheus:9090', '']) {
      expect(
        expectError(await new PrometheusClient({ address: bad }).query('x'), 'unreachable').message,
      ).to.include('invalid Prometheus address');
    }
  });

  it('counts every outcome through the callback', async () => {
    const outcomes: QueryOutcome[] = [];
    let answer: Handler = (_req, _body, res) =>
      json(res, 200, { status: 'success', data: { resultType: 'scalar', result: [1, '1'] } });
    handler = (req, body, res) => answer(req, body, res);
    const client = new PrometheusClient({ address, timeoutMs: 200, onOutcome: (o) => outcomes.push(o) });
    await client.query('x');
    answer = (_req, _body, res) => json(res, 400, { status: 'error', errorType: 'bad_data', error: 'e' });
    await client.query('x');
    answer = (_req, _body, res) => res.writeHead(502).end();
    await client.query('x');
    answer = (_req, _body, res) => res.writeHead(200).end('nope');
    await client.query('x');
    answer = () => undefined;
    await client.query('x');
    const closed = new PrometheusClient({
      address: `http://${LOOPBACK}:${await freePort()}`,
      onOutcome: (o) => outcomes.push(o),
    });
    await closed.query('x');
    expect(outcomes).to.deep.equal(['success', 'query', 'http', 'bad-response', 'timeout', 'unreachable']);
  });
});
