// The demo's data plane: plays the service mesh for root Services on loopback, routing by TrafficSplit
// weights and by GAMMA HTTPRoutes (Service parents). Wires the TrafficSplit, HTTPRoute and Service watches to
// the route table and the routes' status, one HTTP and one TCP listener per root, and /metrics.
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { Agent } from 'node:http';
import { Informer, type InformerOptions } from '../../k8s/informer.js';
import { SMI_GROUP, TRAFFICSPLIT_PLURAL } from '../../k8s/trafficsplit/router.js';
import type { TrafficSource } from '../apps/osm-metrics-target.js';
import { LOOPBACK } from '../free-port.js';
import { startHttpListener, type HttpRootRouting, type Listener, type RootRouting } from './http-proxy.js';
import { GATEWAY_GROUP, HTTPROUTE_PLURAL } from './http-route-rules.js';
import { DEFAULT_SOURCE, MeshMetrics, serveMetrics } from './metrics.js';
import { RouteStatusWriter, type RouteStatusWriterStats } from './route-status-writer.js';
import { RouteTable, type Applied, type Route } from './route-table.js';
import { startTcpListener } from './tcp-proxy.js';

export type {
  Applied,
  AppliedHttpRoute,
  AppliedSplit,
  HttpRoutesRoute,
  Route,
  RouteBackend,
  SplitRoute,
} from './route-table.js';
export { SOURCE_HEADERS, DEFAULT_SOURCE } from './metrics.js';
export { MESH_CONTROLLER_NAME } from './http-route-status.js';

export interface MeshOptions {
  /** Watch the TrafficSplits of one namespace; all namespaces when left out. */
  namespace?: string;
  /**
   * The version the watch reads; default v1alpha2, the CRD's storage version. Conversion is None, so
   * every split is seen whatever version wrote it (v1alpha1 quantities included).
   */
  apiVersion?: string;
  /** source_* labels of requests without the x-source-* headers. */
  defaultSource?: TrafficSource;
  /** Open listeners for every root a split or HTTPRoute names, not just those given to addRoot(); default true. */
  listenOnSplitRoots?: boolean;
  /**
   * Honour gateway.networking.k8s.io/v1 HTTPRoutes whose parent is a Service (and write their
   * status.parents); default true. v1beta1 routes are the same objects (one storage version, the CRD
   * serves both), so watching v1 sees every route whatever version wrote it. Without the Gateway API CRDs
   * the mesh says so once through onError, routes by TrafficSplits, and takes up HTTPRoutes once served.
   */
  gatewayAPI?: boolean;
  /** Watch errors, refused splits, failed status writes and listener failures; the mesh carries on. Default: ignored. */
  onError?: (err: Error) => void;
  informer?: InformerOptions;
}

/** Where a backend Service is served: there is no cluster network, so a loopback port stands for it. */
export interface BackendEndpoint {
  /** HTTP requests go here. */
  port: number;
  /** TCP connections go here; default `port`. */
  tcpPort?: number;
}

export interface RootEndpoint {
  namespace: string;
  root: string;
  host: typeof LOOPBACK;
  httpPort: number;
  tcpPort: number;
  /** http://127.0.0.1:PORT — send the root's FQDN as Host, as a client in the mesh would. */
  url: string;
}

export interface Mesh {
  /** http://127.0.0.1:PORT/metrics */
  metricsUrl: string;
  /** "127.0.0.1:PORT", as a Prometheus static target. */
  metricsTarget: string;
  metrics: MeshMetrics;
  /** Registers (or moves) a backend Service; takes effect on the next request. */
  setBackend(namespace: string, service: string, endpoint: BackendEndpoint): void;
  removeBackend(namespace: string, service: string): void;
  /**
   * Opens the root's listeners (once; later calls return the same endpoint). A root may also be a
   * backend Service: while no split names it, its requests go straight to its own endpoint.
   */
  addRoot(namespace: string, root: string): Promise<RootEndpoint>;
  /** The root's listeners, once open. */
  endpoint(namespace: string, root: string): RootEndpoint | undefined;
  /** What the root routes HTTP by now (its HTTPRoutes, else its split); undefined when neither names it. */
  route(namespace: string, root: string): Route | undefined;
  /** Called synchronously once each watch event has been applied; returns the unsubscribe. */
  onApplied(listener: (applied: Applied) => void): () => void;
  /**
   * Resolves with the root's route as soon as `match` holds for it: at once if it already does, else
   * when a watch event makes it so. Race-free: a change applied before the call is not missed.
   */
  waitForRoute(
    namespace: string,
    root: string,
    match: (route: Route | undefined) => boolean,
    timeoutMs?: number,
  ): Promise<Route | undefined>;
  /** Resolves once no HTTPRoute status write is under way or due (each watch event schedules one). */
  routeStatusSettled(): Promise<void>;
  /** HTTPRoute status writes sent so far, and conflicts met. */
  routeStatusStats(): RouteStatusWriterStats;
  stop(): Promise<void>;
}

const key = (namespace: string, name: string) => `${namespace}/${name}`;
const asError = (err: unknown) => (err instanceof Error ? err : new Error(String(err)));

export async function startMesh(kc: KubeConfig, opts: MeshOptions = {}): Promise<Mesh> {
  const onError = opts.onError ?? (() => {});
  const defaultSource = opts.defaultSource ?? DEFAULT_SOURCE;
  const listenOnSplitRoots = opts.listenOnSplitRoots ?? true;
  const table = new RouteTable();
  const metrics = new MeshMetrics();
  const backends = new Map<string, BackendEndpoint>();
  const roots = new Map<string, Promise<RootEndpoint>>();
  const opened = new Map<string, { endpoint: RootEndpoint; listeners: Listener[] }>();
  const listeners = new Set<(applied: Applied) => void>();
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  let stopped = false;

  /**
   * One watch's informer options: a failure is reported as "<kind> watch failed" unless `quiet` says it
   * is reported another way; a 429 (the server asking to wait, as while a new CRD's watch cache
   * initializes) is waited out, not reported.
   */
  const watchOptions = (kind: string, quiet: () => boolean = () => false): InformerOptions => ({
    onThrottled: () => {},
    ...opts.informer,
    onError: (err, retryInMs) => {
      opts.informer?.onError?.(err, retryInMs);
      if (quiet()) return;
      onError(new Error(`${kind} watch failed, retrying in ${retryInMs} ms: ${asError(err).message}`));
    },
  });

  const gatewayAPI = opts.gatewayAPI ?? true;
  const services = gatewayAPI
    ? new Informer<KubernetesObject>(
        kc,
        { apiVersion: 'v1', kind: 'Service', plural: 'services', namespace: opts.namespace },
        watchOptions('Service'),
      )
    : undefined;
  const serviceExists = (namespace: string, name: string) => services?.get(name, namespace) !== undefined;

  const metricsServer = await serveMetrics(metrics.registry);

  // A Service nothing routes as a root is reached directly, as in OSM: its own endpoint, when one is
  // registered (the preview traffic a blue-green run checks at weight 0 goes this way).
  const direct = (namespace: string, root: string) => (backends.has(key(namespace, root)) ? root : undefined);
  const portOf = (namespace: string, protocol: 'http' | 'tcp') => (service: string) => {
    const b = backends.get(key(namespace, service));
    return protocol === 'tcp' ? (b?.tcpPort ?? b?.port) : b?.port;
  };
  const tcpRouting = (namespace: string, root: string): RootRouting => ({
    namespace,
    root,
    pick: () => table.pick(namespace, root, 'tcp') ?? direct(namespace, root),
    portOf: portOf(namespace, 'tcp'),
  });
  const httpRouting = (namespace: string, root: string): HttpRootRouting => ({
    namespace,
    root,
    decide: (req) => {
      const decision = table.decideHttp(namespace, root, req, (name) => serviceExists(namespace, name));
      if (decision) return decision;
      const service = direct(namespace, root);
      return service === undefined ? undefined : { ok: true, service };
    },
    portOf: portOf(namespace, 'http'),
  });

  async function open(namespace: string, root: string): Promise<RootEndpoint> {
    const started: Listener[] = [];
    try {
      started.push(
        await startHttpListener({ routing: httpRouting(namespace, root), metrics, defaultSource, agent }),
      );
      started.push(await startTcpListener({ routing: tcpRouting(namespace, root), metrics }));
    } catch (err) {
      await Promise.all(started.map((l) => l.close()));
      throw err;
    }
    const [http, tcp] = started as [Listener, Listener];
    const endpoint: RootEndpoint = {
      namespace,
      root,
      host: LOOPBACK,
      httpPort: http.port,
      tcpPort: tcp.port,
      url: `http://${LOOPBACK}:${http.port}`,
    };
    // stop() may have run while the listeners were opening; it could not close what it did not know of.
    if (stopped) {
      await Promise.all(started.map((l) => l.close()));
      throw new Error('the mesh was stopped');
    }
    opened.set(key(namespace, root), { endpoint, listeners: started });
    return endpoint;
  }

  function addRoot(namespace: string, root: string): Promise<RootEndpoint> {
    if (stopped) return Promise.reject(new Error('the mesh was stopped'));
    const k = key(namespace, root);
    let p = roots.get(k);
    if (!p) {
      p = open(namespace, root);
      roots.set(k, p);
      // A failed open may be tried again by the next call.
      p.catch(() => roots.delete(k));
    }
    return p;
  }

  function onApplied(listener: (applied: Applied) => void): () => void {
    listeners.add(listener);
    return () => listeners.delete(listener);
  }

  function announce(applied: Applied): void {
    for (const l of [...listeners]) {
      try {
        l(applied);
      } catch (err) {
        onError(asError(err));
      }
    }
  }

  const listenOn = (namespace: string, root: string) => {
    if (!listenOnSplitRoots || roots.has(key(namespace, root))) return;
    addRoot(namespace, root).catch((err: unknown) => {
      if (!stopped) onError(asError(err));
    });
  };

  // The handlers change the table before they return, so the request after the event already follows it.
  const onSplit = (obj: KubernetesObject) => {
    const result = table.apply(obj);
    if (!result.ok) {
      onError(new Error(result.reason));
      return;
    }
    listenOn(result.applied.namespace, result.applied.root);
    announce(result.applied);
  };
  const informer = new Informer<KubernetesObject>(
    kc,
    {
      apiVersion: opts.apiVersion ?? `${SMI_GROUP}/v1alpha2`,
      kind: 'TrafficSplit',
      plural: TRAFFICSPLIT_PLURAL,
      namespace: opts.namespace,
    },
    watchOptions('TrafficSplit'),
  );
  informer
    .onAdd(onSplit)
    .onUpdate(onSplit)
    .onDelete((obj) => {
      const applied = table.remove(obj);
      if (applied) announce(applied);
    });

  const httpRoutes: Informer<KubernetesObject> | undefined = gatewayAPI
    ? new Informer<KubernetesObject>(
        kc,
        {
          apiVersion: `${GATEWAY_GROUP}/v1`,
          kind: 'HTTPRoute',
          plural: HTTPROUTE_PLURAL,
          namespace: opts.namespace,
        },
        // Not served is said once, on the state change below, rather than at every retry.
        watchOptions('HTTPRoute', () => httpRoutes?.state() === 'notServed'),
      )
    : undefined;
  const statusWriter = new RouteStatusWriter(kc, {
    cached: (namespace, name) => httpRoutes?.get(name, namespace),
    serviceExists,
    onError,
  });
  const onHttpRoute = (obj: KubernetesObject) => {
    for (const applied of table.applyHttpRoute(obj)) {
      if (!applied.deleted) listenOn(applied.namespace, applied.root);
      announce(applied);
    }
    // Every event, the mesh's own status writes included: the writer sends nothing when nothing changed,
    // and takes its entries off a route that no longer names a Service parent.
    statusWriter.schedule(obj.metadata?.namespace ?? '', obj.metadata?.name ?? '');
  };
  httpRoutes
    ?.onAdd(onHttpRoute)
    .onUpdate(onHttpRoute)
    .onDelete((obj) => {
      for (const applied of table.removeHttpRoute(obj)) announce(applied);
    })
    .onStateChange((state) => {
      if (state === 'notServed') {
        onError(
          new Error(
            `HTTPRoutes (${GATEWAY_GROUP}/v1) are not served: the Gateway API CRDs are not installed; ` +
              'the mesh routes by TrafficSplits, and takes up HTTPRoutes once they are',
          ),
        );
      }
    });
  // A Service appearing or going changes the ResolvedRefs of the routes of its namespace.
  const onService = (svc: KubernetesObject) => {
    const namespace = svc.metadata?.namespace ?? '';
    for (const route of httpRoutes?.list(namespace) ?? []) {
      statusWriter.schedule(namespace, route.metadata?.name ?? '');
    }
  };
  services?.onAdd(onService).onDelete(onService);

  try {
    // Services first: the routes' first status is computed with every existing Service known.
    await services?.start();
    await informer.start();
    if (httpRoutes) {
      const started = httpRoutes.start();
      // Without the CRDs the first list never succeeds; the informer retries in the background.
      await Promise.race([
        started,
        new Promise<void>((resolve) =>
          httpRoutes.onStateChange((state) => {
            if (state === 'notServed') resolve();
          }),
        ),
      ]);
    }
  } catch (err) {
    informer.stop();
    services?.stop();
    httpRoutes?.stop();
    await metricsServer.close();
    throw err;
  }

  return {
    metricsUrl: metricsServer.url,
    metricsTarget: metricsServer.target,
    metrics,
    setBackend(namespace, service, endpoint) {
      backends.set(key(namespace, service), { ...endpoint });
    },
    removeBackend(namespace, service) {
      backends.delete(key(namespace, service));
    },
    addRoot,
    endpoint: (namespace, root) => opened.get(key(namespace, root))?.endpoint,
    route: (namespace, root) => table.route(namespace, root),
    routeStatusSettled: () => statusWriter.idle(),
    routeStatusStats: () => ({ ...statusWriter.stats }),
    onApplied,
    waitForRoute(namespace, root, match, timeoutMs = 10_000) {
      const now = table.route(namespace, root);
      if (match(now)) return Promise.resolve(now);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          unsubscribe();
          reject(new Error(`${namespace}/${root}: no matching route within ${timeoutMs} ms`));
        }, timeoutMs);
        const unsubscribe = onApplied((applied) => {
          if (applied.namespace !== namespace || applied.root !== root) return;
          const route = table.route(namespace, root);
          if (!match(route)) return;
          clearTimeout(timer);
          unsubscribe();
          resolve(route);
        });
      });
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      informer.stop();
      httpRoutes?.stop();
      services?.stop();
      await statusWriter.stop();
      listeners.clear();
      await Promise.allSettled([...roots.values()]);
      const all = [...opened.values()].flatMap((o) => o.listeners);
      opened.clear();
      await Promise.all([...all.map((l) => l.close()), metricsServer.close()]);
      agent.destroy();
    },
  };
}
