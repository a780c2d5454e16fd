// The controller's wiring: watch caches → work queue → reconcile, with the error's kind choosing what
// comes next. The parts live beside it: actuator, expectations, refusals, check rounds, HTTP endpoints.
import { type KubeConfig, type KubernetesObject, type V1Service } from '@kubernetes/client-node';
import { ANNOTATIONS, type MetricTemplate, type Rollout } from '../api/v1alpha1.js';
import { Informer } from '../k8s/informer.js';
import { configureClient } from '../k8s/client-config.js';
import { LeaderElector } from '../k8s/leader-election.js';
import { countKubeRequests } from '../k8s/request-metrics.js';
import type { RouteResource, RouteTarget } from '../k8s/router.js';
import { Routers } from '../k8s/routers.js';
import { serviceSkeleton, withoutBookkeeping } from '../k8s/slim.js';
import { KubeActuator, WriteError } from './actuator.js';
import { CheckRounds } from './check-rounds.js';
import { CheckRunner } from './checks.js';
import { Expectations } from './expectations.js';
import { PrometheusAllowlist } from './prometheus-allowlist.js';
import { startHttpServer } from './http-server.js';
import type { Logger } from './log.js';
import { ControllerMetrics } from './metrics.js';
import { reconcile, type ClusterView, type ReconcileHooks } from './reconciler.js';
import { routeTarget } from './route-target.js';
import { Refusals } from './refusals.js';
import { SharedByRollouts } from './shared.js';
import { compileWindow } from './window.js';
import { servicesRead, type Admission } from './validate.js';
import { WorkQueue } from './work-queue.js';
import { defaultWorkers } from './workers.js';

export interface ControllerOptions {
  kubeConfig: KubeConfig;
  /** Watch one namespace; all when undefined. */
  namespace?: string;
  prometheusUrl?: string;
  /** URL prefixes a Rollout or MetricTemplate may name as its Prometheus; prometheusUrl is always allowed. */
  allowedPrometheusUrls?: string[];
  /** A shared MetricTemplate catalogue any Rollout's templateRef may name. */
  templateNamespace?: string;
  metricsAddr: string;
  leaderElect: boolean;
  /** The Lease and its timing, when leaderElect is on. */
  leaderElection?: {
    namespace: string;
    name: string;
    identity?: string;
    leaseDurationMs?: number;
    renewDeadlineMs?: number;
    retryPeriodMs?: number;
  };
  /** Called when leadership is lost: the process should exit, as another replica takes over. */
  onLeadershipLost?: () => void;
  log: Logger;
  /** How many Rollouts reconcile at once; default defaultWorkers(). */
  workers?: number;
  /** /healthz fails once a reconcile has run longer than this (default 2 min; every request times out sooner). */
  stuckWorkerMs?: number;
}

export interface RunningController {
  metricsAddress: string;
  stop(): Promise<void>;
}

const key = (namespace: string | undefined, name: string | undefined) => `${namespace ?? ''}/${name ?? ''}`;
/** An object's work-queue key: namespace/name. */
const keyOf = (o: KubernetesObject) => key(o.metadata?.namespace, o.metadata?.name);
const ROLLOUTS = { apiVersion: 'perch.dev/v1alpha1', kind: 'Rollout', plural: 'rollouts' };
const TEMPLATES = { apiVersion: 'perch.dev/v1alpha1', kind: 'MetricTemplate', plural: 'metrictemplates' };
const SERVICES = { apiVersion: 'v1', kind: 'Service', plural: 'services' };
/** SMI's default version (SPEC §2): the routing resource most Rollouts use, cached from the start. */
const DEFAULT_ROUTE: RouteResource = {
  apiVersion: 'split.smi-spec.io/v1alpha2',
  kind: 'TrafficSplit',
  plural: 'trafficsplits',
};
const TERMINAL = new Set(['Succeeded', 'Failed', 'Aborted']);
const DEFAULT_STUCK_WORKER_MS = 120_000;
const CONFLICT_RECHECK_MS = 1000;

export async function runController(opts: ControllerOptions): Promise<RunningController> {
  const { kubeConfig: kc, log } = opts;
  configureClient(kc); // user agent and request timeouts, unless the caller configured them already
  const ns = opts.namespace;
  const metrics = new ControllerMetrics();
  const stopCounting = countKubeRequests(
    kc.getCurrentCluster()?.server ?? 'https://kubernetes.default.svc',
    (verb, resource, code) => metrics.countKubeRequest(verb, resource, code),
  );
  const informerOpts = {
    onError: (err: unknown, retryInMs: number) => log.warn('watch failed; retrying', { err, retryInMs }),
    // The server asked to wait (a 429; perch_kube_requests_total counts them by code): no failure.
    onThrottled: (err: unknown, retryInMs: number) =>
      log.debug('watch turned away by the API server (429); retrying', { err, retryInMs }),
  };
  // The caches keep what reconciles read: no managedFields or last-applied copies, Services as skeletons.
  const rollouts = new Informer<Rollout>(
    kc,
    { ...ROLLOUTS, namespace: ns },
    { ...informerOpts, transform: withoutBookkeeping },
  );
  const services = new Informer<V1Service>(
    kc,
    { ...SERVICES, namespace: ns },
    { ...informerOpts, transform: serviceSkeleton },
  );
  const templateOpts = { ...informerOpts, transform: withoutBookkeeping<MetricTemplate> };
  const templates = new Informer<MetricTemplate>(kc, { ...TEMPLATES, namespace: ns }, templateOpts);
  // A watch of one namespace does not see the --template-namespace catalogue: it gets a cache of its own.
  const catalogue =
    ns !== undefined && opts.templateNamespace !== undefined && opts.templateNamespace !== ns
      ? new Informer<MetricTemplate>(kc, { ...TEMPLATES, namespace: opts.templateNamespace }, templateOpts)
      : undefined;
  const templatesOf = (namespace: string) =>
    catalogue && namespace === opts.templateNamespace ? catalogue : templates;
  const routes = new Map<string, Informer<KubernetesObject>>();
  const routers = new Routers(kc);

  // Transient errors back off with jitter, so Rollouts that failed together do not retry together.
  const queue = new WorkQueue<string>({
    backoff: { jitter: { factor: 0.5, seed: process.pid } },
    onError: (err, k, failures) =>
      log.warn('reconcile failed; retrying with backoff', { rollout: k, failures, err }),
  });
  const enqueueNamespace = (namespace: string | undefined) => {
    for (const r of rollouts.list(namespace)) rounds.requeue(keyOf(r));
  };
  const enqueueOwner = (o: KubernetesObject) => {
    const owner = o.metadata?.ownerReferences?.find(
      (ref) => ref.kind === 'Rollout' && ref.apiVersion === ROLLOUTS.apiVersion,
    )?.name;
    const name = owner ?? o.metadata?.annotations?.[ANNOTATIONS.managedBy];
    if (name) rounds.requeue(key(o.metadata?.namespace, name));
  };

  /** The watch cache of one routing resource (a TrafficSplit or HTTPRoute version), started on first use and never awaited. */
  function routeInformer(resource: RouteResource): Informer<KubernetesObject> {
    const id = `${resource.apiVersion}/${resource.kind}`;
    let informer = routes.get(id);
    if (!informer) {
      informer = new Informer<KubernetesObject>(
        kc,
        { ...resource, namespace: ns },
        {
          transform: withoutBookkeeping,
          onThrottled: informerOpts.onThrottled,
          onError: (err: unknown, retryInMs: number) => {
            // A version the cluster does not serve is reported on its Rollouts, not logged as a failure.
            if (informer?.state() !== 'notServed') informerOpts.onError(err, retryInMs);
          },
        },
      );
      informer.onAdd(enqueueOwner).onUpdate(enqueueOwner).onDelete(enqueueOwner);
      // Served or not any more (a CRD installed or removed): every Rollout looks again.
      informer.onStateChange(() => enqueueNamespace(undefined));
      routes.set(id, informer);
      void informer.start();
    }
    return informer;
  }
  const routeCache = (target: RouteTarget) => routeInformer(routers.for(target).resource(target));

  const expectations = new Expectations();
  /** The last conflict per Rollout (object and version), so a repeat against the same version waits. */
  const conflicts = new Map<string, string>();
  const refusals = new Refusals();
  const looked = new Set<string>();
  const windows = new SharedByRollouts<ReturnType<typeof compileWindow>>();
  const actuator = new KubeActuator(kc, routers, expectations, (err, reason) =>
    log.warn('could not record an Event', { reason, err: err.message }),
  );
  const admission: Admission = {
    prometheus: new PrometheusAllowlist([
      ...(opts.allowedPrometheusUrls ?? []),
      ...(opts.prometheusUrl !== undefined ? [opts.prometheusUrl] : []),
    ]),
    templateNamespace: opts.templateNamespace,
  };
  const runner = new CheckRunner({
    defaultAddress: opts.prometheusUrl,
    admission,
    onOutcome: metrics.countQuery,
    // Another server's words go to the log only, never to status or Events.
    onDetail: (rollout, metric, detail) => log.info('Prometheus said more', { rollout, metric, ...detail }),
  });

  const view: ClusterView = {
    rollout: (namespace, name) => rollouts.get(name, namespace),
    serviceExists: (namespace, name) => services.get(name, namespace) !== undefined,
    metricTemplate: (namespace, name) => templatesOf(namespace).get(name, namespace),
    admission,
    route: (target) => routeCache(target).get(target.name, target.namespace),
    routeServed: (target) => routeCache(target).state(),
    router: (target) => routers.for(target),
    servicePort: (namespace, name) => services.get(name, namespace)?.spec?.ports?.[0]?.port,
    window(rollout, now) {
      const k = keyOf(rollout);
      const w = rollout.spec.window;
      if (!w) {
        windows.release(k);
        return { open: true };
      }
      const id = `${w.schedule}\u0000${w.timeZone ?? ''}`;
      const compiled = windows.acquire(k, id, () => compileWindow(w));
      windows.settle(k, new Set([id]));
      return compiled.ok ? compiled.value.state(now) : { error: compiled.error.message };
    },
  };

  const rounds = new CheckRounds(runner, {
    queue,
    failed: (k, err) => {
      log.error('a round of checks failed unexpectedly', { rollout: k, err });
      queue.addRateLimited(k);
    },
  });

  const hooks: ReconcileHooks = {
    checks: async (rollout, now) =>
      rounds.take(keyOf(rollout), rollout, view, now, !looked.has(keyOf(rollout))),
    firstLook: (rollout) => !looked.has(keyOf(rollout)),
    refused: (rollout, route) => refusals.current(keyOf(rollout), route, rollout.metadata?.generation),
    observed(rollout, before, after, made) {
      const namespace = rollout.metadata?.namespace ?? '';
      const name = rollout.metadata?.name ?? '';
      metrics.observeRollout(namespace, name, after.phase, after.canaryWeight);
      metrics.countChecks(namespace, name, made);
      // A finished run queries nothing: the Prometheus clients only it used can go.
      if (after.phase && TERMINAL.has(after.phase)) runner.forget(keyOf(rollout));
      if (after.phase && TERMINAL.has(after.phase) && before?.phase !== after.phase) {
        const started = after.runStartedAt ? Date.parse(after.runStartedAt) : undefined;
        metrics.countRun(namespace, after.phase, started ? (Date.now() - started) / 1000 : undefined);
      }
    },
  };

  /** A Rollout that is gone: nothing of it stays in memory. */
  function forget(k: string, namespace: string, name: string): void {
    metrics.forgetRollout(namespace, name);
    expectations.forget(k);
    conflicts.delete(k);
    refusals.forget(k);
    rounds.forget(k);
    looked.delete(k);
    windows.release(k);
    runner.forget(k);
  }

  /** The error's kind chooses what comes next (DESIGN, principle 5). */
  function failed(k: string, rollout: Rollout, route: KubernetesObject | undefined, err: unknown): void {
    if (!(err instanceof WriteError)) {
      log.error('reconcile failed: a bug; retrying with backoff', { rollout: k, err });
      throw err;
    }
    switch (err.kind) {
      case 'conflict': {
        // Decide again now, on fresh state: the cache most often shows the newer version already, or
        // its watch event brings the key back at once. A second conflict against the same version
        // waits for that event, looking again after a second at most (an answer that was not the
        // object's, a proxy's, proves no newer version exists).
        queue.forget(k);
        const again = `${err.object}/${err.basedOn}`;
        if (conflicts.get(k) === again) queue.addAfter(k, CONFLICT_RECHECK_MS);
        else queue.add(k);
        conflicts.set(k, again);
        log.debug('write conflict; deciding again on fresh state', { rollout: k, err: err.message });
        return;
      }
      case 'invalid':
      case 'forbidden':
        queue.forget(k);
        if (err.object === 'route' && err.canaryWeight !== undefined) {
          // Refused (an admission webhook, a 422): shown on the Rollout, not sent again until something
          // changes; the progress deadline ends a run whose weight can never be written.
          refusals.record(k, err.canaryWeight, err.error.message, route, rollout.metadata?.generation);
          void actuator.event(rollout, 'Warning', 'TrafficRefused', err.message);
          queue.add(k);
          return;
        }
        log.error('the API server refused a write; waiting for the Rollout to change', {
          rollout: k,
          err: err.message,
        });
        return;
      case 'notFound':
      case 'notOwned':
        // The cache was behind (the object went away, or is someone else's): its watch event brings the key back.
        queue.forget(k);
        log.debug('write found the object changed', { rollout: k, err: err.message });
        return;
      case 'bug':
        log.error('reconcile failed: a bug; retrying with backoff', { rollout: k, err: err.message });
        throw err;
      case 'transient':
        throw err;
    }
  }

  async function handle(k: string): Promise<void> {
    const [namespace, name] = k.split('/') as [string, string];
    const rollout = rollouts.get(name, namespace);
    if (!rollout) return forget(k, namespace, name);
    const target = routeTarget(rollout);
    const informer = routeCache(target);
    // Not listed yet: its first list (served or not) brings every Rollout back (onStateChange).
    if (informer.state() === 'unknown') return;
    const route = informer.get(target.name, target.namespace);
    // Never decide on a cache older than our own last write; the watch event brings the key back.
    if (expectations.behind(k, rollout, route)) return;
    const end = metrics.reconcileDuration.startTimer();
    let result;
    try {
      result = await reconcile(rollout, view, actuator.for(k, rollout), hooks);
    } catch (err) {
      return failed(k, rollout, route, err);
    } finally {
      end();
    }
    looked.add(k);
    conflicts.delete(k);
    queue.forget(k);
    // While a round of checks is out, its due time has passed: do not spin on it, the round's end requeues.
    if (result.requeueAfterMs !== undefined) {
      queue.addAfter(k, rounds.asking(k) ? Math.max(result.requeueAfterMs, 1000) : result.requeueAfterMs);
    }
    log.debug('reconciled', {
      rollout: k,
      phase: rollout.status?.phase,
      requeueAfterMs: result.requeueAfterMs,
    });
  }

  const onRollout = (r: Rollout) => rounds.requeue(keyOf(r));
  rollouts.onAdd(onRollout).onUpdate(onRollout).onDelete(onRollout);
  // A Service brings back only the Rollouts that read it, not every Rollout of its namespace.
  const onService = (s: KubernetesObject) => {
    const name = s.metadata?.name ?? '';
    for (const r of rollouts.list(s.metadata?.namespace))
      if (servicesRead(r).includes(name)) rounds.requeue(keyOf(r));
  };
  services.onAdd(onService).onUpdate(onService).onDelete(onService);
  // A templateRef may name another namespace: a template change is rare, so every Rollout looks again.
  const onTemplate = () => enqueueNamespace(undefined);
  for (const t of [templates, catalogue]) t?.onAdd(onTemplate).onUpdate(onTemplate).onDelete(onTemplate);

  let synced = false;
  let standby = false;
  const stuckMs = opts.stuckWorkerMs ?? DEFAULT_STUCK_WORKER_MS;
  const http = await startHttpServer(
    opts.metricsAddr,
    metrics.registry,
    () => synced || standby,
    () => {
      const running = queue.stats().longestRunningMs;
      return running > stuckMs
        ? {
            ok: false,
            reason: `a worker has been reconciling one Rollout for ${Math.round(running / 1000)} s`,
          }
        : { ok: true };
    },
  );
  log.info('serving metrics', { address: http.address });
  let elector: LeaderElector | undefined;
  if (opts.leaderElect) {
    const le = opts.leaderElection ?? { namespace: 'default', name: 'perch-controller' };
    elector = new LeaderElector(kc, {
      ...le,
      onError: (message) => log.warn('leader election', { err: message }),
    });
    standby = true;
    log.info('waiting for leadership', { lease: `${le.namespace}/${le.name}`, identity: elector.identity });
    await elector.acquire((reason) => {
      log.error('lost leadership; stopping so another replica can take over', {
        identity: elector?.identity,
        reason,
      });
      opts.onLeadershipLost?.();
    });
    standby = false;
    log.info('started leading', { lease: `${le.namespace}/${le.name}`, identity: elector.identity });
  }
  // The default SMI version's cache starts now; no version's sync is awaited (one the cluster does
  // not serve would never sync): reconciles ask its state instead.
  routeInformer(DEFAULT_ROUTE);
  await Promise.all([services.start(), templates.start(), catalogue?.start()]);
  await rollouts.start();
  synced = true;
  const workers = opts.workers ?? defaultWorkers();
  queue.run(workers, handle);
  log.info('controller started', {
    namespace: ns ?? '(all)',
    workers,
    prometheus: opts.prometheusUrl,
    allowedPrometheus: admission.prometheus.entries,
    templateNamespace: opts.templateNamespace,
  });

  return {
    metricsAddress: http.address,
    async stop() {
      await queue.shutdown();
      rounds.stop();
      for (const i of [rollouts, services, templates, ...routes.values()]) i.stop();
      catalogue?.stop();
      await elector?.release();
      await http.close();
      stopCounting();
    },
  };
}
