// The sandbox mesh against the suite's real API server: HTTP and TCP routed by TrafficSplit weights and by
// GAMMA HTTPRoutes (with their status.parents), weight changes applied from the watch, the Host header kept,
// and OSM's metrics on /metrics.
import {
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { expect } from 'chai';
import { Agent, createServer, request, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { LOOPBACK } from '../../src/sandbox/free-port.js';
import {
  MESH_CONTROLLER_NAME,
  startMesh,
  type Mesh,
  type RootEndpoint,
  type Route,
} from '../../src/sandbox/mesh/index.js';
import { waitFor } from '../../src/sandbox/wait.js';
import { sharedControlPlane, testNamespace } from '../support/control-plane.js';

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const splitResource = (version: string, namespace: string) => ({
  group: 'split.smi-spec.io',
  version,
  plural: 'trafficsplits',
  namespace,
});
const routeResource = (namespace: string) => ({
  group: 'gateway.networking.k8s.io',
  version: 'v1',
  plural: 'httproutes',
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

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime: string;
}
interface ParentStatus {
  parentRef: Record<string, unknown>;
  controllerName: string;
  conditions: Condition[];
}
type HttpRouteObject = KubernetesObject & {
  spec?: Record<string, unknown>;
  status?: { parents?: ParentStatus[] };
};

/** Each rule's backends as "service=weight", rule by rule: what a root routes by its HTTPRoutes. */
const httpWeights = (route: Route | undefined) =>
  route?.kind === 'HTTPRoute'
    ? route.rules.map((r) => r.backends.map((b) => `${b.service}=${b.weight}`).join(','))
    : undefined;

const conditionsOf = (entry: ParentStatus | undefined) =>
  Object.fromEntries((entry?.conditions ?? []).map((c) => [c.type, c]));

describe('sandbox mesh routing by GAMMA HTTPRoutes on the real API server', function () {
  this.timeout(120_000);
  let kc: KubeConfig;
  let custom: CustomObjectsApi;
  let core: CoreV1Api;
  const cleanups: (() => Promise<void>)[] = [];

  before(async () => {
    kc = (await sharedControlPlane()).kubeConfig();
    custom = kc.makeApiClient(CustomObjectsApi);
    core = kc.makeApiClient(CoreV1Api);
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  /**
   * A namespace with the Services root and those named in `services`, a mesh watching it, backends stable
   * and canary registered, and the root's listeners.
   */
  async function world(prefix: string, services = ['stable', 'canary']) {
    const namespace = await testNamespace(kc, prefix);
    const createService = (name: string) =>
      core.createNamespacedService({
        namespace,
        body: { metadata: { name }, spec: { ports: [{ port: 80 }] } },
      });
    for (const name of ['root', ...services]) await createService(name);
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
    const parentRef = { group: '', kind: 'Service', name: 'root', port: 80 };
    const weighted = (stableWeight: number | undefined, canaryWeight: number | undefined) => [
      {
        backendRefs: [
          { name: 'stable', port: 80, ...(stableWeight === undefined ? {} : { weight: stableWeight }) },
          { name: 'canary', port: 80, ...(canaryWeight === undefined ? {} : { weight: canaryWeight }) },
        ],
      },
    ];
    const createRoute = async (name: string, rules: unknown[], parentRefs: unknown[] = [parentRef]) =>
      (await custom.createNamespacedCustomObject({
        ...routeResource(namespace),
        body: {
          apiVersion: 'gateway.networking.k8s.io/v1',
          kind: 'HTTPRoute',
          metadata: { name },
          spec: { parentRefs, rules },
        },
      })) as HttpRouteObject;
    const readRoute = async (name: string) =>
      (await custom.getNamespacedCustomObject({ ...routeResource(namespace), name })) as HttpRouteObject;
    /** The mesh's status.parents entry for the root, once `holds` is true of it (polled from the API). */
    const ownStatus = (
      name: string,
      what: string,
      holds: (c: Record<string, Condition>, r: HttpRouteObject) => boolean,
    ) =>
      waitFor(
        async () => {
          const route = await readRoute(name);
          const entry = route.status?.parents?.find((p) => p.controllerName === MESH_CONTROLLER_NAME);
          return entry && holds(conditionsOf(entry), route) ? { route, entry } : undefined;
        },
        { what: `HTTPRoute ${name}: ${what}`, timeoutMs: 20_000, intervalMs: 200 },
      );
    return {
      namespace,
      mesh,
      stable,
      canary,
      root,
      host,
      errors,
      parentRef,
      weighted,
      createService,
      createRoute,
      readRoute,
      ownStatus,
    };
  }

  it('routes 10,000 requests at 70/30 through an HTTPRoute with a Service parent to within ±2 points, and follows a weight change within 100 ms', async () => {
    const w = await world('gamma-weights');
    await w.createRoute('root', w.weighted(70, 30));
    // ResolvedRefs=True: the mesh has seen both backend Services (a missing one is answered 500).
    await w.ownStatus('root', 'ResolvedRefs=True', (c) => c.ResolvedRefs?.status === 'True');
    const route = await w.mesh.waitForRoute(
      w.namespace,
      'root',
      (r) => httpWeights(r)?.[0] === 'stable=70,canary=30',
    );
    expect(route).to.deep.include({ kind: 'HTTPRoute', routes: ['root'] });

    const headers = { host: w.host, 'x-source-name': 'bookbuyer', 'x-source-namespace': 'bookbuyer' };
    const tally = await load(w.root, 10_000, headers);
    expect(tally.get('stable')! + tally.get('canary')!, JSON.stringify([...tally])).to.equal(10_000);
    const canaryShare = share(tally, 'canary', 10_000);
    console.log(`      canary share at 70/30: ${canaryShare.toFixed(2)}% (${tally.get('canary')} of 10000)`);
    expect(canaryShare).to.be.within(28, 32);
    // Counted under the backend Service chosen, exactly as for a TrafficSplit: Perch's queries read it alike.
    const samples = await scrape(w.mesh);
    const counted = (name: string) =>
      sum(samples, 'osm_request_total', {
        source_name: 'bookbuyer',
        destination_namespace: w.namespace,
        destination_name: name,
        response_code: '200',
      });
    expect([counted('stable'), counted('canary')]).to.deep.equal([tally.get('stable'), tally.get('canary')]);
    expect([w.stable.hits, w.canary.hits]).to.deep.equal([tally.get('stable'), tally.get('canary')]);

    // Listen before patching: the watch event may well arrive before the patch's own response.
    const applied = w.mesh.waitForRoute(
      w.namespace,
      'root',
      (r) => httpWeights(r)?.[0] === 'stable=50,canary=50',
    );
    const sent = performance.now();
    await custom.patchNamespacedCustomObject(
      { ...routeResource(w.namespace), name: 'root', body: { spec: { rules: w.weighted(50, 50) } } },
      mergePatch,
    );
    const answered = performance.now();
    const changed = await applied;
    const afterResponse = changed!.appliedAt - answered;
    console.log(
      `      HTTPRoute weight change applied ${afterResponse.toFixed(1)} ms after the patch's response ` +
        `(${(changed!.appliedAt - sent).toFixed(1)} ms after it was sent)`,
    );
    expect(afterResponse).to.be.below(100);

    w.stable.hits = 0;
    w.canary.hits = 0;
    const next = await load(w.root, 1_000, headers);
    expect(share(next, 'canary', 1_000), JSON.stringify([...next])).to.be.within(48, 52);
    expect([w.stable.hits, w.canary.hits]).to.deep.equal([next.get('stable'), next.get('canary')]);

    // Weight 0 sends nothing; a backendRef without a weight weighs 1 (the CRD writes the default in).
    const zero = w.mesh.waitForRoute(w.namespace, 'root', (r) => httpWeights(r)?.[0] === 'stable=1,canary=0');
    await custom.patchNamespacedCustomObject(
      { ...routeResource(w.namespace), name: 'root', body: { spec: { rules: w.weighted(undefined, 0) } } },
      mergePatch,
    );
    await zero;
    expect(Object.fromEntries(await load(w.root, 200, headers, 8))).to.deep.equal({ stable: 200 });
    expect(w.errors).to.deep.equal([]);
  });

  it("writes status.parents as a mesh does: Accepted and ResolvedRefs under its controllerName, BackendNotFound for a missing Service, others' entries kept, no write without a change", async () => {
    const w = await world('gamma-status', ['stable']);
    const created = await w.createRoute('root', w.weighted(90, 10));
    const missing = await w.ownStatus(
      'root',
      'ResolvedRefs=False',
      (c) => c.ResolvedRefs?.status === 'False',
    );
    expect(missing.entry.parentRef).to.deep.equal(w.parentRef);
    expect(missing.entry.controllerName).to.equal('perch.dev/sandbox-mesh');
    const generation = created.metadata?.generation;
    expect(conditionsOf(missing.entry).Accepted).to.deep.include({
      status: 'True',
      reason: 'Accepted',
      observedGeneration: generation,
    });
    expect(conditionsOf(missing.entry).ResolvedRefs).to.deep.include({
      status: 'False',
      reason: 'BackendNotFound',
      message: `rule 0: backendRef Service ${w.namespace}/canary does not exist`,
      observedGeneration: generation,
    });
    expect(conditionsOf(missing.entry).ResolvedRefs!.lastTransitionTime).to.match(
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
    );
    // The missing backend's share is answered 500, as Gateway API requires; the rest is routed.
    const during = await load(w.root, 100, { host: w.host }, 4);
    expect(Object.fromEntries(during)).to.deep.equal({ stable: 90, '500': 10 });

    // Creating the Service resolves the ref: the Service watch brings the status up to date.
    await w.createService('canary');
    const resolved = await w.ownStatus('root', 'ResolvedRefs=True', (c) => c.ResolvedRefs?.status === 'True');
    expect(conditionsOf(resolved.entry).ResolvedRefs).to.deep.include({ reason: 'ResolvedRefs' });
    // Accepted did not change, so its lastTransitionTime stays.
    expect(conditionsOf(resolved.entry).Accepted!.lastTransitionTime).to.equal(
      conditionsOf(missing.entry).Accepted!.lastTransitionTime,
    );

    // Another controller's entry, written before the mesh's: the mesh keeps it, in place, and has nothing to write.
    const seen = new Set<string>();
    const unsubscribe = w.mesh.onApplied((a) => {
      if (a.kind === 'HTTPRoute' && a.resourceVersion) seen.add(a.resourceVersion);
    });
    cleanups.push(async () => unsubscribe());
    const foreign = {
      parentRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'edge' },
      controllerName: 'example.net/gateway-controller',
      conditions: [
        {
          type: 'Accepted',
          status: 'False',
          reason: 'NoMatchingParent',
          message: 'not ours either',
          observedGeneration: generation,
          lastTransitionTime: '2024-01-01T00:00:00Z',
        },
      ],
    };
    // The write that resolved the ref may still be on its way back to the mesh: count from after it.
    await w.mesh.routeStatusSettled();
    const writesBefore = w.mesh.routeStatusStats().writes;
    const withForeign = (await custom.patchNamespacedCustomObjectStatus(
      {
        ...routeResource(w.namespace),
        name: 'root',
        body: { status: { parents: [foreign, resolved.entry] } },
      },
      mergePatch,
    )) as HttpRouteObject;
    const rv = withForeign.metadata!.resourceVersion!;
    await waitFor(async () => (seen.has(rv) ? true : undefined), {
      what: `the mesh seeing ${rv}`,
      intervalMs: 100,
    });
    await w.mesh.routeStatusSettled();
    expect(w.mesh.routeStatusStats().writes).to.equal(writesBefore);
    expect((await w.readRoute('root')).metadata?.resourceVersion).to.equal(rv);

    // A new generation: the mesh's entry follows it, the foreign entry stays where it was.
    await custom.patchNamespacedCustomObject(
      { ...routeResource(w.namespace), name: 'root', body: { spec: { rules: w.weighted(80, 20) } } },
      mergePatch,
    );
    const bumped = await w.ownStatus(
      'root',
      'observedGeneration follows the spec',
      (c, r) => c.Accepted?.observedGeneration === r.metadata?.generation,
    );
    expect(bumped.route.metadata?.generation).to.be.greaterThan(generation!);
    expect(bumped.route.status?.parents?.[0]).to.deep.equal(foreign);
    expect(bumped.route.status?.parents).to.have.length(2);
    expect(w.errors).to.deep.equal([]);
  });

  it("sends only requests matching a rule's header match to that rule's backend", async () => {
    const w = await world('gamma-headers');
    await w.createRoute('root', [
      {
        matches: [
          { path: { type: 'PathPrefix', value: '/' }, headers: [{ name: 'X-Canary', value: 'yes' }] },
        ],
        backendRefs: [{ name: 'canary', port: 80 }],
      },
      { backendRefs: [{ name: 'stable', port: 80 }] },
    ]);
    await w.ownStatus('root', 'ResolvedRefs=True', (c) => c.ResolvedRefs?.status === 'True');
    await w.mesh.waitForRoute(w.namespace, 'root', (r) => httpWeights(r)?.length === 2);

    const flagged = await load(
      w.root,
      200,
      { host: w.host, 'x-canary': 'yes', 'x-source-name': 'flagged' },
      8,
    );
    const plain = await load(w.root, 200, { host: w.host, 'x-source-name': 'plain' }, 8);
    const wrongValue = await load(
      w.root,
      50,
      { host: w.host, 'x-canary': 'no', 'x-source-name': 'plain' },
      4,
    );
    expect(Object.fromEntries(flagged)).to.deep.equal({ canary: 200 });
    expect(Object.fromEntries(plain)).to.deep.equal({ stable: 200 });
    expect(Object.fromEntries(wrongValue)).to.deep.equal({ stable: 50 });
    const samples = await scrape(w.mesh);
    expect(
      sum(samples, 'osm_request_total', { source_name: 'flagged', destination_name: 'canary' }),
    ).to.equal(200);
    expect(
      sum(samples, 'osm_request_total', { source_name: 'flagged', destination_name: 'stable' }),
    ).to.equal(0);
    expect(sum(samples, 'osm_request_total', { source_name: 'plain', destination_name: 'canary' })).to.equal(
      0,
    );
    expect(w.errors).to.deep.equal([]);
  });

  it("ignores a route whose parent is a Gateway; a Service parent's route wins over the root's TrafficSplit until deleted", async () => {
    const w = await world('gamma-gateway');
    await custom.createNamespacedCustomObject({
      ...splitResource('v1alpha2', w.namespace),
      body: {
        apiVersion: 'split.smi-spec.io/v1alpha2',
        kind: 'TrafficSplit',
        metadata: { name: 'root' },
        spec: { service: w.host, backends: [{ service: 'stable', weight: 100 }] },
      },
    });
    await w.mesh.waitForRoute(w.namespace, 'root', (r) => r?.kind === 'TrafficSplit');

    // Parent `root` with no group or kind: the API defaults them to a Gateway's, so it is not the mesh's.
    const gatewayRoute = await w.createRoute(
      'north-south',
      [{ backendRefs: [{ name: 'canary', port: 80 }] }],
      [{ name: 'root' }, { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'edge' }],
    );
    expect(gatewayRoute.spec).to.deep.nested.include({
      'parentRefs[0].group': 'gateway.networking.k8s.io',
      'parentRefs[0].kind': 'Gateway',
    });
    // One watch stream delivers in order: once the mesh has this second route, it has had the first.
    await w.createRoute(
      'marker',
      [{ backendRefs: [{ name: 'stable', port: 80 }] }],
      [{ group: '', kind: 'Service', name: 'other' }],
    );
    await w.mesh.waitForRoute(w.namespace, 'other', (r) => r?.kind === 'HTTPRoute');
    await w.mesh.routeStatusSettled();
    expect(w.mesh.route(w.namespace, 'root')?.kind).to.equal('TrafficSplit');
    expect(Object.fromEntries(await load(w.root, 100, { host: w.host }, 4))).to.deep.equal({ stable: 100 });
    expect((await w.readRoute('north-south')).status?.parents ?? []).to.deep.equal([]);

    // The same root as a Service parent: the HTTPRoute wins over the split for HTTP...
    await w.createRoute('root', [{ backendRefs: [{ name: 'canary', port: 80 }] }]);
    await w.mesh.waitForRoute(w.namespace, 'root', (r) => r?.kind === 'HTTPRoute');
    expect(Object.fromEntries(await load(w.root, 100, { host: w.host }, 4))).to.deep.equal({ canary: 100 });
    // ...and deleting it hands the root back to the split.
    const back = w.mesh.waitForRoute(w.namespace, 'root', (r) => r?.kind === 'TrafficSplit');
    await custom.deleteNamespacedCustomObject({ ...routeResource(w.namespace), name: 'root' });
    await back;
    expect(Object.fromEntries(await load(w.root, 100, { host: w.host }, 4))).to.deep.equal({ stable: 100 });
    expect(w.errors).to.deep.equal([]);
  });
});
