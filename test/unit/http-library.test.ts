// The API clients' transport (src/k8s/http-library.ts) and the shared request deadlines of client-config:
// a loopback HTTP server stands in for the API server's socket only, as the Prometheus client's unit test does.
import { HttpMethod, RequestContext } from '@kubernetes/client-node';
import { install } from '@sinonjs/fake-timers';
import { expect } from 'chai';
import { createServer, Agent, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { apiError } from '../../src/k8s/api-error.js';
import { Deadlines } from '../../src/k8s/client-config.js';
import { sendRequest } from '../../src/k8s/http-library.js';

interface Seen {
  method?: string;
  url?: string;
  headers: IncomingMessage['headers'];
  body: string;
}

describe('API transport (sendRequest)', () => {
  let server: Server;
  let base: string;
  let seen: Seen;
  const agent = new Agent({ keepAlive: true });
  before(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen = { method: req.method, url: req.url, headers: req.headers, body };
        if (req.url?.startsWith('/slow')) return; // never answers
        res.writeHead(req.url?.startsWith('/missing') ? 404 : 201, {
          'Content-Type': 'application/json; charset=utf-8',
          'X-Two': ['a', 'b'],
        });
        res.end(JSON.stringify({ kind: 'Status', reason: 'NotFound', message: 'héllo' }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    agent.destroy();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('sends the method, URL, headers and body, and answers the status, headers and whole body', async () => {
    const req = new RequestContext(
      `${base}/apis/x/v1/namespaces/ns/things/a?fieldManager=perch`,
      HttpMethod.PATCH,
    );
    req.setHeaderParam('Content-Type', 'application/merge-patch+json');
    req.setHeaderParam('User-Agent', 'perch-controller/test');
    req.setBody('{"spec":{"é":1}}');
    req.setAgent(agent);
    const res = await sendRequest(req);
    expect(seen.method).to.equal('PATCH');
    expect(seen.url).to.equal('/apis/x/v1/namespaces/ns/things/a?fieldManager=perch');
    expect(seen.headers['user-agent']).to.equal('perch-controller/test');
    expect(seen.headers['content-type']).to.equal('application/merge-patch+json');
    expect(seen.headers['content-length']).to.equal(String(Buffer.byteLength('{"spec":{"é":1}}')));
    expect(seen.headers['accept-encoding'], 'answers stay uncompressed').to.equal(undefined);
    expect(seen.body).to.equal('{"spec":{"é":1}}');
    expect(res.httpStatusCode).to.equal(201);
    expect(res.headers['content-type']).to.equal('application/json; charset=utf-8');
    expect(res.headers['x-two']).to.equal('a, b');
    expect(JSON.parse(await res.body.text())).to.deep.include({ message: 'héllo' });
    expect((await res.body.binary()).toString()).to.contain('héllo');
  });

  it('answers an error status as a response for client-node to turn into its ApiException', async () => {
    const res = await sendRequest(new RequestContext(`${base}/missing`, HttpMethod.GET));
    expect(res.httpStatusCode).to.equal(404);
    expect(seen.method).to.equal('GET');
  });

  it('fails with an AbortError when its signal aborts, and a refused connection with Node’s error', async () => {
    const req = new RequestContext(`${base}/slow`, HttpMethod.GET);
    req.setSignal(AbortSignal.timeout(100));
    const aborted: unknown = await sendRequest(req).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((aborted as Error).name).to.equal('AbortError');
    expect(apiError(aborted)).to.include({ kind: 'transient', reason: 'Timeout' });

    const free = createServer();
    await new Promise<void>((r) => free.listen(0, '127.0.0.1', r));
    const port = (free.address() as AddressInfo).port;
    await new Promise((r) => free.close(r));
    const refused: unknown = await sendRequest(
      new RequestContext(`http://127.0.0.1:${port}/`, HttpMethod.GET),
    ).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((refused as { code?: unknown }).code).to.equal('ECONNREFUSED');
    expect(apiError(refused)).to.include({ kind: 'transient', code: 0, reason: 'NetworkError' });
  });
});

describe('request deadlines (Deadlines)', () => {
  let clock: ReturnType<typeof install>;
  beforeEach(() => (clock = install({ now: 0, toFake: ['setTimeout', 'clearTimeout', 'Date'] })));
  afterEach(() => clock.uninstall());

  it('gives requests sent within one grain one signal, aborted by TimeoutError at their latest deadline', () => {
    const d = new Deadlines();
    clock.tick(1);
    const first = d.signal(400);
    clock.tick(18); // t = 19: the same 20 ms grain (a twentieth of 400)
    expect(d.signal(400)).to.equal(first);
    clock.tick(2); // t = 21: the next grain
    const second = d.signal(400);
    expect(second).to.not.equal(first);
    clock.tick(397); // t = 418: the first request is 17 ms short of its 400, the second 3 ms short
    expect(first.aborted).to.equal(false);
    clock.tick(2); // t = 420
    expect(first.aborted).to.equal(true);
    expect((first.reason as Error).name).to.equal('TimeoutError');
    expect(second.aborted).to.equal(false);
    clock.tick(20); // t = 440: 419 after the second was sent, one grain at most past its 400
    expect(second.aborted).to.equal(true);
  });

  it('uses grains of one second at most, for the default 30 s timeout', () => {
    const d = new Deadlines();
    clock.tick(1);
    const first = d.signal(30_000);
    clock.tick(998); // t = 999
    expect(d.signal(30_000)).to.equal(first);
    clock.tick(30_000); // t = 30,999: 30,998 after the first was sent
    expect(first.aborted).to.equal(false);
    clock.tick(1); // t = 31,000: one grain at most past the first's 30 s
    expect(first.aborted).to.equal(true);
  });
});
