// The machine's actions as pure functions: (status, observation, plan) → next status and effects.
// Each is one transition of SPEC §4; the xstate machine (rollout-machine.ts) decides which one runs.
import { ANNOTATIONS, type PauseReason, type Phase, type RolloutStatus } from '../api/v1alpha1.js';
import { emptyAnalysis, worstCheck } from './checks.js';
import { formatDuration } from './duration.js';
import type { Plan, PlanStep } from './plan.js';
import { deletionEffects, routedAt } from './traffic.js';
import type { Decision, Effect, Observation } from './types.js';

export type Transition = (status: RolloutStatus, obs: Observation, plan: Plan) => Decision;

const iso = (ms: number) => new Date(ms).toISOString();
/** "1 failed check", "2 failed checks". */
const count = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;
const normal = (reason: string, message: string): Effect => ({
  type: 'event',
  eventType: 'Normal',
  reason,
  message,
});
const warning = (reason: string, message: string): Effect => ({
  type: 'event',
  eventType: 'Warning',
  reason,
  message,
});

export function currentStep(status: RolloutStatus, plan: Plan): PlanStep | undefined {
  return plan.steps[status.currentStepIndex ?? 0];
}

function stepLabel(index: number, plan: Plan): string {
  return `step ${Math.min(index + 1, plan.steps.length)}/${plan.steps.length}`;
}

function weights(canary: number): Pick<RolloutStatus, 'canaryWeight' | 'stableWeight'> {
  return { canaryWeight: canary, stableWeight: 100 - canary };
}

/**
 * Whether metrics are checked in this state: from the first non-zero weight (SPEC §4), and during an
 * analysis step at any weight. An analysis step at weight 0 checks the canary on its own preview
 * traffic (blue-green); without checks there it could never finish.
 */
export function checksRun(status: RolloutStatus, plan: Plan): boolean {
  return plan.analysis && ((status.canaryWeight ?? 0) > 0 || currentStep(status, plan)?.kind === 'analysis');
}

/**
 * The check clock: the first check comes one interval after checks start (so its window holds only
 * requests made since), and later ones keep their schedule. Off while nothing is to be checked.
 */
function withCheckClock(status: RolloutStatus, plan: Plan, now: number): RolloutStatus {
  const analysis = status.analysis ?? emptyAnalysis();
  const nextCheckAt = checksRun(status, plan)
    ? (analysis.nextCheckAt ?? iso(now + plan.intervalMs))
    : undefined;
  return { ...status, analysis: { ...analysis, nextCheckAt } };
}

/** Moves to the next step: its clock and its run of passing checks start now. */
function nextStep(status: RolloutStatus, plan: Plan, now: number): RolloutStatus {
  return withCheckClock(
    {
      ...status,
      currentStepIndex: (status.currentStepIndex ?? 0) + 1,
      stepStartedAt: iso(now),
      progressSince: iso(now),
      pauseReason: undefined,
      analysis: { ...(status.analysis ?? emptyAnalysis()), consecutivePassed: 0 },
    },
    plan,
    now,
  );
}

export const startRun: Transition = (status, obs, plan) => {
  const retry = obs.annotations.retry && (status.phase === 'Failed' || status.phase === 'Aborted');
  const now = iso(obs.now);
  const { stableService, canaryService } = obs.target;
  const message = `run started: ${canaryService} against ${stableService}, ${count(plan.steps.length, 'step')}, stable 100%`;
  const started: RolloutStatus = {
    ...status,
    observedGeneration: obs.generation,
    runTarget: obs.target,
    phase: 'Progressing',
    message,
    currentStepIndex: 0,
    ...weights(0),
    runStartedAt: now,
    stepStartedAt: now,
    progressSince: now,
    pauseReason: undefined,
    rollback: undefined,
    invalidFrom: undefined,
    invalidSince: undefined,
    analysis: emptyAnalysis(),
  };
  return {
    // A run that begins with an analysis step starts its check clock now.
    status: withCheckClock(started, plan, obs.now),
    effects: [normal('RunStarted', retry ? `${message} (retry)` : message)],
  };
};

export const markInvalid: Transition = (status, obs) => {
  if (obs.validation.valid) return { status, effects: [] };
  const changed = status.phase !== 'Invalid' || status.message !== obs.validation.message;
  const spell = status.phase === 'Invalid';
  return {
    // The progress clock stops while invalid; the spell has a clock of its own (invalidTooLong).
    status: {
      ...status,
      phase: 'Invalid',
      invalidFrom: spell ? status.invalidFrom : (status.phase as Exclude<Phase, 'Invalid'> | undefined),
      invalidSince: spell && status.invalidSince ? status.invalidSince : iso(obs.now),
      message: obs.validation.message,
      progressSince: undefined,
    },
    effects: changed ? [warning('Invalid', obs.validation.message)] : [],
  };
};

/**
 * Valid again with the same generation: back to the phase it had. A finished run stays finished;
 * a running one goes on with its clocks started afresh (the next check a full interval away).
 */
export const revalidate: Transition = (status, obs, plan) => {
  const phase = status.invalidFrom && status.invalidFrom !== 'Pending' ? status.invalidFrom : 'Progressing';
  const finished = phase === 'Succeeded' || phase === 'Failed' || phase === 'Aborted';
  const analysis = status.analysis ?? emptyAnalysis();
  const running = finished
    ? {}
    : {
        progressSince: iso(obs.now),
        analysis: {
          ...analysis,
          nextCheckAt: checksRun(status, plan) ? iso(obs.now + plan.intervalMs) : analysis.nextCheckAt,
        },
      };
  return {
    status: {
      ...status,
      ...running,
      phase,
      invalidFrom: undefined,
      invalidSince: undefined,
      message: `spec valid again; ${finished ? `still ${phase}` : 'the run goes on'}`,
    },
    effects: [normal('Valid', `spec valid again; ${finished ? `still ${phase}` : 'the run goes on'}`)],
  };
};

export const applySetWeight: Transition = (status, obs, plan) => {
  const step = currentStep(status, plan);
  if (step?.kind !== 'setWeight') return { status, effects: [] };
  const index = status.currentStepIndex ?? 0;
  const message = `canary ${step.weight}%, stable ${100 - step.weight}% (${stepLabel(index, plan)})`;
  const moved = nextStep({ ...status, ...weights(step.weight) }, plan, obs.now);
  return { status: { ...moved, phase: 'Progressing', message }, effects: [normal('WeightChanged', message)] };
};

export const completeAnalysisStep: Transition = (status, obs, plan) => {
  const index = status.currentStepIndex ?? 0;
  const passes = status.analysis?.consecutivePassed ?? 0;
  const message = `${count(passes, 'consecutive passing check')} (${stepLabel(index, plan)})`;
  return {
    status: { ...nextStep(status, plan, obs.now), phase: 'Progressing', message },
    effects: [normal('AnalysisPassed', message)],
  };
};

export const awaitAnalysis: Transition = (status, _obs, plan) => {
  const step = currentStep(status, plan);
  const need = step?.kind === 'analysis' ? step.iterations : 0;
  const have = status.analysis?.consecutivePassed ?? 0;
  return {
    status: {
      ...status,
      phase: 'Progressing',
      message: `waiting for ${count(need, 'consecutive passing check')} (${have} so far)`,
    },
    effects: [],
  };
};

/** Why the run should be held now, or undefined when it may move. Order: a person, safety, the plan. */
export function holdReason(status: RolloutStatus, obs: Observation, plan: Plan): PauseReason | undefined {
  if (obs.annotations.paused) return 'Manual';
  // perch.dev/resume only ends a pause already in effect. One present as a pause begins is early, or
  // left over from a resume acted on just before a crash: it must never skip the pause that follows.
  const resume = obs.annotations.resume && status.phase === 'Paused';
  const round = worstCheck(obs.checks)?.verdict;
  const a = status.analysis ?? emptyAnalysis();
  if (!resume) {
    // A safety pause starts on a round of its own kind, lasts while no round passes, and ends on a pass.
    if (round === 'Error' && a.consecutiveErrors > plan.errorLimit) return 'MetricsUnavailable';
    if (round === 'Inconclusive' && a.inconclusive > plan.inconclusiveLimit) return 'AnalysisInconclusive';
    const safety =
      status.pauseReason === 'MetricsUnavailable' || status.pauseReason === 'AnalysisInconclusive';
    if (status.phase === 'Paused' && safety && round !== 'Pass') return status.pauseReason;
  }
  const step = currentStep(status, plan);
  if (step?.kind === 'pause') {
    const started = Date.parse(status.stepStartedAt ?? iso(obs.now));
    const elapsed = step.durationMs !== undefined && obs.now - started >= step.durationMs;
    if (!elapsed && !resume) return 'PauseStep';
  }
  return undefined;
}

function pauseMessage(reason: PauseReason, status: RolloutStatus, obs: Observation, plan: Plan): string {
  const a = status.analysis ?? emptyAnalysis();
  switch (reason) {
    case 'Manual':
      return `paused by ${ANNOTATIONS.paused}; checks go on`;
    case 'MetricsUnavailable':
      return `metrics unavailable: ${count(a.consecutiveErrors, 'consecutive error')} (limit ${plan.errorLimit}): ${worstCheck(obs.checks)?.reason ?? 'no answer'}; goes on when data returns`;
    case 'AnalysisInconclusive':
      return `analysis inconclusive: ${count(a.inconclusive, 'inconclusive check')} (limit ${plan.inconclusiveLimit}); goes on when a check passes, or with ${ANNOTATIONS.resume}`;
    case 'PauseStep': {
      const step = currentStep(status, plan);
      const wait =
        step?.kind === 'pause' && step.durationMs !== undefined
          ? `for ${formatDuration(step.durationMs)}`
          : `for ${ANNOTATIONS.resume}`;
      return `paused ${wait} (${stepLabel(status.currentStepIndex ?? 0, plan)})`;
    }
  }
}

export const hold: Transition = (status, obs, plan) => {
  const reason = holdReason(status, obs, plan);
  if (!reason) return { status, effects: [] };
  const message = pauseMessage(reason, status, obs, plan);
  const changed = status.phase !== 'Paused' || status.pauseReason !== reason;
  return {
    // A pause stops the progress-deadline clock: waiting on a person or on data is not a stuck step.
    status: { ...status, phase: 'Paused', pauseReason: reason, message, progressSince: undefined },
    effects: changed ? [normal('Paused', message)] : [],
  };
};

/** Out of a pause: a finished pause step moves on; a resumed safety pause starts its counts afresh. */
export const resume: Transition = (status, obs, plan) => {
  const wasReason = status.pauseReason;
  const step = currentStep(status, plan);
  const fromPauseStep = step?.kind === 'pause';
  const analysis = status.analysis ?? emptyAnalysis();
  const fresh =
    wasReason === 'MetricsUnavailable' || wasReason === 'AnalysisInconclusive'
      ? { ...analysis, inconclusive: 0, consecutiveErrors: 0 }
      : analysis;
  const base: RolloutStatus = {
    ...status,
    analysis: fresh,
    pauseReason: undefined,
    progressSince: iso(obs.now),
  };
  // Past a pause step only when that pause is over: its time is up, or a person resumed the pause
  // step itself. Resuming a safety or manual pause never also skips a timed pause underneath it.
  const started = Date.parse(status.stepStartedAt ?? iso(obs.now));
  const elapsed =
    step?.kind === 'pause' && step.durationMs !== undefined && obs.now - started >= step.durationMs;
  const pauseOver =
    elapsed || (obs.annotations.resume && wasReason === 'PauseStep') || status.phase !== 'Paused';
  const moved = fromPauseStep && pauseOver ? nextStep(base, plan, obs.now) : base;
  const by = obs.annotations.resume
    ? ANNOTATIONS.resume
    : wasReason === 'Manual'
      ? `removing ${ANNOTATIONS.paused}`
      : 'itself';
  const message = `resumed (${by})${wasReason ? ` after ${wasReason}` : ''}`;
  return {
    status: { ...moved, phase: 'Progressing', message },
    effects: status.phase === 'Paused' ? [normal('Resumed', message)] : [],
  };
};

export const holdForWindow: Transition = (status, obs) => {
  const next = obs.window.nextOpenAt ? `; opens ${iso(obs.window.nextOpenAt)}` : '';
  return {
    status: {
      ...status,
      phase: 'Progressing',
      message: `outside the promotion window${next}`,
      progressSince: undefined,
    },
    effects: [],
  };
};

/**
 * When the current step fails for want of progress, or undefined while its clock is stopped: paused,
 * outside the window, invalid, or while Prometheus errors (that pauses the run at errorLimit; it never
 * fails a run on its own).
 */
export function deadlineAt(status: RolloutStatus, plan: Plan): number | undefined {
  if (!status.progressSince || (status.analysis?.consecutiveErrors ?? 0) > 0) return undefined;
  return Date.parse(status.progressSince) + plan.progressDeadlineMs;
}

/**
 * When an invalid spell mid-run rolls back, or undefined when it never does: only mid-run, and only
 * while the canary carries traffic; a spell no longer than the deadline is held out.
 */
export function invalidDeadlineAt(status: RolloutStatus, plan: Plan): number | undefined {
  const midRun = status.invalidFrom === 'Progressing' || status.invalidFrom === 'Paused';
  if (!midRun || (status.canaryWeight ?? 0) === 0 || !status.invalidSince) return undefined;
  return Date.parse(status.invalidSince) + plan.progressDeadlineMs;
}

/** Keeps the deadline clock running once the run may move again (after a pause or a closed window). */
export const clockOn: Transition = (status, obs) => ({
  status: status.progressSince ? status : { ...status, progressSince: iso(obs.now) },
  effects: [],
});

export const holdAfterFailure: Transition = (status, obs, plan) => {
  const failed = status.analysis?.failed ?? 0;
  const tolerated = `${failed} of ${plan.failureLimit} failed checks tolerated`;
  const failing = worstCheck(obs.checks);
  if (failing?.verdict === 'Fail')
    return { status: { ...status, message: `check failed (${tolerated}): ${failing.reason}` }, effects: [] };
  // No round this time: name the metric whose latest check failed, from the measurements.
  const last = [...(status.analysis?.measurements ?? [])].reverse().find((m) => m.verdict === 'Fail');
  const what = last ? `${last.metric}${last.value !== undefined ? ` ${last.value}` : ''}` : 'a metric';
  return { status: { ...status, message: `holding until ${what} passes again (${tolerated})` }, effects: [] };
};

export const awaitTraffic: Transition = (status, obs) => {
  const observed = obs.traffic ? `canary ${obs.traffic.canaryWeight}%` : 'no TrafficSplit yet';
  const message = obs.routing.ok
    ? `routing canary ${status.canaryWeight ?? 0}% (observed: ${observed})`
    : `cannot route traffic: ${obs.routing.message}`;
  return { status: { ...status, message }, effects: [] };
};

export const awaitPassingChecks: Transition = (status) => ({
  status: {
    ...status,
    phase: 'Progressing',
    message: 'every step done; promotion waits for a passing check of every metric',
  },
  effects: [],
});

export const beginPromotion: Transition = (status, obs, plan) => {
  const manual = obs.annotations.promote;
  const message = manual
    ? `promoting now (${ANNOTATIONS.promote})`
    : 'every step passed; promoting the canary to 100%';
  return {
    status: {
      ...status,
      phase: 'Promoting',
      message,
      ...weights(100),
      currentStepIndex: plan.steps.length,
      pauseReason: undefined,
      // Promotion is a step of its own: a weight of 100 that can never be written ends the run too.
      progressSince: iso(obs.now),
    },
    effects: [normal('Promoting', message)],
  };
};

export const finishPromotion: Transition = (status, obs) => {
  const started = Date.parse(status.runStartedAt ?? iso(obs.now));
  const message = `canary promoted: 100% of traffic on it after ${formatDuration(obs.now - started)}`;
  return { status: { ...status, phase: 'Succeeded', message }, effects: [normal('Promoted', message)] };
};

function beginRollback(
  status: RolloutStatus,
  phase: 'Failed' | 'Aborted',
  reason: string,
  message: string,
): Decision {
  return {
    status: {
      ...status,
      phase: 'RollingBack',
      message: `rolling back: ${message}`,
      ...weights(0),
      pauseReason: undefined,
      progressSince: undefined,
      invalidFrom: undefined,
      invalidSince: undefined,
      rollback: { phase, reason, message },
    },
    effects: [warning(phase === 'Aborted' ? 'Aborted' : reason, `rolling back to stable: ${message}`)],
  };
}

export const beginAbort: Transition = (status) =>
  beginRollback(status, 'Aborted', 'Aborted', `aborted by ${ANNOTATIONS.abort}`);

export const beginFailure: Transition = (status, obs, plan) => {
  const failing = worstCheck(obs.checks);
  const failed = status.analysis?.failed ?? 0;
  return beginRollback(
    status,
    'Failed',
    'AnalysisFailed',
    `${failing?.reason ?? 'a check failed'} (${count(failed, 'failed check')}, limit ${plan.failureLimit})`,
  );
};

export const beginDeadlineFailure: Transition = (status, obs, plan) => {
  const what =
    status.phase === 'Promoting' ? 'the promotion to 100%' : stepLabel(status.currentStepIndex ?? 0, plan);
  // Name what it waits for: a weight never routed (say what the API server answered) or a check.
  const why = !routedAt(obs, status.canaryWeight ?? 0)
    ? `: canary ${status.canaryWeight ?? 0}% never routed${obs.refused ? ` (${obs.refused.message})` : ''}`
    : '';
  return beginRollback(
    status,
    'Failed',
    'ProgressDeadlineExceeded',
    `${what} made no progress for ${formatDuration(plan.progressDeadlineMs)}${why}`,
  );
};

/** Mid-run, the spec stayed invalid longer than the deadline: the canary must not carry traffic unchecked. */
export const beginInvalidFailure: Transition = (status, obs, plan) =>
  beginRollback(
    { ...status, phase: status.invalidFrom },
    'Failed',
    'InvalidSpec',
    `the spec was invalid for longer than ${formatDuration(plan.progressDeadlineMs)} with the canary at ${status.canaryWeight ?? 0}%: ${obs.validation.valid ? 'valid again too late' : obs.validation.message}`,
  );

export const finishRollback: Transition = (status) => {
  const outcome = status.rollback ?? {
    phase: 'Failed' as const,
    reason: 'RolledBack',
    message: 'rolled back',
  };
  const message = `${outcome.phase === 'Aborted' ? 'aborted' : 'failed'}: ${outcome.message}; stable 100%`;
  return { status: { ...status, phase: outcome.phase, message }, effects: [warning('RolledBack', message)] };
};

/** A one-shot annotation that does not apply now is removed too, so it can never fire later by surprise. */
export function oneShotEffects(obs: Observation, acted: ReadonlySet<string>): Effect[] {
  const effects: Effect[] = [];
  for (const key of ['resume', 'promote', 'abort', 'retry'] as const) {
    if (!obs.annotations[key]) continue;
    const annotation = ANNOTATIONS[key];
    effects.push({ type: 'clearAnnotation', key: annotation });
    if (!acted.has(key))
      effects.push(normal('AnnotationIgnored', `${annotation} does not apply now; removed`));
  }
  return effects;
}

/** Deletion: the Rollout's status is not written any more; the effects put traffic on the live version. */
export const deletion: Transition = (status, obs) => ({ status, effects: deletionEffects(status, obs) });
