// `perch uninstall`'s work with no controller running: each Rollout let go as its deletion lets it go
// (SPEC §3), through the reconciler's own deletion path on fresh reads, retried on conflict. The Rollouts stay.
import {
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesObject,
  type V1Service,
} from '@kubernetes/client-node';
import { TRAFFIC_FINALIZER, type Rollout } from '../api/v1alpha1.js';
import { apiError, type ApiError } from '../k8s/api-error.js';
import type { ServedState } from '../k8s/informer.js';
import type { RouteTarget } from '../k8s/router.js';
import { Routers } from '../k8s/routers.js';
import { liveWeight } from '../machine/traffic.js';
import { KubeActuator, WriteError } from './actuator.js';
import { Expectations } from './expectations.js';
import { PrometheusAllowlist } from './prometheus-allowlist.js';
import { reconcile, type Actuator, type ClusterView } from './reconciler.js';
import { routeTarget } from './route-target.js';
import { servicesRead } from './validate.js';

const ROLLOUTS = { group: 'perch.dev', version: 'v1alpha1', plural: 'rollouts' } as const;
/** Conflicts and transient errors are retried on a fresh read this many times in all, then reported. */
const MAX_ATTEMPTS = 6;

/** The routing object as uninstall first found it. */
export type FoundRoute =
  | { state: 'missing' }
  | { state: 'notServed' }
  | { state: 'routed'; canaryWeight: number; owned: 'owner' | 'annotated' | 'foreign' };

/** What became of one Rollout. */
export interface RolloutRelease {
  namespace: string;
  name: string;
  /** nothing: it carries no finalizer of Perch's; gone: deleted meanwhile; failed: `error`, the finalizer kept. */
  outcome: 'released' | 'nothing' | 'gone' | 'failed';
  /** `TrafficSplit web`, `HTTPRoute web`. */
  route: string;
  found?: FoundRoute;
  /** The live version (SPEC §3) and its Service. */
  live: 'stable' | 'canary';
  liveService: string;
  /** The canary weight written (0: stable at 100; 100: canary at 100), when a write was needed. */
  wrote?: number;
  /** The routing object's ownerReference was removed and perch.dev/released-from set. */
  released: boolean;
  finalizerRemoved: boolean;
  /** How many looks it took (a conflict or a passing fault reads everything again). */
  attempts?: number;
  error?: string;
}

export interface ReleaseOptions {
  /** Decide and report, write nothing. */
  dryRun?: boolean;
  /** The clock, for the deletion's Event; default Date.now. */
  now?: () => number;
}

/** A routing object read by GET: the object, or that it is missing, or that its resource is not served. */
type RouteRead = { served: ServedState; current?: KubernetesObject };

/**
 * The reconciler's view of one Rollout, from reads made now rather than watch caches. On deletion the
 * machine needs the routing object, whether the live Service exists and its port; MetricTemplates and
 * the Prometheus allowlist only decide validity, which a deletion does not wait for when the live
 * Service exists (and a valid spec implies it does), so none is read and none is allowed.
 */
function viewOf(
  rollout: Rollout,
  services: Map<string, V1Service>,
  route: RouteRead,
  routers: Routers,
): ClusterView {
  return {
    rollout: (namespace, name) =>
      namespace === rollout.metadata?.namespace && name === rollout.metadata?.name ? rollout : undefined,
    serviceExists: (_namespace, name) => services.has(name),
    metricTemplate: () => undefined,
    admission: { prometheus: new PrometheusAllowlist([]) },
    route: () => route.current,
    routeServed: () => route.served,
    router: (target) => routers.for(target),
    servicePort: (_namespace, name) => services.get(name)?.spec?.ports?.[0]?.port,
    window: () => ({ open: true }),
  };
}

/** The same Rollout, as the reconciler sees one being deleted (uninstall lets it go without deleting it). */
function asDeleting(rollout: Rollout, now: number): Rollout {
  const deletionTimestamp = rollout.metadata?.deletionTimestamp ?? new Date(now);
  return { ...rollout, metadata: { ...rollout.metadata, deletionTimestamp } };
}

export class Uninstaller {
  private readonly custom: CustomObjectsApi;
  private readonly core: CoreV1Api;
  private readonly routers: Routers;
  private readonly actuator: KubeActuator;

  constructor(
    kc: KubeConfig,
    private readonly opts: ReleaseOptions = {},
  ) {
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.core = kc.makeApiClient(CoreV1Api);
    this.routers = new Routers(kc);
    // Nothing here decides from a watch cache, so the expectations the actuator records are never asked.
    this.actuator = new KubeActuator(kc, this.routers, new Expectations(), () => {});
  }

  /** Every Rollout of `namespace` (all namespaces when undefined), in namespace/name order. */
  async list(namespace?: string): Promise<Rollout[]> {
    const list = (
      namespace
        ? await this.custom.listNamespacedCustomObject({ ...ROLLOUTS, namespace })
        : await this.custom.listClusterCustomObject(ROLLOUTS)
    ) as { items: Rollout[] };
    const key = (r: Rollout) => `${r.metadata?.namespace}/${r.metadata?.name}`;
    return list.items.sort((a, b) => key(a).localeCompare(key(b)));
  }

  /**
   * Lets one Rollout go: the live version at 100 on its routing object, the object released, the
   * finalizer removed, each write with its precondition. A conflict (someone wrote first) reads
   * everything again and decides again; so does a transient error, a few times.
   */
  async release(listed: Rollout): Promise<RolloutRelease> {
    const namespace = listed.metadata?.namespace ?? '';
    const name = listed.metadata?.name ?? '';
    const report: RolloutRelease = {
      namespace,
      name,
      outcome: 'nothing',
      ...liveOf(listed),
      released: false,
      finalizerRemoved: false,
    };
    for (let attempt = 1; ; attempt++) {
      try {
        // Every attempt decides on the Rollout as it is now: a list made minutes ago, or the version a
        // write just conflicted with, is not what the writes' preconditions should be based on.
        const rollout = await this.getRollout(namespace, name);
        if (!rollout) return { ...report, outcome: 'gone' };
        Object.assign(report, liveOf(rollout));
        if (!rollout.metadata?.finalizers?.includes(TRAFFIC_FINALIZER))
          return { ...report, outcome: report.finalizerRemoved || report.released ? 'released' : 'nothing' };
        await this.releaseOnce(rollout, report);
        return { ...report, outcome: 'released' };
      } catch (err) {
        const kind = err instanceof WriteError ? err.kind : apiError(err).kind;
        report.error = err instanceof WriteError ? err.message : message(apiError(err));
        const again = kind === 'conflict' || kind === 'notFound' || kind === 'transient';
        if (!again || attempt >= MAX_ATTEMPTS) return { ...report, outcome: 'failed' };
        report.attempts = attempt + 1;
        // A conflict means a newer version exists: read it now. A transient error waits a little.
        if (kind === 'transient') await new Promise((done) => setTimeout(done, 250 * 2 ** attempt));
        delete report.error;
      }
    }
  }

  /** One look and one pass of the reconciler's deletion path, recording each write as it succeeds. */
  private async releaseOnce(rollout: Rollout, report: RolloutRelease): Promise<void> {
    const now = (this.opts.now ?? Date.now)();
    const namespace = rollout.metadata?.namespace ?? '';
    const services = await this.services(namespace, servicesRead(rollout));
    const target = routeTarget(rollout, services.get(rollout.spec.stableService)?.spec?.ports?.[0]?.port);
    const route = await this.route(target);
    report.found ??= found(route, target, this.routers);
    const key = `${namespace}/${rollout.metadata?.name ?? ''}`;
    const writes: Actuator = this.opts.dryRun ? dryRun() : this.actuator.for(key, rollout);
    const recording: Actuator = {
      ...writes,
      setWeights: async (t, weight, current) => {
        const r = await writes.setWeights(t, weight, current);
        report.wrote = weight;
        return r;
      },
      releaseTraffic: async (t, current) => {
        const r = await writes.releaseTraffic(t, current);
        report.released = true;
        return r;
      },
      removeFinalizer: async (r) => {
        await writes.removeFinalizer(r);
        report.finalizerRemoved = true;
      },
    };
    const view = viewOf(rollout, services, route, this.routers);
    await reconcile(asDeleting(rollout, now), view, recording, { checks: async () => [] }, now);
  }

  /** The Rollout now; undefined when it is gone. */
  private async getRollout(namespace: string, name: string): Promise<Rollout | undefined> {
    try {
      return (await this.custom.getNamespacedCustomObject({ ...ROLLOUTS, namespace, name })) as Rollout;
    } catch (err) {
      if (apiError(err).kind === 'notFound') return undefined;
      throw err;
    }
  }

  /** The named Services that exist. */
  private async services(namespace: string, names: string[]): Promise<Map<string, V1Service>> {
    const found = new Map<string, V1Service>();
    for (const name of new Set(names)) {
      try {
        found.set(name, await this.core.readNamespacedService({ namespace, name }));
      } catch (err) {
        if (apiError(err).kind !== 'notFound') throw err;
      }
    }
    return found;
  }

  /**
   * The routing object now. A missing object answers a Status NotFound naming it; a resource the
   * cluster does not serve answers a bare 404 ("404 page not found"), as the informer finds it too.
   */
  private async route(target: RouteTarget): Promise<RouteRead> {
    const [group, version] = this.routers.for(target).resource(target).apiVersion.split('/') as [
      string,
      string,
    ];
    const plural = this.routers.for(target).resource(target).plural;
    try {
      const current = (await this.custom.getNamespacedCustomObject({
        group,
        version,
        plural,
        namespace: target.namespace,
        name: target.name,
      })) as KubernetesObject;
      return { served: 'served', current };
    } catch (err) {
      const e = apiError(err);
      if (e.code === 404) return { served: e.reason === 'NotFound' ? 'served' : 'notServed' };
      throw err;
    }
  }
}

/** The routing object and the live version (SPEC §3) of a Rollout as read. */
function liveOf(rollout: Rollout): Pick<RolloutRelease, 'route' | 'live' | 'liveService'> {
  const target = routeTarget(rollout);
  const live = liveWeight(rollout.status ?? {}) === 100 ? 'canary' : 'stable';
  return {
    route: `${target.kind} ${target.name}`,
    live,
    liveService: live === 'canary' ? target.canaryService : target.stableService,
  };
}

function found(route: RouteRead, target: RouteTarget, routers: Routers): FoundRoute {
  if (route.served === 'notServed') return { state: 'notServed' };
  if (!route.current) return { state: 'missing' };
  const read = routers.for(target).read(route.current, target);
  return { state: 'routed', canaryWeight: read.canaryWeight, owned: read.owned };
}

/** Writes nothing: each write is taken as done, so the deletion path runs to its end and says what it would do. */
function dryRun(): Actuator {
  const nothing = async () => undefined;
  return {
    patchStatus: nothing,
    setWeights: nothing,
    releaseTraffic: nothing,
    event: nothing,
    clearAnnotations: nothing,
    addFinalizer: nothing,
    removeFinalizer: nothing,
  };
}

const message = (e: ApiError) => `${e.code ? `${e.code} ${e.reason}: ` : ''}${e.message}`;
