// The demo's data plane: plays the service mesh for root Services on loopback, routing by TrafficSplit weights.
// Wires the TrafficSplit watch to the route table, one HTTP and one TCP listener per root, and /metrics.
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { Agent } from 'node:http';
import { Informer, type InformerOptions } from '../../k8s/informer.js';
import { SMI_GROUP, TRAFFICSPLIT_PLURAL } from '../../k8s/trafficsplit/router.js';
import type { TrafficSource } from '../apps/osm-metrics-target.js';
import { LOOPBACK } from '../free-port.js';
import { startHttpListener, type Listener, type RootRouting } from './http-proxy.js';
import { DEFAULT_SOURCE, MeshMetrics, serveMetrics } from './metrics.js';
import { RouteTable, type AppliedSplit, type Protocol, type Route } from './route-table.js';
import { startTcpListener } from './tcp-proxy.js';

export type { AppliedSplit, Route, RouteBackend } from './route-table.js';
export { SOURCE_HEADERS, DEFAULT_SOURCE } from './metrics.js';

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
  /** Open listeners for every root a split names, not just those given to addRoot(); default true. */
  listenOnSplitRoots?: boolean;
  /** Watch errors, refused splits and listener failures; the mesh carries on. Default: ignored. */
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
  /** What the root routes by now; undefined when no split names it. */
  route(namespace: string, root: string): Route | undefined;
  /** Called synchronously once each watch event has been applied; returns the unsubscribe. */
  onApplied(listener: (applied: AppliedSplit) => void): () => void;
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
  const listeners = new Set<(applied: AppliedSplit) => void>();
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  let stopped = false;

  const metricsServer = await serveMetrics(metrics.registry);

  const routing = (namespace: string, root: string, protocol: Protocol): RootRouting => ({
    namespace,
    root,
    // A Service no split names as its root is reached directly, as in OSM: its own endpoint, when one
    // is registered (the preview traffic a blue-green run checks at weight 0 goes this way).
    pick: () =>
      table.pick(namespace, root, protocol) ?? (backends.has(key(namespace, root)) ? root : undefined),
    portOf: (service) => {
      const b = backends.get(key(namespace, service));
      return protocol === 'tcp' ? (b?.tcpPort ?? b?.port) : b?.port;
    },
  });

  async function open(namespace: string, root: string): Promise<RootEndpoint> {
    const started: Listener[] = [];
    try {
      started.push(
        await startHttpListener({ routing: routing(namespace, root, 'http'), metrics, defaultSource, agent }),
      );
      started.push(await startTcpListener({ routing: routing(namespace, root, 'tcp'), metrics }));
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

  function onApplied(listener: (applied: AppliedSplit) => void): () => void {
    listeners.add(listener);
    return () => listeners.delete(listener);
  }

  function announce(applied: AppliedSplit): void {
    for (const l of [...listeners]) {
      try {
        l(applied);
      } catch (err) {
        onError(asError(err));
      }
    }
  }

  // The handlers change the table before they return, so the request after the event already follows it.
  const onSplit = (obj: KubernetesObject) => {
    const result = table.apply(obj);
    if (!result.ok) {
      onError(new Error(result.reason));
      return;
    }
    if (listenOnSplitRoots && !roots.has(key(result.applied.namespace, result.applied.root))) {
      addRoot(result.applied.namespace, result.applied.root).catch((err: unknown) => {
        if (!stopped) onError(asError(err));
      });
    }
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
    {
      ...opts.informer,
      onError: (err, retryInMs) => {
        opts.informer?.onError?.(err, retryInMs);
        onError(new Error(`TrafficSplit watch failed, retrying in ${retryInMs} ms: ${asError(err).message}`));
      },
    },
  );
  informer
    .onAdd(onSplit)
    .onUpdate(onSplit)
    .onDelete((obj) => {
      const applied = table.remove(obj);
      if (applied) announce(applied);
    });

  try {
    await informer.start();
  } catch (err) {
    informer.stop();
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
      listeners.clear();
      await Promise.allSettled([...roots.values()]);
      const all = [...opened.values()].flatMap((o) => o.listeners);
      opened.clear();
      await Promise.all([...all.map((l) => l.close()), metricsServer.close()]);
      agent.destroy();
    },
  };
}
