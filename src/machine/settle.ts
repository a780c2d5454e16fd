// What every reconcile ends with, whatever the transition: the phase it lands in recorded with
// observedGeneration, step and conditions; the weight the status wants written; one-shot annotations
// cleared (acted on or not); the next look scheduled. The machine runs it as its last action.
import type { Phase, RolloutStatus } from '../api/v1alpha1.js';
import { conditions } from './conditions.js';
import type { Plan } from './plan.js';
import { liveWeight, trafficEffects } from './traffic.js';
import {
  checksRun,
  currentStep,
  deadlineAt,
  holdReason,
  invalidDeadlineAt,
  oneShotEffects,
} from './transitions.js';
import { ACTIVE } from './phases.js';
import type { Decision, Effect, Observation } from './types.js';

/**
 * `before` is the status this reconcile started from (with its round of checks counted), `decided`
 * and `effects` what the transitions made of it, `phase` the state it lands in. The effects returned
 * are those that follow from where it lands (the transitions' own come before them).
 */
export function settle(
  before: RolloutStatus,
  decided: RolloutStatus,
  effects: readonly Effect[],
  phase: Phase,
  obs: Observation,
  plan: Plan,
): Decision {
  // observedGeneration always names the generation acted on, valid or not (SPEC §4, kstatus).
  const landed: RolloutStatus = { ...decided, phase, observedGeneration: obs.generation };
  const status: RolloutStatus = {
    ...landed,
    step: stepText(landed, plan),
    conditions: conditions(landed, obs),
  };
  const trailing = [
    ...specUpdated(before, status, effects, obs, plan),
    ...trafficEffects(status, obs),
    ...oneShotEffects(obs, actedOn(before, status, obs, plan)),
  ];
  return { status, effects: [...trailing, ...requeue(before, status, trailing, obs, plan)] };
}

/** The one-shot annotations this reconcile acted on; the others are removed as ignored. */
function actedOn(before: RolloutStatus, status: RolloutStatus, obs: Observation, plan: Plan): Set<string> {
  const acted = new Set<string>();
  // An abort or promote also counts as acted on while the transition it caused is still underway:
  // a write that failed after the status was saved must not turn it into an "ignored" annotation.
  const aborting = status.rollback?.phase === 'Aborted';
  if (obs.annotations.abort && aborting && (status.phase === 'RollingBack' || before.phase === 'RollingBack'))
    acted.add('abort');
  if (obs.annotations.promote && (status.phase === 'Promoting' || before.phase === 'Promoting'))
    acted.add('promote');
  if (
    obs.annotations.retry &&
    (before.phase === 'Failed' || before.phase === 'Aborted') &&
    status.phase === 'Progressing'
  )
    acted.add('retry');
  const withoutResume = { ...obs, annotations: { ...obs.annotations, resume: false } };
  if (obs.annotations.resume && holdReason(before, withoutResume, plan) !== holdReason(before, obs, plan))
    acted.add('resume');
  return acted;
}

function requeue(
  before: RolloutStatus,
  after: RolloutStatus,
  effects: Effect[],
  obs: Observation,
  plan: Plan,
): Effect[] {
  const moved =
    before.phase !== after.phase ||
    before.currentStepIndex !== after.currentStepIndex ||
    effects.some((e) => e.type === 'setWeights');
  const due: number[] = [];
  const at = (t: string | undefined, plus = 0) => (t ? Date.parse(t) + plus - obs.now : undefined);
  if (ACTIVE.has(after.phase) && checksRun(after, plan))
    due.push(at(after.analysis?.nextCheckAt) ?? plan.intervalMs);
  const step = currentStep(after, plan);
  if (after.phase === 'Paused' && step?.kind === 'pause' && step.durationMs !== undefined) {
    due.push(at(after.stepStartedAt, step.durationMs)!);
  }
  const deadline = deadlineAt(after, plan);
  if ((after.phase === 'Progressing' || after.phase === 'Promoting') && deadline !== undefined)
    due.push(deadline + 1 - obs.now);
  const invalidDeadline = invalidDeadlineAt(after, plan);
  if (after.phase === 'Invalid' && invalidDeadline !== undefined) due.push(invalidDeadline + 1 - obs.now);
  if (!obs.window.open && obs.window.nextOpenAt) due.push(obs.window.nextOpenAt - obs.now);
  // A time already past that did not move the run will not move it by the clock alone: something else
  // holds it (a person, missing data, a round still out), and that brings the Rollout back by itself.
  // Asking again at once would spin a worker for as long as it holds.
  const ahead = due.filter((ms) => ms > 0);
  if (moved) return [{ type: 'requeueAfter', ms: 0 }];
  if (ahead.length === 0) return [];
  return [{ type: 'requeueAfter', ms: Math.min(...ahead) }];
}

export function stepText(status: RolloutStatus, plan: Plan): string {
  const total = plan.steps.length;
  return `${Math.min((status.currentStepIndex ?? 0) + 1, total)}/${total}`;
}

/**
 * A new generation that starts no run applies to the run where it stands (SPEC §4), or, after the run,
 * changes nothing about traffic. Said once, in an Event, so a person sees the edit was taken.
 */
function specUpdated(
  before: RolloutStatus,
  after: RolloutStatus,
  transitions: readonly Effect[],
  obs: Observation,
  plan: Plan,
): Effect[] {
  if (before.observedGeneration === undefined || before.observedGeneration === obs.generation) return [];
  if (transitions.some((e) => e.type === 'event' && e.reason === 'RunStarted')) return [];
  if (!obs.validation.valid) return [];
  const phase = after.phase === 'Invalid' ? after.invalidFrom : after.phase;
  const where =
    phase === 'Succeeded' || phase === 'Failed' || phase === 'Aborted'
      ? `the run has ended (${phase}); traffic stays on ${liveWeight(after) === 100 ? after.runTarget?.canaryService : after.runTarget?.stableService}`
      : `it applies to the run from step ${stepText(after, plan)}, at canary ${after.canaryWeight ?? 0}%`;
  return [
    {
      type: 'event',
      eventType: 'Normal',
      reason: 'SpecUpdated',
      message: `generation ${obs.generation}: ${where}`,
    },
  ];
}
