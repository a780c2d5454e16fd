// Traffic as the machine sees it: whether the routing object routes as planned, which version is live,
// and the weight writes (and on deletion, the release) that follow from the phase. Pure.
import { ANNOTATIONS, type RolloutStatus, type RunTarget } from '../api/v1alpha1.js';
import { ACTIVE } from './phases.js';
import type { Effect, Observation } from './types.js';

/** The routing object routes exactly as planned at `weight`: stable/canary only, the right root. */
export const routedAt = (obs: Observation, weight: number) =>
  obs.routing.ok &&
  obs.traffic !== undefined &&
  obs.traffic.asPlanned !== false &&
  obs.traffic.canaryWeight === weight;

/** Whether two run targets name the same Services and routing object. */
export const sameTarget = (a: RunTarget, b: RunTarget) =>
  a.stableService === b.stableService && a.canaryService === b.canaryService && a.route === b.route;

/**
 * The canary weight of the live version (SPEC §3): 100 once promoted, else 0 (before and during a run,
 * after a failure or abort). An invalid spell keeps the phase it interrupted.
 */
export function liveWeight(status: RolloutStatus): number {
  const phase = status.phase === 'Invalid' ? status.invalidFrom : status.phase;
  return phase === 'Succeeded' ? 100 : 0;
}

/** The weight the status wants, written when the routing object differs; someone else's change is drift. */
export function trafficEffects(status: RolloutStatus, obs: Observation): Effect[] {
  if (status.phase === 'Invalid' || !obs.routing.ok) return [];
  const desired = status.canaryWeight ?? 0;
  if (routedAt(obs, desired)) return [];
  // Refused by the API server and nothing changed since: sending it again would be refused again.
  if (obs.refused?.canaryWeight === desired) return [];
  // A run's routing object is made at stable 100 before any canary weight (SPEC §3), its first create
  // or one after a failed create or a deletion: the weight follows, written on the object the create made.
  if (obs.traffic === undefined && desired > 0 && ACTIVE.has(status.phase))
    return [
      { type: 'setWeights', canaryWeight: 0, drift: false },
      { type: 'setWeights', canaryWeight: desired, drift: false },
    ];
  // Perch had written this very weight and it changed since: someone else's hand, undo and say so.
  const drift = obs.traffic !== undefined && obs.traffic.lastWritten === desired;
  const effects: Effect[] = [{ type: 'setWeights', canaryWeight: desired, drift }];
  if (drift) {
    effects.push({
      type: 'event',
      eventType: 'Warning',
      reason: 'TrafficDrift',
      message: `${obs.target.route} weights changed outside Perch (canary ${obs.traffic!.canaryWeight}%); restoring canary ${desired}%`,
    });
  }
  return effects;
}

/**
 * Deletion (SPEC §3): the live version at 100, then the routing object released (it outlives the Rollout,
 * the mesh keeps routing by it), then the finalizer. An otherwise invalid spec does not stop the write
 * while the live Service exists; a write the API server refuses keeps the Rollout until it is accepted.
 */
export function deletionEffects(status: RolloutStatus, obs: Observation): Effect[] {
  if (!obs.routing.ok || obs.traffic === undefined) return [{ type: 'removeFinalizer' }];
  const live = liveWeight(status);
  const liveService = live === 100 ? obs.target.canaryService : obs.target.stableService;
  const liveExists = live === 100 ? obs.canaryServiceExists : obs.stableServiceExists;
  const effects: Effect[] = [];
  if ((obs.validation.valid || liveExists !== false) && !routedAt(obs, live)) {
    if (obs.refused?.canaryWeight === live) return [];
    effects.push({ type: 'setWeights', canaryWeight: live, drift: false });
  }
  if (obs.traffic.ownedByRef) {
    effects.push(
      { type: 'releaseTraffic' },
      {
        type: 'event',
        eventType: 'Normal',
        reason: 'TrafficReleased',
        message: `${obs.target.route} left routing 100% to ${liveService} (the live version) and released (${ANNOTATIONS.releasedFrom}): it outlives the Rollout`,
      },
    );
  }
  effects.push({ type: 'removeFinalizer' });
  return effects;
}
