// The world of the rollout integration tests: the suite's control plane, one real Prometheus that
// scrapes an OSM metrics target the tests steer, and per test a namespace with its Services.
import {
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type KubernetesObject,
} from '@kubernetes/client-node';
import type { Rollout, RolloutSpec } from '../../src/api/v1alpha1.js';
import { Informer } from '../../src/k8s/informer.js';
import type { ControlPlane } from '../../src/sandbox/control-plane/index.js';
import { PrometheusClient } from '../../src/analysis/prometheus-client.js';
import {
  startOsmMetricsTarget,
  type OsmMetricsTarget,
  type TrafficProfile,
} from '../../src/sandbox/apps/osm-metrics-target.js';
import { startPrometheus, type PrometheusServer } from '../../src/sandbox/prometheus/launcher.js';
import { sharedControlPlane, testNamespace } from './control-plane.js';
import { EventLog } from './events.js';
import { waitFor } from '../../src/sandbox/wait.js';
import {
  backendsOf,
  foreignRoute,
  handEdit,
  maskedSpec,
  personsRoute,
  resourceOf,
  type RouterKind,
} from './route-under-test.js';

export const ROLLOUT = { group: 'perch.dev', version: 'v1alpha1', plural: 'rollouts' } as const;

// A fixed 5 s window: with 1 s scrapes a rate needs a few samples, whatever the check interval.
// `or vector(0)` as SPEC §2 writes it: a canary answering only 5xx reads 0 %, not an empty result.
export const SUCCESS_RATE =
  '(sum(rate(osm_request_total{destination_namespace="{{ namespace }}",destination_name="{{ canary }}",response_code!~"5.*"}[5s])) or vector(0))' +
  ' / sum(rate(osm_request_total{destination_namespace="{{ namespace }}",destination_name="{{ canary }}"}[5s])) * 100';

export const HEALTHY: TrafficProfile = { rps: 50, errorRate: 0, latencyMs: 20 };

/** spec.analysis with 1 s checks of the success rate against {min: 99}. */
export function analysis(
  overrides: Partial<NonNullable<RolloutSpec['analysis']>> = {},
): NonNullable<RolloutSpec['analysis']> {
  return {
    interval: '1s',
    failureLimit: 0,
    inconclusiveLimit: 2,
    errorLimit: 4,
    metrics: [{ name: 'request-success-rate', query: SUCCESS_RATE, thresholdRange: { min: 99 } }],
    ...overrides,
  };
}

/** Traffic to `canary` at `profile`, and Prometheus already answering for it. */
export async function canaryTraffic(e: RolloutEnv, profile = HEALTHY, canary = 'web-v2'): Promise<void> {
  const { target, prometheus } = await sharedPrometheus();
  target.set(e.ns, canary, profile);
  const client = new PrometheusClient({ address: prometheus.url });
  const q = SUCCESS_RATE.replaceAll('{{ namespace }}', e.ns).replaceAll('{{ canary }}', canary);
  await waitFor(
    async () => {
      const r = await client.query(q);
      return r.ok &&
        r.data.resultType === 'vector' &&
        r.data.result.length === 1 &&
        r.data.result[0]!.value[1] !== 'NaN'
        ? true
        : undefined;
    },
    { what: `Prometheus data for ${e.ns}/${canary}`, timeoutMs: 30_000, intervalMs: 250 },
  );
}

let shared: Promise<{ prometheus: PrometheusServer; target: OsmMetricsTarget }> | undefined;

/** One Prometheus (1 s scrapes) and one OSM target per mocha run; the root hook stops them. */
export function sharedPrometheus(): Promise<{ prometheus: PrometheusServer; target: OsmMetricsTarget }> {
  shared ??= (async () => {
    const target = await startOsmMetricsTarget();
    const prometheus = await startPrometheus({
      jobs: [{ name: 'mesh', targets: [target.target] }],
      scrapeInterval: '1s',
    });
    return { prometheus, target };
  })();
  return shared;
}

export async function stopSharedPrometheus(): Promise<void> {
  if (!shared) return;
  const s = await shared.catch(() => undefined);
  shared = undefined;
  await s?.prometheus.stop();
  await s?.target.close();
}

export interface SplitVersion {
  type: string;
  canary: number;
  stable: number;
  backends: string;
}

export class RolloutEnv {
  readonly kc: KubeConfig;
  readonly api: CustomObjectsApi;
  readonly core: CoreV1Api;
  /** Every version of every routing object (TrafficSplit or HTTPRoute) in the namespace, as the watch delivered them. */
  readonly splits = new EventLog<SplitVersion & { name: string }>();
  readonly rollouts = new EventLog<Rollout>();
  /** HTTPRoute versions that changed more than the weights of Perch's backendRefs (must stay empty). */
  readonly routeChanges: string[] = [];
  private readonly informers: Informer<KubernetesObject>[] = [];

  private constructor(
    readonly cp: ControlPlane,
    readonly ns: string,
    /** The router the Rollouts of this namespace use unless their spec names one. */
    readonly router: RouterKind,
  ) {
    this.kc = cp.kubeConfig();
    this.api = this.kc.makeApiClient(CustomObjectsApi);
    this.core = this.kc.makeApiClient(CoreV1Api);
  }

  static async create(
    prefix: string,
    services = ['web', 'web-v1', 'web-v2'],
    router: RouterKind = 'smi',
  ): Promise<RolloutEnv> {
    const cp = await sharedControlPlane();
    const env = new RolloutEnv(cp, await testNamespace(cp.kubeConfig(), prefix), router);
    for (const name of services) await env.service(name);
    await env.watch();
    return env;
  }

  async service(name: string): Promise<void> {
    await this.core.createNamespacedService({
      namespace: this.ns,
      body: { metadata: { name }, spec: { ports: [{ port: 80, name: 'http' }], selector: { app: name } } },
    });
  }

  private async watch(): Promise<void> {
    const resource = resourceOf(this.router);
    const routes = new Informer<KubernetesObject>(this.kc, { ...resource, namespace: this.ns });
    const previous = new Map<string, KubernetesObject>();
    const record = (type: string) => (o: KubernetesObject) => {
      const name = o.metadata?.name ?? '';
      const backends = backendsOf(this.router, o, this.stableOf(o));
      const weight = (svc: string) => backends.find((b) => b.service === svc)?.weight ?? 0;
      this.splits.push({
        type,
        name,
        canary: weight(this.canaryOf(o)),
        stable: weight(this.stableOf(o)),
        backends: backends.map((b) => `${b.service}=${b.weight}`).join(','),
      });
      // A route deleted and made again (the CRD removed, say) starts a new history.
      if (type === 'delete') previous.delete(name);
      if (this.router === 'gatewayapi' && type !== 'delete') {
        // Both versions masked alike, with the Services Perch routes by now (a new run may name another).
        const last = previous.get(name);
        const [before, now] = [last, o].map((v) => v && maskedSpec(v, this.perchServices()));
        if (before !== undefined && before !== now) this.routeChanges.push(`${name}: ${before} -> ${now}`);
        previous.set(name, o);
      }
    };
    routes.onAdd(record('add')).onUpdate(record('update')).onDelete(record('delete'));
    const rollouts = new Informer<KubernetesObject>(this.kc, {
      apiVersion: 'perch.dev/v1alpha1',
      kind: 'Rollout',
      plural: 'rollouts',
      namespace: this.ns,
    });
    rollouts.onAdd((r) => this.rollouts.push(r as Rollout)).onUpdate((r) => this.rollouts.push(r as Rollout));
    await Promise.all([routes.start(), rollouts.start()]);
    this.informers.push(routes, rollouts);
  }

  /** The Services whose weights Perch writes in this namespace (the only fields of a route it may change). */
  private perchServices(): Set<string> {
    return new Set(['web-v1', 'web-v2', ...this.stableServices.values(), ...this.canaryServices.values()]);
  }

  /** Stable and canary Services of the Rollout that owns a split (set by the test via spec). */
  stableServices = new Map<string, string>();
  canaryServices = new Map<string, string>();
  private stableOf = (o: KubernetesObject) => this.stableServices.get(o.metadata?.name ?? '') ?? 'web-v1';
  private canaryOf = (o: KubernetesObject) => this.canaryServices.get(o.metadata?.name ?? '') ?? 'web-v2';

  async createRollout(
    name: string,
    spec: Partial<RolloutSpec>,
    annotations?: Record<string, string>,
  ): Promise<Rollout> {
    // Over the Gateway API, a Rollout takes over a person's HTTPRoute (handed over by perch.dev/managed-by)
    // unless one exists already: the recording watch then shows Perch changed nothing of it but weights.
    const routing = spec.trafficRouting ?? (this.router === 'gatewayapi' ? { gatewayAPI: {} } : undefined);
    if (this.router === 'gatewayapi' && !spec.trafficRouting && !(await this.route(name)))
      await this.createRoute(personsRoute(name, name));
    return (await this.api.createNamespacedCustomObject({
      ...ROLLOUT,
      namespace: this.ns,
      body: {
        apiVersion: 'perch.dev/v1alpha1',
        kind: 'Rollout',
        metadata: { name, annotations },
        spec: {
          service: 'web',
          stableService: 'web-v1',
          canaryService: 'web-v2',
          ...spec,
          ...(routing ? { trafficRouting: routing } : {}),
        },
      },
    })) as Rollout;
  }

  /** Creates a routing object of this namespace's router. */
  async createRoute(body: KubernetesObject): Promise<void> {
    const { group, version, plural } = resourceOf(this.router);
    await this.api.createNamespacedCustomObject({ group, version, plural, namespace: this.ns, body });
  }

  /** A routing object nobody gave Perch, at stable/canary weights. */
  createForeignRoute(name: string, stable: number, canary: number): Promise<void> {
    return this.createRoute(foreignRoute(this.router, name, stable, canary));
  }

  /** A person sets the weights by hand, as `kubectl patch` would. */
  async setWeightsByHand(name: string, stable: number, canary: number): Promise<void> {
    const { group, version, plural } = resourceOf(this.router);
    const current = await this.route(name);
    if (!current) throw new Error(`no ${plural} ${name} to edit`);
    await this.api.patchNamespacedCustomObject(
      {
        group,
        version,
        plural,
        namespace: this.ns,
        name,
        body: handEdit(this.router, current, stable, canary),
      },
      setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
    );
  }

  async annotate(name: string, annotations: Record<string, string | null>): Promise<void> {
    await this.api.patchNamespacedCustomObject(
      { ...ROLLOUT, namespace: this.ns, name, body: { metadata: { annotations } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  async patchSpec(name: string, spec: Partial<RolloutSpec>): Promise<void> {
    await this.api.patchNamespacedCustomObject(
      { ...ROLLOUT, namespace: this.ns, name, body: { spec } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  async get(name: string): Promise<Rollout> {
    return (await this.api.getNamespacedCustomObject({ ...ROLLOUT, namespace: this.ns, name })) as Rollout;
  }

  /** The first Rollout version (seen or to come) that matches. */
  until(name: string, match: (r: Rollout) => boolean, what: string, timeoutMs = 60_000): Promise<Rollout> {
    return this.rollouts.find((r) => r.metadata?.name === name && match(r), timeoutMs, `${name}: ${what}`);
  }

  /**
   * The first version of the Rollout in `phase`. When that version says its traffic is routed, this also
   * waits for the route's own watch to show that weight: the two watches deliver independently, and a
   * test reading weights() right after a phase must not race the route's event.
   */
  async phase(name: string, phase: string, timeoutMs?: number): Promise<Rollout> {
    const r = await this.until(name, (x) => x.status?.phase === phase, `phase ${phase}`, timeoutMs);
    const routed = r.status?.conditions?.find((c) => c.type === 'TrafficRouted')?.status === 'True';
    const [kind, route] = (r.status?.runTarget?.route ?? '').split('/');
    const weight = r.status?.canaryWeight;
    // The recording reads the first rule routing to stable: a Rollout choosing its rules is read by its test.
    const chosen = r.spec.trafficRouting?.gatewayAPI?.rules !== undefined;
    if (routed && !chosen && route && kind === resourceOf(this.router).kind && weight !== undefined) {
      const last = () => this.splits.seen.filter((v) => v.name === route && v.type !== 'delete').at(-1);
      await waitFor(async () => (last()?.canary === weight ? true : undefined), {
        what: `${route}: the route's watch at canary ${weight}`,
        timeoutMs: 10_000,
        intervalMs: 50,
      });
    }
    return r;
  }

  /** The distinct consecutive canary weights the TrafficSplit `name` went through. */
  weights(name: string): number[] {
    const out: number[] = [];
    for (const v of this.splits.seen)
      if (v.name === name && v.type !== 'delete' && out[out.length - 1] !== v.canary) out.push(v.canary);
    return out;
  }

  async events(name: string): Promise<{ reason: string; message: string; type: string }[]> {
    const list = await this.core.listNamespacedEvent({
      namespace: this.ns,
      fieldSelector: `involvedObject.name=${name},involvedObject.kind=Rollout`,
    });
    return list.items
      .sort(
        (a, b) =>
          Date.parse(String(a.firstTimestamp ?? a.eventTime)) -
          Date.parse(String(b.firstTimestamp ?? b.eventTime)),
      )
      .map((e) => ({ reason: e.reason ?? '', message: e.message ?? '', type: e.type ?? '' }));
  }

  /** The Events once one with `reason` is among them (Events are written just after the status). */
  async eventsUntil(
    name: string,
    reason: string,
  ): Promise<{ reason: string; message: string; type: string }[]> {
    return waitFor(
      async () => {
        const events = await this.events(name);
        return events.some((e) => e.reason === reason) ? events : undefined;
      },
      { what: `${name}: an Event ${reason}`, timeoutMs: 15_000, intervalMs: 200 },
    );
  }

  /** The routing object `name` (of this namespace's router) as the API server has it now; undefined when there is none. */
  async route(name: string): Promise<KubernetesObject | undefined> {
    const { group, version, plural } = resourceOf(this.router);
    try {
      return (await this.api.getNamespacedCustomObject({
        group,
        version,
        plural,
        namespace: this.ns,
        name,
      })) as KubernetesObject;
    } catch (err) {
      if ((err as { code?: number }).code === 404) return undefined;
      throw err;
    }
  }

  /**
   * Deletes the Rollout and returns once the garbage collector has acted on its deletion: a ConfigMap
   * owned by the Rollout is made first, and its removal by the collector is the sign.
   */
  async deleteAndAwaitGarbageCollector(name: string): Promise<void> {
    const rollout = await this.get(name);
    const sentinel = `${name}-gc-sentinel`;
    await this.core.createNamespacedConfigMap({
      namespace: this.ns,
      body: {
        metadata: {
          name: sentinel,
          ownerReferences: [
            { apiVersion: 'perch.dev/v1alpha1', kind: 'Rollout', name, uid: rollout.metadata!.uid! },
          ],
        },
      },
    });
    await this.api.deleteNamespacedCustomObject({ ...ROLLOUT, namespace: this.ns, name });
    await waitFor(
      async () =>
        this.core
          .readNamespacedConfigMap({ namespace: this.ns, name: sentinel })
          .then(() => undefined)
          .catch((err: { code?: number }) => (err.code === 404 ? true : undefined)),
      { what: `the garbage collector to act on Rollout ${name}`, timeoutMs: 60_000, intervalMs: 250 },
    );
  }

  close(): void {
    for (const i of this.informers) i.stop();
  }
}
