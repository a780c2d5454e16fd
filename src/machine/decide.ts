// decide(): the one entry point of the machine. (spec, status, observation) → next status and effects.
// Pure: the snapshot is rebuilt from status alone, so a restarted controller decides the same way.
import { transition } from 'xstate';
import type { Phase, RolloutSpec, RolloutStatus } from '../api/v1alpha1.js';
import { emptyAnalysis, recordRound, worstCheck } from './checks.js';
import { planOf, type Plan } from './plan.js';
import { rolloutMachine } from './rollout-machine.js';
import { routedAt } from './traffic.js';
import { checksRun } from './transitions.js';
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

/**
 * The whole decision is the machine's: decide() folds the observation's round of checks into the
 * status (the machine's guards read the counts), sends the one event, and returns what it made.
 */
export function decide(spec: RolloutSpec, current: RolloutStatus | undefined, obs: Observation): Decision {
  const plan = planOf(spec);
  const before = prologue(current, obs, plan);
  const counted = obs.deleting ? { status: before, effects: [] } : withRound(before, obs, plan);
  const snapshot = rolloutMachine.resolveState({
    value: before.phase ?? 'Pending',
    context: { status: counted.status, effects: counted.effects, before: counted.status },
  });
  const [next] = transition(rolloutMachine, snapshot, {
    type: obs.deleting ? 'DELETE' : 'RECONCILE',
    obs,
    plan,
  });
  return { status: next.context.status, effects: next.context.effects };
}
