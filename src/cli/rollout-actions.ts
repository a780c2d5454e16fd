// What `kubectl perch pause|resume|promote|abort|retry` write to a Rollout, decided from what it shows now.
// Pure: a merge patch of annotations, nothing to do, or a refusal, each with the line a person reads.
import { ANNOTATIONS, phaseText, type Rollout } from '../api/v1alpha1.js';
import { routeTarget, runTarget } from '../controller/route-target.js';
import { sameTarget } from '../machine/traffic.js';
import { planOf } from '../machine/plan.js';
import { formatValue, latestMeasurements } from './rollout-view.js';

export const ACTIONS = ['pause', 'resume', 'promote', 'abort', 'retry'] as const;
export type ActionName = (typeof ACTIONS)[number];

export type ActionPlan =
  /** Send this merge patch of metadata.annotations (null removes one). */
  | { kind: 'patch'; annotations: Record<string, string | null>; message: string }
  /** What was asked for is already set or already done: nothing to send, exit 0. */
  | { kind: 'noop'; message: string }
  /** The controller would ignore the annotation in this state: nothing sent, exit 1. */
  | { kind: 'refuse'; message: string };

const set = (key: string, message: string): ActionPlan => ({
  kind: 'patch',
  annotations: { [key]: 'true' },
  message,
});
const noop = (message: string): ActionPlan => ({ kind: 'noop', message });
const refuse = (message: string): ActionPlan => ({ kind: 'refuse', message });

/** The controller reads an annotation as set only when it is exactly "true" (SPEC §5). */
const isSet = (rollout: Rollout, key: string) => rollout.metadata?.annotations?.[key] === 'true';

const refOf = (rollout: Rollout) =>
  `rollout ${rollout.metadata?.namespace ?? ''}/${rollout.metadata?.name ?? ''}`;

/**
 * Why a one-shot would not reach the current run: the spec names another version to deliver (SPEC §4),
 * so a new run starts before anything else. Other edits apply to the run as it is.
 */
function newRunPending(rollout: Rollout): string | undefined {
  const ran = rollout.status?.runTarget;
  if (!ran) return undefined;
  const next = runTarget(routeTarget(rollout));
  if (sameTarget(ran, next)) return undefined;
  return `its spec names another version to deliver (${next.canaryService} against ${next.stableService}; the run shown is of ${ran.canaryService}), so the controller starts a new run first`;
}

/** The refusal for a Rollout whose run is not underway: not started, or an invalid spec. */
function notRunning(rollout: Rollout): string {
  const ref = refOf(rollout);
  const s = rollout.status;
  if (s?.phase === 'Invalid')
    return `${ref} is Invalid (${s.message ?? 'see kubectl perch status'}): fix its spec first`;
  return `${ref} has not started its run yet (phase ${s?.phase ?? 'none'}): try again once it is Progressing`;
}

/** The run will hold at a `pause: {}` step once nothing else holds it: one more resume is needed then. */
function atOpenPauseStep(rollout: Rollout): boolean {
  const s = rollout.status;
  if (s?.phase !== 'Progressing' && s?.phase !== 'Paused') return false;
  const step = planOf(rollout.spec).steps[s.currentStepIndex ?? 0];
  return step?.kind === 'pause' && step.durationMs === undefined;
}

function pause(rollout: Rollout): ActionPlan {
  const ref = refOf(rollout);
  if (isSet(rollout, ANNOTATIONS.paused)) return noop(`${ref}: already paused (${ANNOTATIONS.paused}=true)`);
  // perch.dev/paused is a level: set now, it holds whatever run comes next, so it is never refused.
  const phase = rollout.status?.phase;
  const note =
    phase === 'Progressing' || phase === 'Paused'
      ? ''
      : phase === 'Promoting' || phase === 'RollingBack'
        ? ` (the run is ${phase} and finishes regardless; the next run holds)`
        : phase === 'Succeeded' || phase === 'Failed' || phase === 'Aborted'
          ? ` (no run in progress: the next run holds)`
          : phase === 'Invalid'
            ? ' (the run holds once the spec is valid)'
            : ' (the run holds once it starts)';
  return set(ANNOTATIONS.paused, `${ref}: ${ANNOTATIONS.paused}=true set${note}`);
}

/**
 * Lifts the outermost hold, the one the status shows: a person's pause first (remove perch.dev/paused),
 * else a pause step or a safety pause (perch.dev/resume). Never both at once: the controller consumes a
 * perch.dev/resume that arrives with the removal of perch.dev/paused without skipping the step beneath.
 */
function resume(rollout: Rollout): ActionPlan {
  const ref = refOf(rollout);
  const s = rollout.status;
  if (isSet(rollout, ANNOTATIONS.paused)) {
    const then = atOpenPauseStep(rollout)
      ? `; the run then waits at its pause step ${s?.step ?? ''}: resume again to go past it`
      : '';
    return {
      kind: 'patch',
      annotations: { [ANNOTATIONS.paused]: null },
      message: `${ref}: ${ANNOTATIONS.paused} removed${then}`,
    };
  }
  if (s?.phase !== 'Paused') return refuse(`${ref} is ${phaseText(s)}, not paused: nothing to resume`);
  if (s.pauseReason === 'Manual' || s.pauseReason === undefined) {
    // The annotation is gone already; the status has not caught up with it yet.
    return noop(
      `${ref}: ${ANNOTATIONS.paused} is not set any more; the controller resumes the run on its next reconcile`,
    );
  }
  const pending = newRunPending(rollout);
  if (pending) return refuse(`${ref}: ${pending}; resume that run if it pauses`);
  if (isSet(rollout, ANNOTATIONS.resume))
    return noop(`${ref}: ${ANNOTATIONS.resume}=true is already set; the controller acts on it next`);
  const what =
    s.pauseReason === 'PauseStep'
      ? `continues past the pause step ${s.step ?? ''}`
      : `ends the ${s.pauseReason} pause`;
  return set(ANNOTATIONS.resume, `${ref}: ${ANNOTATIONS.resume}=true set (${what})`);
}

function promote(rollout: Rollout): ActionPlan {
  const ref = refOf(rollout);
  const phase = rollout.status?.phase;
  if (phase === 'Promoting' || phase === 'Succeeded')
    return noop(`${ref} is ${phase} already: nothing to promote`);
  if (phase === 'RollingBack' || phase === 'Failed' || phase === 'Aborted') {
    return refuse(
      `${ref} is ${phase}: promote acts only on a run in progress; kubectl perch retry ${rollout.metadata?.name ?? ''} starts it again`,
    );
  }
  if (phase !== 'Progressing' && phase !== 'Paused') return refuse(notRunning(rollout));
  const pending = newRunPending(rollout);
  if (pending) return refuse(`${ref}: ${pending}; promote that run`);
  // The controller raises no weight, not even on a person's promote, while a metric's latest check failed.
  const failing = latestMeasurements(rollout).find(({ latest }) => latest?.verdict === 'Fail');
  if (failing) {
    return refuse(
      `${ref}: the latest check of ${failing.metric} failed (value ${formatValue(failing.latest?.value)}); the controller promotes nothing until it passes again`,
    );
  }
  if (isSet(rollout, ANNOTATIONS.promote))
    return noop(`${ref}: ${ANNOTATIONS.promote}=true is already set; the controller acts on it next`);
  return set(ANNOTATIONS.promote, `${ref}: ${ANNOTATIONS.promote}=true set`);
}

function abort(rollout: Rollout): ActionPlan {
  const ref = refOf(rollout);
  const phase = rollout.status?.phase;
  if (phase === 'RollingBack' || phase === 'Failed' || phase === 'Aborted') {
    const where = phase === 'RollingBack' ? 'is going back' : 'is back';
    return noop(`${ref} is ${phase}: its traffic ${where} on stable; nothing to abort`);
  }
  if (phase === 'Succeeded') {
    return refuse(
      `${ref} is Succeeded: the canary is promoted, and abort only rolls back a run in progress; change the spec to start a new run`,
    );
  }
  if (phase !== 'Progressing' && phase !== 'Paused' && phase !== 'Promoting')
    return refuse(notRunning(rollout));
  const pending = newRunPending(rollout);
  if (pending) return refuse(`${ref}: ${pending}; abort that run`);
  if (isSet(rollout, ANNOTATIONS.abort))
    return noop(`${ref}: ${ANNOTATIONS.abort}=true is already set; the controller acts on it next`);
  return set(ANNOTATIONS.abort, `${ref}: ${ANNOTATIONS.abort}=true set`);
}

function retry(rollout: Rollout): ActionPlan {
  const ref = refOf(rollout);
  const phase = rollout.status?.phase;
  if (phase !== 'Failed' && phase !== 'Aborted') {
    return refuse(
      `${ref} is ${phaseText(rollout.status)}: retry starts a run again only after Failed or Aborted`,
    );
  }
  const pending = newRunPending(rollout);
  if (pending) return noop(`${ref}: ${pending}; no retry needed`);
  if (isSet(rollout, ANNOTATIONS.retry))
    return noop(`${ref}: ${ANNOTATIONS.retry}=true is already set; the controller acts on it next`);
  return set(ANNOTATIONS.retry, `${ref}: ${ANNOTATIONS.retry}=true set`);
}

const PLANNERS: Record<ActionName, (rollout: Rollout) => ActionPlan> = {
  pause,
  resume,
  promote,
  abort,
  retry,
};

/** What `kubectl perch <action>` does to this Rollout as it stands. */
export function planAction(action: ActionName, rollout: Rollout): ActionPlan {
  return PLANNERS[action](rollout);
}
