// decide(): the one entry point of the machine. (spec, status, observation) → next status and effects.
// Pure: the snapshot is rebuilt from status alone, so a restarted controller decides the same way.
import { createActor, type AnyActorScope } from 'xstate';
import { deepEqual } from '../api/json.js';
import type { RolloutSpec, RolloutStatus } from '../api/v1alpha1.js';
import { emptyAnalysis, recordRound, worstCheck } from './checks.js';
import { planOf, type Plan } from './plan.js';
import { rolloutMachine } from './rollout-machine.js';
import { routedAt } from './traffic.js';
import { ACTIVE } from './phases.js';
import { checksRun } from './transitions.js';
import type { Decision, Effect, Observation } from './types.js';

const iso = (ms: number) => new Date(ms).toISOString();
/** Passes beyond one per step: a start, a promotion and its end, and one that finds nothing more to do. */
const MAX_EXTRA_PASSES = 4;

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

/** One RECONCILE (or DELETE) of the machine from `status` in the phase it records. */
function pass(
  status: RolloutStatus,
  effects: Effect[],
  before: RolloutStatus,
  event: { type: 'RECONCILE' | 'DELETE'; obs: Observation; plan: Plan },
) {
  const snapshot = rolloutMachine.resolveState({
    value: status.phase ?? 'Pending',
    context: { status, effects, before, trailing: [] },
  });
  return rolloutMachine.transition(snapshot, event, INERT).context;
}

/**
 * The actor scope every pass runs in. xstate's transition() makes a fresh actor and system per call (a
 * third of the machine's CPU at scale) so that actions with side effects can be collected; this machine's
 * actions are pure assigns and it spawns nothing, so one inert scope, made once, serves every pass.
 */
const INERT: AnyActorScope = (() => {
  const self = createActor(rolloutMachine, { input: { status: {}, effects: [], before: {}, trailing: [] } });
  return {
    self,
    id: '',
    sessionId: '',
    logger: () => {},
    defer: () => {},
    system: self.system,
    stopChild: () => {},
    emit: () => {},
    actionExecutor: () => {},
  };
})();

/**
 * The whole decision is the machine's: decide() folds the observation's round of checks into the
 * status (the machine's guards read the counts), sends the one event, and returns what it made.
 *
 * One observation can carry the run through several transitions: a passing round ends an analysis step,
 * and the setWeight step after it begins at once, in the same status write, as the next reconcile would
 * have done on the very same facts. The machine is sent the event again, on the status it left and with
 * the round already counted, until it lands where it stays (the same status again), or where a weight
 * must be routed before anything may move on (SPEC §4: a step advances only on its weight routed). The one
 * exception is a run's start on a routing object that does not exist yet: it is created at stable 100, and a
 * first step's weight is written on it right after, in the same reconcile.
 * Each pass is the machine's own decision; decide() only repeats the question.
 */
export function decide(spec: RolloutSpec, current: RolloutStatus | undefined, obs: Observation): Decision {
  const plan = planOf(spec);
  const before = prologue(current, obs, plan);
  if (obs.deleting) {
    const deleted = pass(before, [], before, { type: 'DELETE', obs, plan });
    return { status: deleted.status, effects: [...deleted.effects, ...deleted.trailing] };
  }
  const counted = withRound(before, obs, plan);
  let landed = pass(counted.status, counted.effects, counted.status, { type: 'RECONCILE', obs, plan });
  // A person's one-shot is acted on in a reconcile of its own: a resume must never meet, in the same
  // look, the pause its own step change begins (a later look tells a fresh resume from one left over).
  const { resume, promote, abort, retry } = obs.annotations;
  let created: Effect | undefined;
  if (!(resume || promote || abort || retry)) {
    // Later passes see no round: the first took its results, which a later reconcile would not see again.
    const again = { type: 'RECONCILE' as const, obs: { ...obs, checks: [] }, plan };
    for (let n = 1; n < plan.steps.length + MAX_EXTRA_PASSES; n++) {
      const weights = landed.trailing.find((e) => e.type === 'setWeights');
      if (weights && (created || !createsAtStable(weights, obs))) break;
      // A run's routing object is created with the stable Service alone at 100 (SPEC §3); the first
      // step's weight may follow in the same reconcile, written on the object the create returned.
      const next = weights
        ? pass(landed.status, landed.effects, counted.status, { ...again, obs: createdAtStable(again.obs) })
        : pass(landed.status, landed.effects, counted.status, again);
      // Only a weight rides on the create: a run that waits on stable 100 says so once the create is seen.
      if (weights && !next.trailing.some((e) => e.type === 'setWeights')) break;
      if (deepEqual(next.status, landed.status)) break;
      created = weights;
      landed = next;
    }
  }
  const effects = told([...landed.effects, ...(created ? [created] : []), ...landed.trailing]);
  if (current && onlyConfirmsRouting(current, landed.status, effects, obs, plan))
    return { status: current, effects };
  return { status: landed.status, effects };
}

/** The write creates the routing object at stable 100: it does not exist, and Perch may write it. */
function createsAtStable(weights: Effect, obs: Observation): boolean {
  return weights.type === 'setWeights' && weights.canaryWeight === 0 && !obs.traffic && obs.routing.ok;
}

/** The observation as the create leaves it: Perch's own object, the stable Service alone at 100. */
function createdAtStable(obs: Observation): Observation {
  return { ...obs, traffic: { canaryWeight: 0, lastWritten: 0, asPlanned: true, ownedByRef: true } };
}

/** How long a status may go on saying a routed weight is being routed, when a round's write comes by then. */
const CONFIRMATION_MAY_WAIT_MS = 30_000;

/**
 * A look whose only news is that the weight the status asked for is now routed (TrafficRouted turning
 * True, the message moving on to what the step waits for), while a round of checks is due within
 * CONFIRMATION_MAY_WAIT_MS, writes nothing: that round's status write says it, seconds later. The weight, the
 * step and every counter are as stored already; a refusal, a pause, an invalid spec or an Event
 * still write at once. (Issue 16: the status at each real transition, not at each look.)
 */
function onlyConfirmsRouting(
  current: RolloutStatus,
  decided: RolloutStatus,
  effects: Effect[],
  obs: Observation,
  plan: Plan,
): boolean {
  if (effects.some((e) => e.type !== 'requeueAfter')) return false;
  if (!ACTIVE.has(decided.phase) || decided.phase !== current.phase) return false;
  const next = Date.parse(decided.analysis?.nextCheckAt ?? '');
  if (!checksRun(decided, plan) || !(next <= obs.now + CONFIRMATION_MAY_WAIT_MS)) return false;
  const routed = (s: RolloutStatus) => s.conditions?.find((c) => c.type === 'TrafficRouted')?.status;
  if (routed(decided) !== 'True' || routed(current) === 'True') return false;
  const { message: _m, conditions: decidedConditions, ...decidedRest } = decided;
  const { message: _n, conditions: currentConditions, ...currentRest } = current;
  // Apart from the message (and the conditions that repeat it), only TrafficRouted may differ.
  const gist = (cs: RolloutStatus['conditions']) =>
    (cs ?? []).filter((c) => c.type !== 'TrafficRouted').map((c) => [c.type, c.status, c.reason]);
  return deepEqual(decidedRest, currentRest) && deepEqual(gist(decidedConditions), gist(currentConditions));
}

/** Events that lead into a next transition, and the Events of those transitions that tell them too. */
const LEADS_INTO: ReadonlyMap<string, ReadonlySet<string>> = new Map([
  // A run's start and its first weight, written on the routing object just created: told as the start.
  ['RunStarted', new Set(['WeightChanged'])],
  ['AnalysisPassed', new Set(['WeightChanged', 'Paused', 'Promoting', 'Promoted'])],
  ['Promoting', new Set(['Promoted'])],
  // A round's failed check, then the rollback it starts: the rollback's Event names the metric too.
  ['AnalysisFailed', new Set(['AnalysisFailed'])],
]);

/** Leads whose reason the folded Event keeps: a person looks for the run's start by its name. */
const TOLD_AS_LEAD: ReadonlySet<string> = new Set(['RunStarted']);

/**
 * One Event per transition a person acts on, not per intermediate one: when one look takes a step's
 * passing analysis and the step after it, a promotion's start and its end, or a failed check and the
 * rollback it starts, one Event tells both (the later one's reason, or a run start's own, both messages
 * in order, or the later one's alone where it repeats the first). Each Event is an API write.
 */
function told(effects: Effect[]): Effect[] {
  const out: Effect[] = [];
  let lead: Extract<Effect, { type: 'event' }> | undefined;
  for (const e of effects) {
    if (e.type !== 'event') {
      out.push(e);
      continue;
    }
    const folds =
      lead !== undefined && lead.eventType === e.eventType && LEADS_INTO.get(lead.reason)!.has(e.reason);
    if (lead && !folds) out.push(lead);
    const message =
      folds && !e.message.includes(lead!.message) ? `${lead!.message}; ${e.message}` : e.message;
    const event = folds
      ? { ...e, reason: TOLD_AS_LEAD.has(lead!.reason) ? lead!.reason : e.reason, message }
      : e;
    lead = undefined;
    if (LEADS_INTO.has(event.reason)) lead = event;
    else out.push(event);
  }
  if (lead) out.push(lead);
  return out;
}
