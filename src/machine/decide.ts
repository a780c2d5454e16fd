// decide(): the one entry point of the machine. (spec, status, observation) → next status and effects.
// Pure: the snapshot is rebuilt from status alone, so a restarted controller decides the same way.
import { transition } from 'xstate';
import type { Phase, RolloutSpec, RolloutStatus } from '../api/v1alpha1.js';
import { emptyAnalysis, recordRound, worstCheck } from './checks.js';
import { conditions } from './conditions.js';
import { planOf, type Plan } from './plan.js';
import { rolloutMachine } from './rollout-machine.js';
import { deletionEffects, liveWeight, routedAt, trafficEffects } from './traffic.js';
import { checksRun, currentStep, deadlineAt, holdReason, oneShotEffects } from './transitions.js';
import type { Decision, Effect, Observation } from './types.js';

const iso = (ms: number) => new Date(ms).toISOString();
const ACTIVE: ReadonlySet<Phase | undefined> = new Set(['Progressing', 'Paused']);

/** Whether a round of checks is due now: the controller queries Prometheus only then. */
export function checksDue(spec: RolloutSpec, status: RolloutStatus | undefined, now: number): boolean {
  const next = status?.analysis?.nextCheckAt;
  return (
    !!status &&
    ACTIVE.has(status.phase) &&
    checksRun(status, planOf(spec)) &&
    !!next &&
    now >= Date.parse(next)
  );
}

function withRound(
  status: RolloutStatus,
  obs: Observation,
  plan: Plan,
): { status: RolloutStatus; effects: Effect[] } {
  if (obs.checks.length === 0 || !ACTIVE.has(status.phase)) return { status, effects: [] };
  const analysis = recordRound(
    status.analysis ?? emptyAnalysis(),
    obs.checks,
    iso(obs.now),
    iso(obs.now + plan.intervalMs),
  );
  const worst = worstCheck(obs.checks);
  // A passing round at the weight the step wants is progress toward the step's end. Checks that merely
  // do not fail are not, and neither are passes at an older weight while the step's own is never routed.
  const progress = worst?.verdict === 'Pass' && routedAt(obs, status.canaryWeight ?? 0);
  const progressSince = progress && status.progressSince ? iso(obs.now) : status.progressSince;
  const effects: Effect[] =
    worst?.verdict === 'Fail'
      ? [{ type: 'event', eventType: 'Warning', reason: 'AnalysisFailed', message: worst.reason }]
      : [];
  return { status: { ...status, analysis, progressSince }, effects };
}

/**
 * What decide() works from: the stored status, with the run target recorded where a status written
 * before it existed lacks one (adopted, not a new run), and the deadline clock moved past an outage.
 */
function prologue(current: RolloutStatus | undefined, obs: Observation, plan: Plan): RolloutStatus {
  let status = current ?? {};
  if (!status.runTarget && status.runStartedAt) status = { ...status, runTarget: obs.target };
  const since = status.progressSince && Date.parse(status.progressSince);
  if (obs.firstLook && since) {
    // Time when no controller ran does not count (SPEC §4). The status shows when one last acted:
    // the clock start or the last check; what lies between that and now is the outage.
    const lastSeen = Math.max(since, Date.parse(status.analysis?.lastCheckAt ?? '') || 0);
    const outage = obs.now - lastSeen;
    if (outage > plan.intervalMs) status = { ...status, progressSince: iso(since + outage) };
  }
  return status;
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
  const due: number[] = moved ? [0] : [];
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
  if (after.phase === 'Invalid' && after.invalidSince && (after.canaryWeight ?? 0) > 0)
    due.push(at(after.invalidSince, plan.progressDeadlineMs + 1)!);
  if (!obs.window.open && obs.window.nextOpenAt) due.push(obs.window.nextOpenAt - obs.now);
  if (due.length === 0) return [];
  return [{ type: 'requeueAfter', ms: Math.max(0, Math.min(...due)) }];
}

function stepText(status: RolloutStatus, plan: Plan): string {
  const total = plan.steps.length;
  return `${Math.min((status.currentStepIndex ?? 0) + 1, total)}/${total}`;
}

export function decide(spec: RolloutSpec, current: RolloutStatus | undefined, obs: Observation): Decision {
  const plan = planOf(spec);
  const before = prologue(current, obs, plan);
  if (obs.deleting) return { status: before, effects: deletionEffects(before, obs) };

  const counted = withRound(before, obs, plan);
  const snapshot = rolloutMachine.resolveState({
    value: before.phase ?? 'Pending',
    context: { status: counted.status, effects: [] },
  });
  const [next] = transition(rolloutMachine, snapshot, { type: 'RECONCILE', obs, plan });
  // observedGeneration always names the generation acted on, valid or not (SPEC §4, kstatus).
  const decided: RolloutStatus = {
    ...next.context.status,
    phase: next.value as Phase,
    observedGeneration: obs.generation,
  };
  const status: RolloutStatus = {
    ...decided,
    step: stepText(decided, plan),
    conditions: conditions(decided, obs),
  };

  const withoutResume = { ...obs, annotations: { ...obs.annotations, resume: false } };
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
  if (
    obs.annotations.resume &&
    holdReason(counted.status, withoutResume, plan) !== holdReason(counted.status, obs, plan)
  )
    acted.add('resume');

  const effects = [
    ...counted.effects,
    ...next.context.effects,
    ...specUpdated(before, status, next.context.effects, obs, plan),
    ...trafficEffects(status, obs),
    ...oneShotEffects(obs, acted),
  ];
  return { status, effects: [...effects, ...requeue(before, status, effects, obs, plan)] };
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
