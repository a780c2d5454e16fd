// The sandbox mesh against the suite's real API server: HTTP and TCP routed by TrafficSplit weights,
// weight changes applied from the watch, the Host header kept, and OSM's metrics on /metrics.
import { CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import { expect } from 'chai';
import { Agent, createServer, request, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { LOOPBACK } from '../../src/sandbox/free-port.js';
import { startMesh, type Mesh, type RootEndpoint, type Route } from '../../src/sandbox/mesh/index.js';
import { sharedControlPlane, testNamespace } from '../support/control-plane.js';

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const splitResource = (version: string, namespace: string) => ({
  group: 'split.smi-spec.io',
  version,
  plural: 'trafficsplits',
  namespace,
});

interface Answer {
  status: number;
  body: string;
}

/** A demo backend: answers its own name and echoes what it was sent, counting what it served. */
interface TestBackend {
  name: string;
  port: number;
  hits: number;
  close(): Promise<void>;
}

async function startBackend(name: string): Promise<TestBackend> {
  const backend = { name, port: 0, hits: 0, close: async () => {} };
  const server: Server = createServer((req, res) => {
    let size = 0;
    req.on('data', (chunk: Buffer) => (size += chunk.length));
    req.on('end', () => {
      backend.hits++;
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ backend: name, host: req.headers.host, method: req.method, bodyBytes: size }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, LOOPBACK, resolve));
  backend.port = (server.address() as AddressInfo).port;
  backend.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return backend;
}

function get(
  url: string,
  headers: Record<string, string>,
  agent: Agent,
  body?: string,
  method = body === undefined ? 'GET' : 'POST',
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** `count` requests, `inFlight` at a time, tallied by the backend that answered (or the status). */
async function load(
  endpoint: RootEndpoint,
  count: number,
  headers: Record<string, string>,
  inFlight = 32,
): Promise<Map<string, number>> {
  const agent = new Agent({ keepAlive: true, maxSockets: inFlight });
  const tally = new Map<string, number>();
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next++;
      const answer = await get(endpoint.url, headers, agent);
      const who =
        answer.status === 200 ? (JSON.parse(answer.body) as { backend: string }).backend : answer.status;
      tally.set(String(who), (tally.get(String(who)) ?? 0) + 1);
    }
  };
  try {
    await Promise.all(Array.from({ length: inFlight }, worker));
  } finally {
    agent.destroy();
  }
  return tally;
}

/** One TCP connection through the mesh carrying one HTTP/1.0 request; the backend that answered. */
function tcpOnce(endpoint: RootEndpoint, host: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: LOOPBACK, port: endpoint.tcpPort });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('end', () => {
      const text = Buffer.concat(chunks).toString();
      const body = text.slice(text.indexOf('\r\n\r\n') + 4);
      try {
        resolve((JSON.parse(body) as { backend: string }).backend);
      } catch {
        reject(new Error(`not a backend answer: ${JSON.stringify(text)}`));
      }
    });
    socket.write(`GET / HTTP/1.0\r\nHost: ${host}\r\n\r\n`);
  });
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

async function scrape(mesh: Mesh): Promise<Sample[]> {
  const text = await (await fetch(mesh.metricsUrl)).text();
  return text
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (!m) throw new Error(`unparsable metrics line: ${line}`);
      const labels: Record<string, string> = {};
      for (const [, k, v] of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[k!] = v!;
      return { name: m[1]!, labels, value: Number(m[3]) };
    });
}

const sum = (samples: Sample[], name: string, where: Record<string, string>) =>
  samples
    .filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v))
    .reduce((total, s) => total + s.value, 0);

/** The canary's share of a route's weight, in percent. */
function canaryPercent(route: Route | undefined): number | undefined {
  if (route?.kind !== 'TrafficSplit') return undefined;
  const total = route.backends.reduce((t, b) => t + b.weight, 0);
  const canary = route.backends.find((b) => b.service === 'canary')?.weight ?? 0;
  return total > 0 ? (100 * canary) / total : undefined;
}

const share = (tally: Map<string, number>, name: string, of: number) => (100 * (tally.get(name) ?? 0)) / of;

describe('sandbox mesh routing by TrafficSplit on the real API server', function () {
  this.timeout(120_000);
  let kc: KubeConfig;
  let custom: CustomObjectsApi;
  const cleanups: (() => Promise<void>)[] = [];

  before(async () => {
    kc = (await sharedControlPlane()).kubeConfig();
    custom = kc.makeApiClient(CustomObjectsApi);
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  /** A namespace, a mesh watching it, backends stable and canary registered, and the root's listeners. */
  async function world(prefix: string) {
    const namespace = await testNamespace(kc, prefix);
    const errors: Error[] = [];
    const mesh = await startMesh(kc, { namespace, onError: (e) => errors.push(e) });
    cleanups.push(() => mesh.stop());
    const stable = await startBackend('stable');
    const canary = await startBackend('canary');
    cleanups.push(
      () => stable.close(),
      () => canary.close(),
    );
    mesh.setBackend(namespace, 'stable', { port: stable.port });
    mesh.setBackend(namespace, 'canary', { port: canary.port });
    const root = await mesh.addRoot(namespace, 'root');
    const host = `root.${namespace}.svc.cluster.local`;
    const createSplit = async (
      canaryWeight: number | string,
      stableWeight: number | string,
      version = 'v1alpha2',
    ) => {
      await custom.createNamespacedCustomObject({
        ...splitResource(version, namespace),
        body: {
          apiVersion: `split.smi-spec.io/${version}`,
          kind: 'TrafficSplit',
          metadata: { name: 'root' },
          spec: {
            service: host,
            backends: [
              { service: 'stable', weight: stableWeight },
              { service: 'canary', weight: canaryWeight },
            ],
          },
        },
      });
    };
    return { namespace, mesh, stable, canary, root, host, errors, createSplit };
  }

  it('routes 10,000 requests at 90/10 to within ±2 points, and the next 1,000 after a patch to 50/50 follow it', async () => {
    const w = await world('mesh-weights');
    await w.createSplit(10, 90);
    await w.mesh.waitForRoute(w.namespace, 'root', (r) => canaryPercent(r) === 10);

    const headers = { host: w.host, 'x-source-name': 'bookbuyer', 'x-source-namespace': 'bookbuyer' };
    const tally = await load(w.root, 10_000, headers);
    expect(tally.get('stable')! + tally.get('canary')!, JSON.stringify([...tally])).to.equal(10_000);
    const canaryShare = share(tally, 'canary', 10_000);
    console.log(`      canary share at 90/10: ${canaryShare.toFixed(2)}% (${tally.get('canary')} of 10000)`);
    expect(canaryShare).to.be.within(8, 12);
    // The backends and the mesh's own counter agree with the client.
    expect([w.stable.hits, w.canary.hits]).to.deep.equal([tally.get('stable'), tally.get('canary')]);
    const samples = await scrape(w.mesh);
    const counted = (name: string) =>
      sum(samples, 'osm_request_total', {
        source_name: 'bookbuyer',
        destination_namespace: w.namespace,
        destination_name: name,
        response_code: '200',
      });
    expect([counted('stable'), counted('canary')]).to.deep.equal([w.stable.hits, w.canary.hits]);
    expect((100 * counted('canary')) / 10_000).to.be.within(8, 12);

    // Listen before patching: the watch event may well arrive before the patch's own response.
    const applied = w.mesh.waitForRoute(w.namespace, 'root', (r) => canaryPercent(r) === 50);
    const sent = performance.now();
    await custom.patchNamespacedCustomObject(
      {
        ...splitResource('v1alpha2', w.namespace),
        name: 'root',
        body: {
          spec: {
            backends: [
              { service: 'stable', weight: 50 },
              { service: 'canary', weight: 50 },
            ],
          },
        },
      },
      mergePatch,
    );
    const answered = performance.now();
    const route = await applied;
    const afterResponse = route!.appliedAt - answered;
    const afterSend = route!.appliedAt - sent;
    console.log(
      `      weight change applied ${afterResponse.toFixed(1)} ms after the patch's response ` +
        `(${afterSend.toFixed(1)} ms after it was sent; bench/mesh.ts has the distribution)`,
    );
    expect(afterResponse).to.be.a('number').and.satisfy(Number.isFinite);
    expect(afterSend).to.be.greaterThan(0);

    w.stable.hits = 0;
    w.canary.hits = 0;
    const next = await load(w.root, 1_000, headers);
    expect(share(next, 'canary', 1_000), JSON.stringify([...next])).to.be.within(48, 52);
    expect(share(next, 'stable', 1_000)).to.be.within(48, 52);
    expect([w.stable.hits, w.canary.hits]).to.deep.equal([next.get('stable'), next.get('canary')]);
    expect(w.errors).to.deep.equal([]);
  });

  it('keeps the Host header as sent and streams request bodies through', async () => {
    const w = await world('mesh-host');
    await w.createSplit(50, 50);
    await w.mesh.waitForRoute(w.namespace, 'root', (r) => canaryPercent(r) === 50);
    const agent = new Agent({ keepAlive: true });
    try {
      for (const host of [w.host, 'root', `root.${w.namespace}:8080`]) {
        const answer = await get(w.root.url, { host }, agent);
        expect(answer.status).to.equal(200);
        expect(JSON.parse(answer.body)).to.include({ host, method: 'GET' });
      }
      const big = 'x'.repeat(1 << 20);
      const posted = await get(w.root.url, { host: w.host }, agent, big);
      expect(JSON.parse(posted.body)).to.include({ host: w.host, method: 'POST', bodyBytes: big.length });
    } finally {
      agent.destroy();
    }
  });

  it('routes TCP connections by the same weights', async () => {
    const w = await world('mesh-tcp');
    await w.createSplit(10, 90);
    await w.mesh.waitForRoute(w.namespace, 'root', (r) => canaryPercent(r) === 10);
    const tally = new Map<string, number>();
    let next = 0;
    const worker = async () => {
      while (next < 1_000) {
        next++;
        const who = await tcpOnce(w.root, w.host);
        tally.set(who, (tally.get(who) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    expect(tally.get('stable')! + tally.get('canary')!).to.equal(1_000);
    expect(share(tally, 'canary', 1_000)).to.be.within(8, 12);
    const samples = await scrape(w.mesh);
    const connections = (name: string) =>
      sum(samples, 'sandbox_mesh_tcp_connections_total', { destination_name: name, outcome: 'connected' });
    expect([connections('stable'), connections('canary')]).to.deep.equal([
      tally.get('stable'),
      tally.get('canary'),
    ]);
    // TCP is not HTTP: OSM's request counter is left alone.
    expect(sum(samples, 'osm_request_total', {})).to.equal(0);
  });

  it("exports osm_request_total with OSM's labels and the osm_request_duration_ms histogram", async () => {
    const w = await world('mesh-metrics');
    await w.createSplit(0, 100);
    await w.mesh.waitForRoute(w.namespace, 'root', (r) => canaryPercent(r) === 0);
    const agent = new Agent({ keepAlive: true });
    try {
      for (let i = 0; i < 20; i++) {
        const headers = {
          host: w.host,
          'x-source-namespace': 'bookbuyer',
          'x-source-kind': 'Deployment',
          'x-source-name': 'bookbuyer',
          'x-source-pod': 'bookbuyer-0',
        };
        expect((await get(w.root.url, headers, agent)).status).to.equal(200);
      }
      expect((await get(w.root.url, { host: w.host }, agent)).status).to.equal(200);
    } finally {
      agent.destroy();
    }
    const samples = await scrape(w.mesh);
    const totals = samples.filter((s) => s.name === 'osm_request_total');
    const destination = {
      destination_namespace: w.namespace,
      destination_kind: 'Deployment',
      destination_name: 'stable',
      destination_pod: 'stable-0',
    };
    expect(totals).to.deep.include({
      name: 'osm_request_total',
      labels: {
        source_namespace: 'bookbuyer',
        source_kind: 'Deployment',
        source_name: 'bookbuyer',
        source_pod: 'bookbuyer-0',
        ...destination,
        response_code: '200',
      },
      value: 20,
    });
    // Without the headers the source is the default load generator.
    expect(totals).to.deep.include({
      name: 'osm_request_total',
      labels: {
        source_namespace: 'mesh',
        source_kind: 'Deployment',
        source_name: 'load-generator',
        source_pod: 'load-generator-0',
        ...destination,
        response_code: '200',
      },
      value: 1,
    });
    const buckets = samples.filter(
      (s) => s.name === 'osm_request_duration_ms_bucket' && s.labels.source_name === 'bookbuyer',
    );
    expect(buckets.map((b) => b.labels.le)).to.include.members(['0.5', '1', '5', '100', '500', '+Inf']);
    expect(buckets.find((b) => b.labels.le === '+Inf')?.value).to.equal(20);
    expect(buckets.find((b) => b.labels.le === '+Inf')?.labels).to.deep.include(destination);
    expect(sum(samples, 'osm_request_duration_ms_count', { source_name: 'bookbuyer' })).to.equal(20);
    expect(sum(samples, 'osm_request_duration_ms_sum', { source_name: 'bookbuyer' })).to.be.greaterThan(0);
  });

  it('serves a backend Service that no split names directly: preview traffic, counted under its own name', async () => {
    const w = await world('mesh-direct');
    await w.createSplit(0, 100);
    await w.mesh.waitForRoute(w.namespace, 'root', (r) => canaryPercent(r) === 0);
    // The canary gets no user traffic through the root, yet a request for it reaches it.
    const preview = await w.mesh.addRoot(w.namespace, 'canary');
    const tally = await load(preview, 20, { host: `canary.${w.namespace}.svc.cluster.local` }, 2);
    expect(Object.fromEntries(tally)).to.deep.equal({ canary: 20 });
    const users = await load(w.root, 20, { host: w.host }, 2);
    expect(Object.fromEntries(users)).to.deep.equal({ stable: 20 });
    const samples = await scrape(w.mesh);
    expect(sum(samples, 'osm_request_total', { destination_name: 'canary', response_code: '200' })).to.equal(
      20,
    );
    expect(w.errors).to.deep.equal([]);
  });

  it('answers 503 while no split routes the root, 502 for a backend without an endpoint, and reads v1alpha1 quantities', async () => {
    const w = await world('mesh-no-split');
    const agent = new Agent({ keepAlive: true });
    try {
      const none = await get(w.root.url, { host: w.host }, agent);
      expect(none.status).to.equal(503);
      expect(none.body).to.match(/no TrafficSplit routes root\./);

      // v1alpha1 weights are quantities: 900m and 100m are 90/10.
      await w.createSplit('100m', '900m', 'v1alpha1');
      await w.mesh.waitForRoute(w.namespace, 'root', (r) => canaryPercent(r) !== undefined);
      expect(Math.round(canaryPercent(w.mesh.route(w.namespace, 'root'))!)).to.equal(10);
      const tally = await load(w.root, 100, { host: w.host }, 4);
      expect(share(tally, 'canary', 100)).to.be.within(8, 12);

      w.mesh.removeBackend(w.namespace, 'canary');
      const results = await load(w.root, 100, { host: w.host }, 1);
      expect(results.get('502')).to.be.within(8, 12);
      const unregistered = await scrape(w.mesh);
      expect(
        sum(unregistered, 'osm_request_total', { destination_name: 'canary', response_code: '502' }),
      ).to.equal(results.get('502'));

      const gone = w.mesh.waitForRoute(w.namespace, 'root', (r) => r === undefined);
      await custom.deleteNamespacedCustomObject({ ...splitResource('v1alpha2', w.namespace), name: 'root' });
      await gone;
      expect((await get(w.root.url, { host: w.host }, agent)).status).to.equal(503);
    } finally {
      agent.destroy();
    }
    expect(w.errors).to.deep.equal([]);
  });
});
