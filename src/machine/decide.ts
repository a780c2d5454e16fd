// decide(): the one entry point of the machine. (spec, status, observation) → next status and effects.
// Pure: the snapshot is rebuilt from status alone, so a restarted controller decides the same way.
import { transition } from 'xstate';
import type { Phase, RolloutSpec, RolloutStatus } from '../api/v1alpha1.js';
import { emptyAnalysis, recordRound, worstCheck } from './checks.js';
import { setCondition } from './conditions.js';
import { planOf, type Plan } from './plan.js';
import { rolloutMachine, routedAt } from './rollout-machine.js';
import { checksRun, currentStep, holdReason, oneShotEffects } from './transitions.js';
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
  if (obs.checks.length === 0 || !ACTIVE.has(status.phase) || status.observedGeneration !== obs.generation) {
    return { status, effects: [] };
  }
  const analysis = recordRound(
    status.analysis ?? emptyAnalysis(),
    obs.checks,
    iso(obs.now),
    iso(obs.now + plan.intervalMs),
  );
  const worst = worstCheck(obs.checks);
  // A round that did not fail is progress for the deadline: the run is being checked, not stuck.
  // (Error and Inconclusive rounds count too: Prometheus being down must never fail a run.)
  const progressSince =
    worst?.verdict !== 'Fail' && status.progressSince ? iso(obs.now) : status.progressSince;
  const effects: Effect[] =
    worst?.verdict === 'Fail'
      ? [{ type: 'event', eventType: 'Warning', reason: 'AnalysisFailed', message: worst.reason }]
      : [];
  return { status: { ...status, analysis, progressSince }, effects };
}

/**
 * On deletion: stable 100 first, then let the Rollout go (the perch.dev/traffic finalizer). An otherwise
 * invalid spec does not stop the write while the stable Service exists: half-routed traffic is worse.
 */
function deletion(status: RolloutStatus, obs: Observation): Decision {
  const writable =
    obs.routing.ok &&
    obs.traffic !== undefined &&
    (obs.validation.valid || obs.stableServiceExists !== false);
  if (writable && !routedAt(obs, 0))
    return { status, effects: [{ type: 'setWeights', canaryWeight: 0, drift: false }] };
  return { status, effects: [{ type: 'removeFinalizer' }] };
}

function trafficEffects(status: RolloutStatus, obs: Observation): Effect[] {
  if (status.phase === 'Invalid' || !obs.routing.ok) return [];
  const desired = status.canaryWeight ?? 0;
  if (routedAt(obs, desired)) return [];
  // Perch had written this very weight and it changed since: someone else's hand, undo and say so.
  const drift = obs.traffic !== undefined && obs.traffic.lastWritten === desired;
  const effects: Effect[] = [{ type: 'setWeights', canaryWeight: desired, drift }];
  if (drift) {
    effects.push({
      type: 'event',
      eventType: 'Warning',
      reason: 'TrafficDrift',
      message: `TrafficSplit weights changed outside Perch (canary ${obs.traffic!.canaryWeight}%); restoring canary ${desired}%`,
    });
  }
  return effects;
}

function conditions(status: RolloutStatus, obs: Observation): RolloutStatus['conditions'] {
  const now = iso(obs.now);
  const g = obs.generation;
  const phase = status.phase ?? 'Pending';
  let c = status.conditions;
  c = setCondition(
    c,
    obs.validation.valid
      ? { type: 'Valid', status: 'True', reason: 'Valid', message: 'spec is valid', observedGeneration: g }
      : {
          type: 'Valid',
          status: 'False',
          reason: obs.validation.reason,
          message: obs.validation.message,
          observedGeneration: g,
        },
    now,
  );
  const desired = status.canaryWeight ?? 0;
  const routed = !obs.routing.ok
    ? { status: 'False' as const, reason: obs.routing.reason, message: obs.routing.message }
    : routedAt(obs, desired)
      ? { status: 'True' as const, reason: 'Routed', message: `stable ${100 - desired}%, canary ${desired}%` }
      : { status: 'False' as const, reason: 'Updating', message: `routing canary ${desired}%` };
  c = setCondition(c, { type: 'TrafficRouted', ...routed, observedGeneration: g }, now);
  const running =
    phase === 'Progressing' || phase === 'Paused' || phase === 'Promoting' || phase === 'RollingBack';
  const why = phase === 'Failed' || phase === 'Aborted' ? (status.rollback?.reason ?? phase) : phase;
  c = setCondition(
    c,
    {
      type: 'Progressing',
      status: running ? 'True' : 'False',
      reason: running ? 'RunInProgress' : why,
      message: status.message ?? '',
      observedGeneration: g,
    },
    now,
  );
  c = setCondition(
    c,
    phase === 'Paused'
      ? {
          type: 'Paused',
          status: 'True',
          reason: status.pauseReason ?? 'Manual',
          message: status.message ?? '',
          observedGeneration: g,
        }
      : { type: 'Paused', status: 'False', reason: 'NotPaused', message: '', observedGeneration: g },
    now,
  );
  return setCondition(
    c,
    phase === 'Succeeded'
      ? {
          type: 'Ready',
          status: 'True',
          reason: 'Promoted',
          message: status.message ?? '',
          observedGeneration: g,
        }
      : { type: 'Ready', status: 'False', reason: why, message: status.message ?? '', observedGeneration: g },
    now,
  );
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
  if (after.phase === 'Progressing' && after.progressSince)
    due.push(at(after.progressSince, plan.progressDeadlineMs + 1)!);
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
  const before = current ?? {};
  if (obs.deleting) return deletion(before, obs);

  const counted = withRound(before, obs, plan);
  const snapshot = rolloutMachine.resolveState({
    value: before.phase ?? 'Pending',
    context: { status: counted.status, effects: [] },
  });
  const [next] = transition(rolloutMachine, snapshot, { type: 'RECONCILE', obs, plan });
  const decided: RolloutStatus = { ...next.context.status, phase: next.value as Phase };
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
    ...trafficEffects(status, obs),
    ...oneShotEffects(obs, acted),
  ];
  return { status, effects: [...effects, ...requeue(before, status, effects, obs, plan)] };
}
