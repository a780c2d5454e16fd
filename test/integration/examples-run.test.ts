// examples/flagger-style, examples/blue-green and examples/gateway-api-mesh run to their expected phases
// under `perch controller` (a child process), as a person would run them: the example applied with kubectl,
// the sandbox's mesh routing by the TrafficSplit Perch writes or by the person's HTTPRoute whose weights
// Perch writes, demo backends, load through the mesh, and a real Prometheus scraping the mesh. The Rollout
// is applied with the demo's --fast intervals (4 s checks). The runs, which mostly wait on their checks,
// go side by side: all start before the first test, and each test checks its own. (examples/bookstore runs
// in test/e2e/demo-terminal.test.ts; examples/manual-gate and examples/gateway-api-ingress in examples.test.ts.)
import {
  CustomObjectsApi,
  loadAllYaml,
  type KubeConfig,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import type { Rollout } from '../../src/api/v1alpha1.js';
import { Informer } from '../../src/k8s/informer.js';
import { startBookbuyer, type Bookbuyer } from '../../src/sandbox/apps/bookbuyer.js';
import { startBookstore, type Bookstore } from '../../src/sandbox/apps/bookstore.js';
import { fastRollout, readExample } from '../../src/sandbox/examples.js';
import { startMesh, type Mesh } from '../../src/sandbox/mesh/index.js';
import { startPrometheus, type PrometheusServer } from '../../src/sandbox/prometheus/launcher.js';
import { waitFor } from '../../src/sandbox/wait.js';
import { sharedControlPlane } from '../support/control-plane.js';
import { startController, type ControllerProcess } from '../support/controller-process.js';
import { EventLog } from '../support/events.js';
import { kubectl, kubectlOk } from '../support/kubectl.js';
import { ROLLOUT } from '../support/rollout-env.js';

interface SplitSeen {
  /** "svc=weight,..." as the watch delivered it; for an HTTPRoute, of the rules the Rollout splits. */
  backends: string;
  at: number;
  /** The routing object as the watch delivered it. */
  object: KubernetesObject;
}

interface RouteRule {
  name?: string;
  matches?: unknown;
  filters?: unknown;
  backendRefs?: { name?: string; weight?: number }[];
}
interface HttpRouteShape extends KubernetesObject {
  spec: { parentRefs?: unknown; hostnames?: unknown; rules: RouteRule[] };
}

/** "svc=weight,..." of the HTTPRoute rules a Rollout splits (by index or name; default: those naming stable). */
function splitRules(route: KubernetesObject, rollout: Rollout): string {
  const rules = (route as HttpRouteShape).spec?.rules ?? [];
  const chosen = rollout.spec.trafficRouting?.gatewayAPI?.rules;
  const picked = rules.filter((rule, i) =>
    chosen
      ? chosen.some((c) => c === i || c === rule.name)
      : (rule.backendRefs ?? []).some((b) => b.name === rollout.spec.stableService),
  );
  return picked
    .map((rule) => (rule.backendRefs ?? []).map((b) => `${b.name}=${b.weight ?? 1}`).join(','))
    .join(' | ');
}

interface RunOptions {
  /** Backend Services and the fraction of their requests answered 500. */
  backends: Record<string, number>;
  /** Services that get load through the mesh (the root; for blue-green also the preview). */
  load: string[];
  /** Another namespace for the example's objects than its own, so two runs of it can go side by side. */
  namespace?: string;
}

/** Every object of an example's file, moved into `namespace` (the Namespace itself renamed). */
function movedTo(file: string, namespace: string): KubernetesObject[] {
  return (loadAllYaml(readFileSync(file, 'utf8')) as KubernetesObject[])
    .filter((o) => o)
    .map((o) =>
      o.kind === 'Namespace'
        ? { ...o, metadata: { ...o.metadata, name: namespace } }
        : { ...o, metadata: { ...o.metadata, namespace } },
    );
}

/** One example running: what the watch saw of its TrafficSplit, and its backends' counts. */
interface ExampleRun {
  namespace: string;
  name: string;
  splits: EventLog<SplitSeen>;
  backends: Map<string, Bookstore>;
  /** The mesh's endpoint (http://127.0.0.1:PORT) of each Service given load. */
  endpoints: Map<string, string>;
  /** The person's HTTPRoute as applied, before the Rollout; undefined for SMI. */
  applied?: KubernetesObject;
  phase(want: string, timeoutMs?: number): Promise<Rollout>;
  /** Stops its load, backends and watch, and deletes its namespace without waiting; again does nothing. */
  stop(): Promise<void>;
}

describe('examples/ run to their expected phase (mesh, load, Prometheus, perch controller)', function () {
  this.timeout(240_000);
  let kubeconfig: string;
  let kc: KubeConfig;
  let mesh: Mesh;
  let prometheus: PrometheusServer;
  let controller: ControllerProcess;
  const runs: ExampleRun[] = [];
  /** Each test's run, started in before(); a start that fails fails only the test that awaits it. */
  const started = new Map<string, Promise<ExampleRun>>();
  const RUNS: Record<string, [string, RunOptions]> = {
    'flagger-style': [
      'flagger-style',
      { backends: { 'podinfo-primary': 0, 'podinfo-canary': 0 }, load: ['podinfo'] },
    ],
    'blue-green': ['blue-green', { backends: { 'app-blue': 0, 'app-green': 0 }, load: ['app', 'app-green'] }],
    'blue-green failing': [
      'blue-green',
      {
        backends: { 'app-blue': 0, 'app-green': 0.2 },
        load: ['app', 'app-green'],
        namespace: 'blue-green-failing',
      },
    ],
    'gateway-api-mesh': [
      'gateway-api-mesh',
      { backends: { 'bookstore-v1': 0, 'bookstore-v2': 0 }, load: ['bookstore'] },
    ],
  };

  before(async () => {
    const cp = await sharedControlPlane();
    kubeconfig = cp.kubeconfig;
    kc = cp.kubeConfig();
    mesh = await startMesh(kc, { listenOnSplitRoots: false });
    prometheus = await startPrometheus({
      jobs: [{ name: 'mesh', targets: [mesh.metricsTarget] }],
      scrapeInterval: '1s',
    });
    controller = await startController(kubeconfig, prometheus.url);
    for (const [key, [example, opts]] of Object.entries(RUNS)) {
      const run = runExample(example, opts);
      run.catch(() => undefined);
      started.set(key, run);
    }
  });
  /** The test's run, stopped when the test ends. */
  async function check(key: string, test: (run: ExampleRun) => Promise<void>): Promise<void> {
    const run = await started.get(key)!;
    try {
      await test(run);
    } finally {
      await run.stop();
    }
  }
  after(async () => {
    // The runs a failed or skipped test left going.
    await Promise.all(runs.map((run) => run.stop()));
    // Gone before the controller stops: it must release its perch.dev/traffic finalizers.
    await Promise.all([...used].map((namespace) => deleteNamespace(namespace)));
    await controller?.stop();
    await prometheus?.stop();
    await mesh?.stop();
  });

  const used = new Set<string>();
  const deleteNamespace = (namespace: string, wait = true) =>
    kubectl(kubeconfig, [
      'delete',
      'namespace',
      namespace,
      '--ignore-not-found',
      wait ? '--timeout=90s' : '--wait=false',
    ]);

  async function runExample(name: string, opts: RunOptions): Promise<ExampleRun> {
    const example = readExample(name);
    if (opts.namespace) example.rollout.metadata!.namespace = opts.namespace;
    const namespace = example.rollout.metadata!.namespace!;
    const rollout = example.rollout.metadata!.name!;
    used.add(namespace);
    await deleteNamespace(namespace);
    for (const f of example.setupFiles)
      await (opts.namespace
        ? kubectlOk(
            kubeconfig,
            ['apply', '-f', '-'],
            JSON.stringify({ apiVersion: 'v1', kind: 'List', items: movedTo(f, namespace) }),
          )
        : kubectlOk(kubeconfig, ['apply', '-f', f]));
    // A person's HTTPRoute as applied (defaults filled in), before any Rollout names it.
    const routeName = example.rollout.spec.trafficRouting?.gatewayAPI?.httpRoute;
    const applied = routeName
      ? (JSON.parse(
          await kubectlOk(kubeconfig, ['-n', namespace, 'get', 'httproute', routeName, '-o', 'json']),
        ) as KubernetesObject)
      : undefined;

    const backends = new Map<string, Bookstore>();
    const buyers: Bookbuyer[] = [];
    const splits = new EventLog<SplitSeen>();
    const gatewayAPI = example.rollout.spec.trafficRouting?.gatewayAPI;
    const informer = new Informer<KubernetesObject>(
      kc,
      gatewayAPI
        ? {
            apiVersion: gatewayAPI.apiVersion ?? 'gateway.networking.k8s.io/v1',
            kind: 'HTTPRoute',
            plural: 'httproutes',
            namespace,
          }
        : {
            apiVersion: 'split.smi-spec.io/v1alpha2',
            kind: 'TrafficSplit',
            plural: 'trafficsplits',
            namespace,
          },
    );
    let stopped: Promise<void> | undefined;
    const stop = () =>
      (stopped ??= (async () => {
        // Deleted while the controller runs (it releases its perch.dev/traffic finalizer). Not awaited
        // here: after() waits for it.
        await deleteNamespace(namespace, false);
        informer.stop();
        await Promise.all(buyers.map((b) => b.stop()));
        await Promise.all([...backends.values()].map((b) => b.close()));
        for (const service of backends.keys()) mesh.removeBackend(namespace, service);
      })());
    const rollouts = kc.makeApiClient(CustomObjectsApi);
    const run: ExampleRun = {
      namespace,
      name: rollout,
      splits,
      backends,
      endpoints: new Map(),
      ...(applied ? { applied } : {}),
      stop,
      phase: (want, timeoutMs = 90_000) =>
        waitFor(
          async () => {
            const r = (await rollouts.getNamespacedCustomObject({
              ...ROLLOUT,
              namespace,
              name: rollout,
            })) as Rollout;
            if (r.status?.phase === 'Failed' && want !== 'Failed')
              throw new Error(`${namespace}/${rollout} Failed: ${r.status.message}`);
            return r.status?.phase === want ? r : undefined;
          },
          { what: `${namespace}/${rollout} ${want}`, timeoutMs, intervalMs: 250 },
        ),
    };
    runs.push(run);

    const record = (o: KubernetesObject) => {
      const list = (o as { spec?: { backends?: { service: string; weight: number }[] } }).spec?.backends;
      splits.push({
        backends: gatewayAPI
          ? splitRules(o, example.rollout)
          : (list ?? []).map((b) => `${b.service}=${b.weight}`).join(','),
        at: Date.now(),
        object: o,
      });
    };
    informer.onAdd(record).onUpdate(record);
    await informer.start();

    for (const [service, errorRate] of Object.entries(opts.backends)) {
      const b = await startBookstore({ version: service, errorRate, latencyMs: 2 });
      backends.set(service, b);
      mesh.setBackend(namespace, service, { port: b.port });
    }
    for (const service of opts.load) {
      const endpoint = await mesh.addRoot(namespace, service);
      run.endpoints.set(service, endpoint.url);
      buyers.push(
        startBookbuyer({
          url: `${endpoint.url}/books-bought`,
          rps: 25,
          host: `${service}.${namespace}`,
          timeoutMs: 2000,
        }),
      );
    }
    await kubectlOk(kubeconfig, ['apply', '-f', '-'], JSON.stringify(fastRollout(example.rollout)));
    return run;
  }

  /** Each distinct routing in the order the watch saw it (a status-only update repeats one). */
  const routings = (run: ExampleRun) =>
    run.splits.seen.map((s) => s.backends).filter((b, i, all) => i === 0 || all[i - 1] !== b);

  it('flagger-style: stepWeight 10 to maxWeight 50, one passing check each, then Succeeded at 100%', async () => {
    await check('flagger-style', async (run) => {
      const done = await run.phase('Succeeded');
      expect(routings(run)).to.deep.equal([
        'podinfo-primary=100',
        'podinfo-primary=90,podinfo-canary=10',
        'podinfo-primary=80,podinfo-canary=20',
        'podinfo-primary=70,podinfo-canary=30',
        'podinfo-primary=60,podinfo-canary=40',
        'podinfo-primary=50,podinfo-canary=50',
        'podinfo-canary=100',
      ]);
      expect(done.status?.step).to.equal('10/10');
      expect(done.status?.canaryWeight).to.equal(100);
    });
  });

  it('blue-green: green checked on its preview traffic at weight 0, then one switch to 100 and Succeeded', async () => {
    await check('blue-green', async (run) => {
      const switched = await run.splits.find(
        (s) => s.backends === 'app-green=100',
        90_000,
        'the switch to app-green=100',
      );
      const done = await run.phase('Succeeded');
      expect(routings(run)).to.deep.equal(['app-blue=100', 'app-green=100']);
      // The analysis step's three passing checks came before any user request could reach green.
      const before = (done.status?.analysis?.measurements ?? []).filter(
        (m) => m.verdict === 'Pass' && Date.parse(m.at) < switched.at,
      );
      expect(before.length, JSON.stringify(done.status?.analysis)).to.be.at.least(3);
    });
  });

  it('blue-green: a failing preview check fails the run, and no user request was ever routed to green', async () => {
    await check('blue-green failing', async (run) => {
      const failed = await run.phase('Failed');
      expect(failed.status?.message).to.match(/request-success-rate [\d.]+ is below the minimum 99/);
      expect(routings(run)).to.deep.equal(['app-blue=100']);
      expect(run.backends.get('app-green')!.stats().errors).to.be.greaterThan(0);
    });
  });

  it("gateway-api-mesh: the person's HTTPRoute (Service parent) carries 10, 50, 100 in its rule split; every version keeps their matches, filters, other rule and parents byte-identical", async () => {
    await check('gateway-api-mesh', async (run) => {
      const done = await run.phase('Succeeded');
      expect(routings(run)).to.deep.equal([
        'bookstore-v1=100',
        'bookstore-v1=90,bookstore-v2=10',
        'bookstore-v1=50,bookstore-v2=50',
        'bookstore-v1=0,bookstore-v2=100',
      ]);
      expect(done.status?.canaryWeight).to.equal(100);
      // The mesh accepted the route (status.parents), and TrafficRouted says so.
      const routed = done.status?.conditions?.find((c) => c.type === 'TrafficRouted');
      expect(routed?.message).to.include(
        'HTTPRoute bookstore: Service/bookstore via perch.dev/sandbox-mesh: Accepted=True, ResolvedRefs=True',
      );

      // Every version the watch saw, against the route as applied: the person's parts as the API server
      // serialises them, byte for byte. Perch's part is only the weights in `split` (and v2's ref added).
      const applied = run.applied as HttpRouteShape;
      const [pinned, split] = applied.spec.rules;
      expect(pinned!.name).to.equal('pinned');
      expect(JSON.stringify(pinned!.matches)).to.equal(
        '[{"headers":[{"name":"x-bookstore-pin","type":"Exact","value":"v1"}],"path":{"type":"PathPrefix","value":"/"}}]',
      );
      for (const seen of run.splits.seen) {
        const route = seen.object as HttpRouteShape;
        const at = `version ${route.metadata?.resourceVersion}`;
        expect(JSON.stringify(route.spec.parentRefs), at).to.equal(JSON.stringify(applied.spec.parentRefs));
        expect(JSON.stringify(route.spec.hostnames), at).to.equal(JSON.stringify(applied.spec.hostnames));
        expect(route.spec.rules, at).to.have.length(2);
        expect(JSON.stringify(route.spec.rules[0]), at).to.equal(JSON.stringify(pinned));
        const rule = route.spec.rules[1]!;
        expect(JSON.stringify(rule.matches), at).to.equal(JSON.stringify(split!.matches));
        expect(JSON.stringify(rule.filters), at).to.equal(JSON.stringify(split!.filters));
        expect(rule.name, at).to.equal('split');
      }
      expect(JSON.stringify(split!.filters)).to.equal(
        '[{"requestHeaderModifier":{"add":[{"name":"x-bookstore-route","value":"split"}]},"type":"RequestHeaderModifier"}]',
      );

      // The person's rule still routes: a pinned client reaches bookstore-v1 with bookstore-v2 at 100.
      const url = `${run.endpoints.get('bookstore')!}/books-bought`;
      const ask = async (headers: Record<string, string>) =>
        ((await (await fetch(url, { headers })).json()) as { version: string }).version;
      expect(await ask({ 'x-bookstore-pin': 'v1' })).to.equal('bookstore-v1');
      expect(await ask({})).to.equal('bookstore-v2');
    });
  });
});
