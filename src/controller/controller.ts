// The controller's wiring: watch caches → work queue → reconcile, the actuator over the k8s writers,
// shared Prometheus clients, the metrics endpoint. Everything it keeps in memory is a cache.
import { type KubeConfig, type KubernetesObject, type V1Service } from '@kubernetes/client-node';
import { isDeepStrictEqual } from 'node:util';
import {
  ANNOTATIONS,
  type MetricTemplate,
  type Rollout,
  type RolloutStatus,
  type SmiApiVersion,
} from '../api/v1alpha1.js';
import { Informer } from '../k8s/informer.js';
import { LeaderElector } from '../k8s/leader-election.js';
import { countKubeRequests } from '../k8s/request-metrics.js';
import { rolloutRef, EventRecorder } from '../k8s/events.js';
import { RolloutWriter } from '../k8s/rollout-writer.js';
import { readSplit, TrafficRouter } from '../k8s/trafficsplit/router.js';
import { CheckRunner } from './checks.js';
import { startHttpServer } from './http-server.js';
import type { Logger } from './log.js';
import type { CheckResult } from '../analysis/types.js';
import { ControllerMetrics } from './metrics.js';
import {
  reconcile,
  splitTarget,
  type Actuator,
  type ClusterView,
  type ReconcileHooks,
} from './reconciler.js';
import { compileWindow, type Window } from './window.js';
import { WorkQueue } from './work-queue.js';

export interface ControllerOptions {
  kubeConfig: KubeConfig;
  /** Watch one namespace; all when undefined. */
  namespace?: string;
  prometheusUrl?: string;
  metricsAddr: string;
  leaderElect: boolean;
  /** The Lease and its timing, when leaderElect is on. */
  leaderElection?: {
    namespace: string;
    name: string;
    leaseDurationMs?: number;
    renewDeadlineMs?: number;
    retryPeriodMs?: number;
  };
  /** Called when leadership is lost: the process should exit, as another replica takes over. */
  onLeadershipLost?: () => void;
  log: Logger;
  workers?: number;
}

export interface RunningController {
  metricsAddress: string;
  stop(): Promise<void>;
}

const key = (namespace: string | undefined, name: string | undefined) => `${namespace ?? ''}/${name ?? ''}`;
const ROLLOUTS = { apiVersion: 'perch.dev/v1alpha1', kind: 'Rollout', plural: 'rollouts' };
const TEMPLATES = { apiVersion: 'perch.dev/v1alpha1', kind: 'MetricTemplate', plural: 'metrictemplates' };
const SERVICES = { apiVersion: 'v1', kind: 'Service', plural: 'services' };
const TERMINAL = new Set(['Succeeded', 'Failed', 'Aborted']);
/** A status write not yet seen in the cache is waited for this long at most (someone else may have written). */
const EXPECTATION_TTL_MS = 5000;

/** The status facts a reconcile depends on; the cache must show our last write of them before we decide again. */
function fingerprint(s: RolloutStatus | undefined) {
  return [
    s?.observedGeneration,
    s?.phase,
    s?.currentStepIndex,
    s?.canaryWeight,
    s?.pauseReason,
    s?.analysis?.lastCheckAt,
    s?.analysis?.failed,
    s?.rollback?.phase,
  ];
}

export async function runController(opts: ControllerOptions): Promise<RunningController> {
  const { kubeConfig: kc, log } = opts;
  const ns = opts.namespace;
  const metrics = new ControllerMetrics();
  const stopCounting = countKubeRequests(
    kc.getCurrentCluster()?.server ?? 'https://kubernetes.default.svc',
    (verb, resource, code) => metrics.countKubeRequest(verb, resource, code),
  );
  const informerOpts = {
    onError: (err: unknown, retryInMs: number) => log.warn('watch failed; retrying', { err, retryInMs }),
  };
  const rollouts = new Informer<Rollout>(kc, { ...ROLLOUTS, namespace: ns }, informerOpts);
  const services = new Informer<V1Service>(kc, { ...SERVICES, namespace: ns }, informerOpts);
  const templates = new Informer<MetricTemplate>(kc, { ...TEMPLATES, namespace: ns }, informerOpts);
  const splits = new Map<SmiApiVersion, { informer: Informer<KubernetesObject>; synced: Promise<void> }>();

  const queue = new WorkQueue<string>({
    onError: (err, k, failures) =>
      log.warn('reconcile failed; retrying with backoff', { rollout: k, failures, err }),
  });
  const enqueueNamespace = (namespace: string | undefined) => {
    for (const r of rollouts.list(namespace)) queue.add(key(r.metadata?.namespace, r.metadata?.name));
  };
  const enqueueOwner = (o: KubernetesObject) => {
    const owner = o.metadata?.ownerReferences?.find(
      (ref) => ref.kind === 'Rollout' && ref.apiVersion === ROLLOUTS.apiVersion,
    )?.name;
    const name = owner ?? o.metadata?.annotations?.[ANNOTATIONS.managedBy];
    if (name) queue.add(key(o.metadata?.namespace, name));
  };

  function splitInformer(apiVersion: SmiApiVersion) {
    let entry = splits.get(apiVersion);
    if (!entry) {
      const informer = new Informer<KubernetesObject>(
        kc,
        { apiVersion, kind: 'TrafficSplit', plural: 'trafficsplits', namespace: ns },
        informerOpts,
      );
      informer.onAdd(enqueueOwner).onUpdate(enqueueOwner).onDelete(enqueueOwner);
      entry = { informer, synced: informer.start() };
      splits.set(apiVersion, entry);
    }
    return entry;
  }

  const windows = new Map<string, ReturnType<typeof compileWindow>>();
  const router = new TrafficRouter(kc);
  const writer = new RolloutWriter(kc);
  const recorder = new EventRecorder(kc, {
    onError: (err, ev) => log.warn('could not record an Event', { reason: ev.reason, err: err.message }),
  });
  const checks = new CheckRunner({ defaultAddress: opts.prometheusUrl, onOutcome: metrics.countQuery });

  const view: ClusterView = {
    rollout: (namespace, name) => rollouts.get(name, namespace),
    serviceExists: (namespace, name) => services.get(name, namespace) !== undefined,
    metricTemplate: (namespace, name) => templates.get(name, namespace),
    trafficSplit: (apiVersion, namespace, name) => splitInformer(apiVersion).informer.get(name, namespace),
    readSplit: (obj, target) => readSplit(obj, target),
    window(rollout, now) {
      const w = rollout.spec.window;
      if (!w) return { open: true };
      const id = `${w.schedule}\u0000${w.timeZone ?? ''}`;
      let compiled = windows.get(id);
      if (!compiled) windows.set(id, (compiled = compileWindow(w)));
      return compiled.ok ? (compiled.value as Window).state(now) : { error: compiled.error.message };
    },
  };

  const fail = (what: string, error: { message: string; kind?: string }): never => {
    throw new Error(`${what}: ${error.kind ? `${error.kind}: ` : ''}${error.message}`);
  };
  const act: Actuator = {
    async patchStatus(rollout, before, after) {
      const r = await writer.patchStatus(
        rollout.metadata!.namespace!,
        rollout.metadata!.name!,
        before,
        after,
      );
      return r.ok ? r.value : fail('status patch', r.error);
    },
    async setWeights(target, canaryWeight, current) {
      const r = await router.setWeights(target, canaryWeight, current);
      return r.ok ? r.outcome : fail(`TrafficSplit ${target.namespace}/${target.name}`, r.error);
    },
    event: (rollout, type, reason, message) => recorder.record(rolloutRef(rollout), type, reason, message),
    async clearAnnotations(rollout, keys) {
      const r = await writer.clearAnnotations(rollout.metadata!.namespace!, rollout.metadata!.name!, keys);
      if (!r.ok) fail('annotation removal', r.error);
    },
    async addFinalizer(rollout) {
      const r = await writer.addFinalizer(rollout);
      if (!r.ok) fail('adding the finalizer', r.error);
    },
    async removeFinalizer(rollout) {
      const r = await writer.removeFinalizer(rollout);
      if (!r.ok) fail('removing the finalizer', r.error);
    },
  };

  // Checks run beside the work queue, never in it: a slow or unreachable Prometheus (5 s timeouts)
  // must not hold the workers that abort, roll back or delete other Rollouts. A reconcile that finds
  // a round due starts it and goes on without it; the finished round brings the Rollout back.
  const rounds = new Map<string, { due: string; results?: CheckResult[] }>();
  const checksFor = async (rollout: Rollout, now: Date): Promise<CheckResult[]> => {
    const k = key(rollout.metadata?.namespace, rollout.metadata?.name);
    const due = `${rollout.status?.observedGeneration}/${rollout.status?.analysis?.nextCheckAt ?? ''}`;
    const round = rounds.get(k);
    if (round?.due === due) {
      if (!round.results) return []; // still asking Prometheus
      rounds.delete(k);
      return round.results;
    }
    const started: { due: string; results?: CheckResult[] } = { due };
    rounds.set(k, started);
    void checks.run(rollout, view, now).then(
      (results) => {
        started.results = results;
        queue.add(k);
      },
      (err: unknown) => {
        rounds.delete(k);
        log.error('a round of checks failed unexpectedly', { rollout: k, err });
        queue.addRateLimited(k);
      },
    );
    return [];
  };

  const hooks: ReconcileHooks = {
    checks: checksFor,
    observed(rollout, before, after, made) {
      const namespace = rollout.metadata?.namespace ?? '';
      const name = rollout.metadata?.name ?? '';
      metrics.observeRollout(namespace, name, after.phase, after.canaryWeight);
      metrics.countChecks(namespace, name, made);
      if (after.phase && TERMINAL.has(after.phase) && before?.phase !== after.phase) {
        const started = after.runStartedAt ? Date.parse(after.runStartedAt) : undefined;
        metrics.countRun(namespace, after.phase, started ? (Date.now() - started) / 1000 : undefined);
      }
    },
  };

  // Our own writes, until the cache shows them: deciding on an older status could repeat a step, and
  // seeing a one-shot annotation we already removed would report it ignored.
  type Expectation = { status?: RolloutStatus; cleared?: string[]; canaryWeight?: number };
  const expected = new Map<string, Expectation & { at: number }>();
  const expect = (k: string, what: Expectation) =>
    expected.set(k, { ...expected.get(k), ...what, at: Date.now() });
  const cacheBehind = (rollout: Rollout, w: Expectation) => {
    if (w.status !== undefined && !isDeepStrictEqual(fingerprint(rollout.status), fingerprint(w.status)))
      return true;
    if ((w.cleared ?? []).some((a) => rollout.metadata?.annotations?.[a] !== undefined)) return true;
    if (w.canaryWeight === undefined) return false;
    const target = splitTarget(rollout);
    const split = view.trafficSplit(target.apiVersion, target.namespace, target.name);
    const read = split && readSplit(split, target);
    return !read || !read.asPlanned || read.canaryWeight !== w.canaryWeight;
  };

  async function handle(k: string): Promise<void> {
    const [namespace, name] = k.split('/') as [string, string];
    const rollout = rollouts.get(name, namespace);
    if (!rollout) {
      metrics.forgetRollout(namespace, name);
      expected.delete(k);
      rounds.delete(k);
      return;
    }
    const waiting = expected.get(k);
    if (waiting) {
      if (cacheBehind(rollout, waiting) && Date.now() - waiting.at < EXPECTATION_TTL_MS) {
        // The watch event for our write brings this key back; the delay covers a write that never shows.
        queue.addAfter(k, 250);
        return;
      }
      expected.delete(k);
    }
    const apiVersion = rollout.spec.trafficRouting?.smi?.apiVersion ?? 'split.smi-spec.io/v1alpha2';
    await splitInformer(apiVersion).synced;
    const end = metrics.reconcileDuration.startTimer();
    const before = rollout.status;
    const result = await reconcile(
      rollout,
      view,
      {
        ...act,
        async patchStatus(r, b, after) {
          const wrote = await act.patchStatus(r, b, after);
          if (wrote) expect(k, { status: after });
          return wrote;
        },
        async setWeights(target, canaryWeight, current) {
          const outcome = await act.setWeights(target, canaryWeight, current);
          if (outcome !== 'unchanged') expect(k, { canaryWeight });
          return outcome;
        },
        async clearAnnotations(r, keys) {
          await act.clearAnnotations(r, keys);
          expect(k, { cleared: keys });
        },
      },
      hooks,
    );
    end();
    queue.forget(k);
    // While a round of checks is out, its due time has passed: do not spin on it, the round's end requeues.
    const asking = rounds.get(k) !== undefined && !rounds.get(k)!.results;
    if (result.requeueAfterMs !== undefined) {
      queue.addAfter(k, asking ? Math.max(result.requeueAfterMs, 1000) : result.requeueAfterMs);
    }
    log.debug('reconciled', { rollout: k, phase: before?.phase, requeueAfterMs: result.requeueAfterMs });
  }

  const onRollout = (r: Rollout) => queue.add(key(r.metadata?.namespace, r.metadata?.name));
  rollouts.onAdd(onRollout).onUpdate(onRollout).onDelete(onRollout);
  const onNamespaceObject = (o: KubernetesObject) => enqueueNamespace(o.metadata?.namespace);
  services.onAdd(onNamespaceObject).onUpdate(onNamespaceObject).onDelete(onNamespaceObject);
  // A templateRef may name another namespace: a template change is rare, so every Rollout looks again.
  const onTemplate = () => enqueueNamespace(undefined);
  templates.onAdd(onTemplate).onUpdate(onTemplate).onDelete(onTemplate);

  let synced = false;
  let standby = false;
  const http = await startHttpServer(opts.metricsAddr, metrics.registry, () => synced || standby);
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
    await elector.acquire(() => {
      log.error('lost leadership; stopping so another replica can take over', {
        identity: elector?.identity,
      });
      opts.onLeadershipLost?.();
    });
    standby = false;
    log.info('started leading', { lease: `${le.namespace}/${le.name}`, identity: elector.identity });
  }
  await Promise.all([
    services.start(),
    templates.start(),
    splitInformer('split.smi-spec.io/v1alpha2').synced,
  ]);
  await rollouts.start();
  synced = true;
  queue.run(opts.workers ?? 4, handle);
  log.info('controller started', { namespace: ns ?? '(all)', prometheus: opts.prometheusUrl });

  return {
    metricsAddress: http.address,
    async stop() {
      await queue.shutdown();
      for (const i of [rollouts, services, templates, ...[...splits.values()].map((s) => s.informer)])
        i.stop();
      await elector?.release();
      await http.close();
      stopCounting();
    },
  };
}
