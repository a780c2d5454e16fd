// Everything `perch demo` runs on one machine, started in order and stopped in reverse: the sandbox
// control plane, the router's example applied with kubectl (examples/bookstore/ for SMI,
// examples/gateway-api-mesh/ with a person's HTTPRoute for Gateway API), three bookstore backends, the mesh,
// the bookbuyer load, a real Prometheus scraping the mesh, and the controller (in-process, logging to a file).
import { runKubectlOk } from '../kubectl.js';
import type { KubernetesObject } from '@kubernetes/client-node';
import { createWriteStream, rmSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { serviceName } from '../../api/service-name.js';
import type { Rollout } from '../../api/v1alpha1.js';
import { runController } from '../../controller/controller.js';
import { createLogger } from '../../controller/log.js';
import { startBookbuyer, type Bookbuyer } from '../apps/bookbuyer.js';
import { startBookstore, type Bookstore } from '../apps/bookstore.js';
import { publishKubeconfig, startControlPlane, type ControlPlane } from '../control-plane/index.js';
import { makeDataDir } from '../data-dir.js';
import { startMesh, type Route } from '../mesh/index.js';
import { startPrometheus } from '../prometheus/launcher.js';
import { fastRollout, readExample } from '../examples.js';
import { changesBeyondWeights } from './route-changes.js';
import type { RoutingSeen } from './view.js';

/** What Perch writes the demo's weights to. */
export type DemoRouter = 'smi' | 'gatewayapi';
export const DEMO_ROUTERS: readonly DemoRouter[] = ['smi', 'gatewayapi'];

/** The example each router runs: the same bookstore, its Rollout's trafficRouting the difference. */
const EXAMPLE: Record<DemoRouter, string> = { smi: 'bookstore', gatewayapi: 'gateway-api-mesh' };

/** The Services the demo's runs move between (v1 to v2, then v2 to v3). */
export const DEMO_SERVICES = ['bookstore-v1', 'bookstore-v2', 'bookstore-v3'] as const;

export interface DemoStackOptions {
  fast: boolean;
  /** Default smi. */
  router?: DemoRouter;
  /**
   * Where to copy the admin kubeconfig for people (removed again on stop), unless that path holds a
   * kubeconfig that is not a sandbox's or one of another running sandbox.
   */
  kubeconfig?: string;
  /** Requests per second of the bookbuyer; default 40. */
  rps?: number;
  /** v3's fraction of requests answered 500; default 0.2. */
  faultyErrorRate?: number;
  /** Progress of the start-up, one line each. */
  progress: (line: string) => void;
  /** Aborted (Ctrl-C, timeout): the start-up stops between steps and undoes what it started. */
  signal?: AbortSignal;
}

export interface DemoStack {
  cp: ControlPlane;
  router: DemoRouter;
  /** The example's namespace and its Rollout's name. */
  namespace: string;
  rolloutName: string;
  /** The routing object, as kubectl names it: "trafficsplit bookstore-split", "httproute bookstore". */
  routeObject: string;
  /** The kubeconfig to show people: the well-known copy, or the sandbox's own when it was not written. */
  userKubeconfig: string;
  kubectl(args: string[], input?: string): Promise<string>;
  /** The example's Rollout as the demo applies it (with --fast: short interval). */
  rolloutManifest(): Rollout;
  /** The folder of the controller's log (kept when the demo fails, removed otherwise). */
  dir: string;
  controllerLog: string;
  /** The demo's Prometheus, http://127.0.0.1:PORT: its UI and API answer while the demo runs. */
  prometheusUrl: string;
  bookbuyer: Bookbuyer;
  /**
   * Starts bookbuyer's load once the mesh routes the root Service (once Perch has written the TrafficSplit;
   * the person's HTTPRoute routes it from the start): before that a request has no backend (503), which
   * would only puzzle a newcomer.
   */
  startLoad(): Promise<void>;
  /** The weights the mesh routes the root Service by now; undefined while nothing routes it. */
  routing(): RoutingSeen | undefined;
  /** Called after each watch event the mesh applied for the root Service; returns the unsubscribe. */
  onRoutingChange(listener: () => void): () => void;
  /**
   * Gateway API: what Perch changed in the person's HTTPRoute beyond the weights since it was applied
   * ([] when nothing). SMI: undefined (the TrafficSplit is Perch's own).
   */
  routeChangesBeyondWeights(): Promise<string[] | undefined>;
  stop(keepDir: boolean): Promise<void>;
}

/** Starts one piece after another; on any failure or abort, what was started is stopped before the throw. */
export async function startDemoStack(opts: DemoStackOptions): Promise<DemoStack> {
  const stops: { what: string; stop: () => Promise<void> }[] = [];
  const dir = makeDataDir('perch-demo-');
  let logStream: WriteStream | undefined;
  let stopped: Promise<void> | undefined;
  const stop = (keepDir: boolean) =>
    (stopped ??= (async () => {
      for (const s of stops.splice(0).reverse()) {
        try {
          await s.stop();
        } catch (err) {
          opts.progress(`stopping ${s.what} failed: ${(err as Error).message}`);
        }
      }
      if (logStream) await new Promise<void>((done) => logStream!.end(done));
      if (!keepDir) rmSync(dir, { recursive: true, force: true });
    })());
  const started = (what: string, s: () => Promise<void>) => stops.push({ what, stop: s });
  const checkAbort = () => {
    if (opts.signal?.aborted) throw new Error(`interrupted (${String(opts.signal.reason)})`);
  };

  try {
    let building = false;
    opts.progress('starting the sandbox control plane (etcd, kube-apiserver, kube-controller-manager)');
    const cp = await startControlPlane({
      progress: (line) => {
        if (!building) {
          building = true;
          opts.progress(
            'first run: building the Kubernetes control-plane binaries from source with Go ' +
              '(a few minutes, once; later runs reuse them)',
          );
        }
        opts.progress(`  ${line}`);
      },
    });
    started('the control plane', () => cp.stop());
    checkAbort();
    // The demo itself always uses the sandbox's private kubeconfig; the well-known copy is for people.
    const kubeconfig = cp.kubeconfig;
    let userKubeconfig = kubeconfig;
    if (opts.kubeconfig) {
      const published = await publishKubeconfig(kubeconfig, opts.kubeconfig);
      started('the kubeconfig copy', async () => published.unpublish());
      userKubeconfig = published.path;
      if (published.skipped) opts.progress(`not writing ${opts.kubeconfig}: ${published.skipped}`);
    }
    const kubectl = (args: string[], input?: string) =>
      runKubectlOk(cp.binaries.kubectl, kubeconfig, args, input);

    const router = opts.router ?? 'smi';
    const example = readExample(EXAMPLE[router]);
    const namespace = example.rollout.metadata!.namespace!;
    const rolloutName = example.rollout.metadata!.name!;
    const root = serviceName(namespace, example.rollout.spec.service) ?? example.rollout.spec.service;
    const gateway = example.rollout.spec.trafficRouting?.gatewayAPI;
    const smi = example.rollout.spec.trafficRouting?.smi;
    const routeObject = gateway
      ? `httproute ${gateway.httpRoute ?? rolloutName}`
      : `trafficsplit ${smi?.trafficSplitName ?? rolloutName}`;
    const routeKind = gateway ? 'HTTPRoute' : 'TrafficSplit';
    opts.progress(
      `applying ${example.dir} (Namespace, Services, MetricTemplates${gateway ? ', your HTTPRoute' : ''}; ` +
        'the Rollout comes later)',
    );
    for (const f of example.setupFiles) await kubectl(['apply', '-f', f]);
    // The person's route as applied (defaults filled in by the API server), to compare after the runs.
    const applied = gateway
      ? (JSON.parse(
          await kubectl(['-n', namespace, 'get', ...routeObject.split(' '), '-o', 'json']),
        ) as KubernetesObject)
      : undefined;
    checkAbort();

    opts.progress('starting bookstore v1 and v2 (healthy) and v3 (faulty)');
    const faultyErrorRate = opts.faultyErrorRate ?? 0.2;
    const backends: Bookstore[] = [];
    started('the bookstore backends', async () => {
      await Promise.all(backends.map((b) => b.close()));
    });
    for (const [version, errorRate] of [
      ['v1', 0],
      ['v2', 0],
      ['v3', faultyErrorRate],
    ] as const) {
      backends.push(await startBookstore({ version, errorRate, latencyMs: 5 }));
    }

    opts.progress(`starting the mesh (routes the root Service ${root} by its ${routeKind})`);
    const meshErrors: string[] = [];
    const mesh = await startMesh(cp.kubeConfig(), {
      namespace,
      gatewayAPI: router === 'gatewayapi',
      onError: (err) => meshErrors.push(err.message),
    });
    started('the mesh', () => mesh.stop());
    for (const b of backends) mesh.setBackend(namespace, `bookstore-${b.version}`, { port: b.port });
    const endpoint = await mesh.addRoot(namespace, root);

    opts.progress(`starting Prometheus (scrapes the mesh at ${mesh.metricsTarget})`);
    const prometheus = await startPrometheus({
      jobs: [{ name: 'mesh', targets: [mesh.metricsTarget] }],
      scrapeInterval: opts.fast ? '1s' : '2s',
    });
    started('Prometheus', () => prometheus.stop());
    checkAbort();

    opts.progress(`starting the controller (in-process; log: ${join(dir, 'controller.log')})`);
    const controllerLog = join(dir, 'controller.log');
    const stream = createWriteStream(controllerLog, { flags: 'a' });
    logStream = stream;
    const controller = await runController({
      kubeConfig: cp.kubeConfig(),
      prometheusUrl: prometheus.url,
      metricsAddr: '127.0.0.1:0',
      leaderElect: false,
      log: createLogger('info', 'text', (line) => stream.write(line)),
    });
    started('the controller', () => controller.stop());
    checkAbort();

    const rps = opts.rps ?? 40;
    opts.progress(
      `bookbuyer will send ${rps} requests/s to ${endpoint.url} (Host ${root}.${namespace}) once the ` +
        `${routeKind} routes it`,
    );
    const bookbuyer = startBookbuyer({
      url: `${endpoint.url}/books-bought`,
      rps: 0,
      host: `${root}.${namespace}`,
      sourceName: 'bookbuyer',
      headers: { 'x-source-namespace': 'bookbuyer', 'x-source-kind': 'Deployment' },
      timeoutMs: 2000,
    });
    started('bookbuyer', async () => {
      await bookbuyer.stop();
    });

    const manifest = example.rollout;
    return {
      cp,
      router,
      namespace,
      rolloutName,
      routeObject,
      userKubeconfig,
      kubectl,
      rolloutManifest: () => (opts.fast ? fastRollout(manifest) : structuredClone(manifest)),
      dir,
      controllerLog,
      prometheusUrl: prometheus.url,
      bookbuyer,
      async startLoad() {
        await mesh.waitForRoute(namespace, root, (route) => route !== undefined, 30_000);
        bookbuyer.set({ rps });
      },
      routing: () => routingOf(mesh.route(namespace, root)),
      onRoutingChange: (listener) =>
        mesh.onApplied((a) => {
          if (a.namespace === namespace && a.root === root) listener();
        }),
      async routeChangesBeyondWeights() {
        if (!applied) return undefined;
        const now = JSON.parse(
          await kubectl(['-n', namespace, 'get', ...routeObject.split(' '), '-o', 'json']),
        ) as KubernetesObject;
        return changesBeyondWeights(applied, now, new Set(DEMO_SERVICES));
      },
      stop,
    };
  } catch (err) {
    await stop(false);
    throw err;
  }
}

/** The mesh's route as the demo shows it. */
function routingOf(route: Route | undefined): RoutingSeen | undefined {
  if (!route) return undefined;
  if (route.kind === 'TrafficSplit') {
    return { kind: 'TrafficSplit', name: route.split, rules: [{ backends: route.backends }] };
  }
  return {
    kind: 'HTTPRoute',
    name: route.routes.join(', '),
    rules: route.rules.map((r) => ({ name: r.name ?? `rule ${r.index}`, backends: r.backends })),
  };
}
