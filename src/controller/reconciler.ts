// One reconcile of one Rollout: observe (caches, clock, checks) → decide (the pure machine) → act.
// The reconciler decides nothing itself; it gathers facts and carries out the machine's effects in order.
import type { KubernetesObject } from '@kubernetes/client-node';
import type { CheckResult } from '../analysis/types.js';
import { ANNOTATIONS, TRAFFIC_FINALIZER, type Rollout, type RolloutStatus } from '../api/v1alpha1.js';
import type { ServedState } from '../k8s/informer.js';
import type { ObservedRoute, RouteTarget, Router } from '../k8s/router.js';
import { checksDue, decide } from '../machine/decide.js';
import type { Effect, Observation } from '../machine/types.js';
import { notServedMessage, routeField, routeTarget, runTarget } from './route-target.js';
import { validateRollout, type Lookups } from './validate.js';

/** Reads from the watch caches: the reconciler never lists or gets from the API server itself. */
export interface ClusterView extends Lookups {
  rollout(namespace: string, name: string): Rollout | undefined;
  /** The routing object as cached (TrafficSplit or HTTPRoute); undefined when it does not exist. */
  route(target: RouteTarget): KubernetesObject | undefined;
  /** Whether the cluster serves the routing object's resource (its watch cache answers the rest). */
  routeServed(target: RouteTarget): ServedState;
  /** The router's pure parts: what the machine observes of the object, and why a target cannot be routed. */
  router(target: RouteTarget): Pick<Router, 'read' | 'problem'>;
  /** A Service's first port, for a backendRef Perch adds to an HTTPRoute. */
  servicePort(namespace: string, name: string): number | undefined;
  /** The promotion window's state now; an error value when the spec's window is not valid. */
  window(rollout: Rollout, now: number): Observation['window'] | { error: string };
}

/**
 * The writes the reconciler makes. Each is idempotent and sends nothing when there is nothing to change.
 * A write that fails throws a WriteError, whose kind tells the controller how to go on.
 */
export interface Actuator {
  /** The Rollout's resourceVersion after the write, or undefined when nothing was sent. */
  patchStatus(rollout: Rollout, before: RolloutStatus | undefined, after: RolloutStatus): Promise<unknown>;
  /** The routing object the next write of this reconcile is based on: the one a create made, else `current`. */
  setWeights(
    target: RouteTarget,
    canaryWeight: number,
    current: KubernetesObject | undefined,
  ): Promise<KubernetesObject | undefined>;
  releaseTraffic(target: RouteTarget, current: KubernetesObject): Promise<unknown>;
  event(rollout: Rollout, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void>;
  clearAnnotations(rollout: Rollout, keys: string[]): Promise<unknown>;
  addFinalizer(rollout: Rollout): Promise<void>;
  removeFinalizer(rollout: Rollout): Promise<void>;
}

export interface ReconcileHooks {
  checks(rollout: Rollout, now: Date): Promise<CheckResult[]>;
  /** Whether this is the controller's first look at the Rollout since it started (or became leader). */
  firstLook?(rollout: Rollout): boolean;
  /** A weight the API server refused for this Rollout, while nothing it depended on has changed. */
  refused?(rollout: Rollout, route: KubernetesObject | undefined): Observation['refused'];
  /** After each reconcile: metrics. */
  observed?(
    rollout: Rollout,
    before: RolloutStatus | undefined,
    after: RolloutStatus,
    checks: CheckResult[],
  ): void;
}

export interface ReconcileResult {
  /** Run again after this long (the machine's next due time), or not at all. */
  requeueAfterMs?: number;
}

const flag = (rollout: Rollout, key: string) => rollout.metadata?.annotations?.[key] === 'true';

/** The routing object's state for the machine: served by the cluster, and Perch's to write. */
function routingOf(
  target: RouteTarget,
  served: ServedState,
  read: ObservedRoute | undefined,
): Observation['routing'] {
  if (served === 'notServed') return { ok: false, reason: 'NotServed', message: notServedMessage(target) };
  if (read?.owned === 'foreign')
    return {
      ok: false,
      reason: 'NotOwned',
      message: `${target.kind} ${target.name} exists and is not Perch's: annotate it ${ANNOTATIONS.managedBy}=${target.rollout.name} to hand it over`,
    };
  return { ok: true };
}

export async function observe(
  rollout: Rollout,
  view: ClusterView,
  hooks: ReconcileHooks,
  now: number,
): Promise<{ obs: Observation; current: KubernetesObject | undefined; target: RouteTarget }> {
  const namespace = rollout.metadata?.namespace ?? '';
  const target = routeTarget(rollout, view.servicePort(namespace, rollout.spec.stableService));
  const window = view.window(rollout, now);
  const served = view.routeServed(target);
  const router = view.router(target);
  const current = served === 'served' ? view.route(target) : undefined;
  const read = current ? router.read(current, target) : undefined;
  const routing = routingOf(target, served, read);
  const extra: Observation['validation'][] = [];
  if ('error' in window) extra.push({ valid: false, reason: 'InvalidWindow', message: window.error });
  // SPEC §2: a router resource the cluster does not serve makes the spec invalid, the version named.
  if (!routing.ok && routing.reason === 'NotServed')
    extra.push({ valid: false, reason: 'NotServed', message: routing.message });
  // The route as it is (or would be created) cannot carry the split: chosen rules missing, no stable ref.
  const problem = served === 'served' && routing.ok ? router.problem(target, current) : undefined;
  if (problem)
    extra.push({ valid: false, reason: 'InvalidRoute', message: `${routeField(target)}: ${problem}` });
  const validation = validateRollout(rollout, view, extra);
  const deleting = !!rollout.metadata?.deletionTimestamp;
  // A Rollout being deleted is checked no more: its traffic goes to the live version whatever they say.
  const checks =
    !deleting && validation.valid && checksDue(rollout.spec, rollout.status, now)
      ? await hooks.checks(rollout, new Date(now))
      : [];
  return {
    target,
    current,
    obs: {
      now,
      generation: rollout.metadata?.generation ?? 1,
      target: runTarget(target),
      firstLook: hooks.firstLook?.(rollout) ?? false,
      validation,
      deleting,
      annotations: {
        paused: flag(rollout, ANNOTATIONS.paused),
        resume: flag(rollout, ANNOTATIONS.resume),
        promote: flag(rollout, ANNOTATIONS.promote),
        abort: flag(rollout, ANNOTATIONS.abort),
        retry: flag(rollout, ANNOTATIONS.retry),
      },
      checks,
      traffic: read && {
        canaryWeight: read.canaryWeight,
        lastWritten: read.lastWritten,
        asPlanned: read.asPlanned,
        ownedByRef: read.owned === 'owner',
        ...(read.reported !== undefined ? { reported: read.reported } : {}),
      },
      refused: hooks.refused?.(rollout, current),
      stableServiceExists: view.serviceExists(target.namespace, target.stableService),
      canaryServiceExists: view.serviceExists(target.namespace, target.canaryService),
      routing,
      window: 'error' in window ? { open: true } : window,
    },
  };
}

export async function reconcile(
  rollout: Rollout,
  view: ClusterView,
  act: Actuator,
  hooks: ReconcileHooks,
  now = Date.now(),
): Promise<ReconcileResult> {
  const deleting = !!rollout.metadata?.deletionTimestamp;
  if (!deleting && !rollout.metadata?.finalizers?.includes(TRAFFIC_FINALIZER)) {
    // The finalizer comes first: without it a deletion could leave traffic half-routed.
    // No requeue: the finalizer's own watch event brings the Rollout back, with a fresh resourceVersion.
    await act.addFinalizer(rollout);
    return {};
  }
  if (deleting && !rollout.metadata?.finalizers?.includes(TRAFFIC_FINALIZER)) return {};

  const { obs, current, target } = await observe(rollout, view, hooks, now);
  const decision = decide(rollout.spec, rollout.status, obs);
  const by = <T extends Effect['type']>(type: T) =>
    decision.effects.filter((e): e is Extract<Effect, { type: T }> => e.type === type);

  // Order of writes, so that a crash between any two neither skips nor repeats a step:
  // 1. status: it records the step the run is on and the weights it wants. The status is the memory.
  // 2. events, which describe what the status now says (a failure further on cannot lose them). They
  //    go out beside the writes that follow, not before them: a rollback's stable 100 waits for no Event.
  // 3. TrafficSplit: brought to those weights. A crash before this leaves weights behind the status;
  //    the next reconcile sees them differ from what the status wants and from what Perch last wrote
  //    there, finishes the write (no drift), and only then lets the next step begin, as the machine
  //    advances a step only once the observed weights match the status.
  // 4. one-shot annotations removed: a crash before their removal shows the machine an annotation for
  //    a transition already made, which it counts as acted on (abort, promote) or ignores and removes
  //    (retry), or which cannot skip a pause (resume only ends a pause already in effect).
  // 5. on deletion: the live version's weight, then the release of the routing object, then the
  //    finalizer, last of all: a failure anywhere keeps the Rollout (and the finalizer) for a retry.
  if (!deleting) await act.patchStatus(rollout, rollout.status, decision.status);
  // In order among themselves (a person reads them so); an Event write never fails the reconcile.
  const told = by('event').reduce(
    (previous, e) => previous.then(() => act.event(rollout, e.eventType, e.reason, e.message)),
    Promise.resolve(),
  );
  try {
    // Two only where a run starts on a routing object it creates: stable 100, then the first weight on it.
    let route = current;
    for (const e of by('setWeights')) route = await act.setWeights(target, e.canaryWeight, route);
    if (by('releaseTraffic').length > 0 && current) await act.releaseTraffic(target, current);
    const cleared = by('clearAnnotation').map((e) => e.key);
    if (cleared.length > 0) await act.clearAnnotations(rollout, cleared);
    if (by('removeFinalizer').length > 0) await act.removeFinalizer(rollout);
  } finally {
    await told;
  }

  hooks.observed?.(rollout, rollout.status, decision.status, obs.checks);
  const requeue = by('requeueAfter').map((e) => e.ms);
  return requeue.length > 0 ? { requeueAfterMs: Math.min(...requeue) } : {};
}
