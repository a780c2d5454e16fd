// The rollout state machine (xstate v5): SPEC §4's phases as states, one RECONCILE event per reconcile.
// Guards and actions are pure; actions run the transitions of transitions.ts and enqueue their effects.
import { and, assign, not, setup } from 'xstate';
import type { Phase, RolloutStatus } from '../api/v1alpha1.js';
import { latestVerdicts, worstCheck } from './checks.js';
import type { Plan } from './plan.js';
import { routedAt, sameTarget } from './traffic.js';
import { settle } from './settle.js';
import * as t from './transitions.js';
import type { Effect, Observation } from './types.js';

export interface MachineContext {
  status: RolloutStatus;
  /** What this reconcile's transitions asked for, in order. */
  effects: Effect[];
  /** The status the reconcile started from (its round of checks counted): what `settle` compares with. */
  before: RolloutStatus;
  /**
   * What `settle` derives from where the reconcile lands, after the transitions' own effects: the weight
   * to write, one-shot annotations cleared, a SpecUpdated Event, the next look. Replaced, not appended,
   * by each settle, so a reconcile that takes several transitions ends with the last one's.
   */
  trailing: Effect[];
}

/** RECONCILE: one look at the Rollout. DELETE: its deletion, whatever the phase. */
export interface ReconcileEvent {
  type: 'RECONCILE' | 'DELETE';
  obs: Observation;
  plan: Plan;
}

type GuardArgs = { context: MachineContext; event: ReconcileEvent };
type Guard = (args: GuardArgs) => boolean;

const failedRound = (obs: Observation) => worstCheck(obs.checks)?.verdict === 'Fail';

const was =
  (phase: NonNullable<RolloutStatus['invalidFrom']>): Guard =>
  ({ context }) =>
    context.status.invalidFrom === phase;

const guards = {
  invalid: ({ event }) => !event.obs.validation.valid,
  // SPEC §4: only what the run delivers starts a new one; any other spec change applies to the run as it is.
  newTarget: ({ context, event }) =>
    context.status.runTarget !== undefined && !sameTarget(context.status.runTarget, event.obs.target),
  retryRequested: ({ event }) => event.obs.annotations.retry,
  abortRequested: ({ event }) => event.obs.annotations.abort,
  promoteRequested: ({ event }) => event.obs.annotations.promote,
  failedTooOften: ({ context, event }) =>
    failedRound(event.obs) && (context.status.analysis?.failed ?? 0) > event.plan.failureLimit,
  // Any metric whose latest check failed: no step advances and no promote until it passes again.
  lastCheckFailed: ({ context, event }) =>
    [...latestVerdicts(context.status.analysis, event.plan.metrics).values()].includes('Fail'),
  deadlineExceeded: ({ context, event }) => {
    const at = t.deadlineAt(context.status, event.plan);
    return at !== undefined && event.obs.now > at;
  },
  invalidTooLong: ({ context, event }) => {
    const at = t.invalidDeadlineAt(context.status, event.plan);
    return at !== undefined && event.obs.now > at;
  },
  shouldHold: ({ context, event }) => t.holdReason(context.status, event.obs, event.plan) !== undefined,
  cannotRoute: ({ context, event }) => !routedAt(event.obs, context.status.canaryWeight ?? 0),
  windowClosed: ({ event }) => !event.obs.window.open,
  stepsDone: ({ context, event }) => (context.status.currentStepIndex ?? 0) >= event.plan.steps.length,
  // Promotion needs every metric's latest check to pass, and a passing round since the last step
  // began: checks made at a lower weight do not vouch for the last one.
  readyToPromote: ({ context, event }) =>
    (context.status.currentStepIndex ?? 0) >= event.plan.steps.length &&
    (!event.plan.analysis ||
      ((context.status.analysis?.consecutivePassed ?? 0) >= 1 &&
        [...latestVerdicts(context.status.analysis, event.plan.metrics).values()].every(
          (v) => v === 'Pass',
        ))),
  atSetWeight: ({ context, event }) => t.currentStep(context.status, event.plan)?.kind === 'setWeight',
  analysisStepDone: ({ context, event }) => {
    const step = t.currentStep(context.status, event.plan);
    return step?.kind === 'analysis' && (context.status.analysis?.consecutivePassed ?? 0) >= step.iterations;
  },
  atAnalysisStep: ({ context, event }) => t.currentStep(context.status, event.plan)?.kind === 'analysis',
  trafficOnCanary: ({ event }) => routedAt(event.obs, 100),
  trafficOnStable: ({ event }) => routedAt(event.obs, 0),
  atPauseStep: ({ context, event }) => t.currentStep(context.status, event.plan)?.kind === 'pause',
  wasSucceeded: was('Succeeded'),
  wasFailed: was('Failed'),
  wasAborted: was('Aborted'),
  wasRollingBack: was('RollingBack'),
  endsAborted: ({ context }) => context.status.rollback?.phase === 'Aborted',
  runUnderway: ({ context }) => context.status.runStartedAt !== undefined,
} satisfies Record<string, Guard>;

/** The `apply` action's params: transitions run in order, each on the status the previous one left. */
const run = (...transitions: t.Transition[]) => ({ type: 'apply' as const, params: { transitions } });

type Candidate = {
  guard?: unknown;
  target?: string;
  reenter?: boolean;
  actions?: ReturnType<typeof run>;
};

/**
 * A state's RECONCILE candidates, each ending with `settle` for the phase it lands in, and a last one
 * that only settles: whatever a reconcile decides, it ends the same way (settle.ts).
 */
function settled<const C extends readonly Candidate[]>(phase: Phase, candidates: C) {
  const landing = (target: string | undefined) => ({
    type: 'settle' as const,
    params: { phase: (target?.replace('#rollout.', '') ?? phase) as Phase },
  });
  return [
    ...candidates.map((c) => ({ ...c, actions: [...(c.actions ? [c.actions] : []), landing(c.target)] })),
    { actions: [landing(undefined)] },
  ] as unknown as C;
}

// Candidates shared by the states of a running rollout, in priority order.
const invalid = { guard: 'invalid', target: '#rollout.Invalid', actions: run(t.markInvalid) } as const;
const deadline = {
  guard: 'deadlineExceeded',
  target: '#rollout.RollingBack',
  actions: run(t.beginDeadlineFailure),
} as const;
const newRun = {
  guard: 'newTarget',
  target: '#rollout.Progressing',
  reenter: true,
  actions: run(t.startRun),
} as const;
const abort = {
  guard: 'abortRequested',
  target: '#rollout.RollingBack',
  actions: run(t.beginAbort),
} as const;
const fail = {
  guard: 'failedTooOften',
  target: '#rollout.RollingBack',
  actions: run(t.beginFailure),
} as const;
// Not even a person's promote raises the canary's weight in a round whose checks failed.
const promote = {
  guard: and(['promoteRequested', not('lastCheckFailed')]),
  target: '#rollout.Promoting',
  actions: run(t.beginPromotion),
} as const;
const pause = { guard: 'shouldHold', target: '#rollout.Paused', actions: run(t.hold) } as const;
/** What every running state checks first: validity, a new target, an abort, failures, a promote. */
const running = [invalid, newRun, abort, fail, promote] as const;

export const rolloutMachine = setup({
  types: {} as { context: MachineContext; events: ReconcileEvent; input: MachineContext },
  guards,
  actions: {
    // Effects are data in the context: the controller carries them out, the machine never runs them.
    apply: assign(({ context, event }, params: { transitions: t.Transition[] }) => {
      let status = context.status;
      const effects = [...context.effects];
      for (const transition of params.transitions) {
        const decision = transition(status, event.obs, event.plan);
        status = decision.status;
        effects.push(...decision.effects);
      }
      return { status, effects };
    }),
    settle: assign(({ context, event }, params: { phase: Phase }) => {
      const settled = settle(
        context.before,
        context.status,
        context.effects,
        params.phase,
        event.obs,
        event.plan,
      );
      return { status: settled.status, trailing: settled.effects };
    }),
  },
}).createMachine({
  id: 'rollout',
  initial: 'Pending',
  context: ({ input }) => input,
  // Deletion, in any phase: the live version at 100, the routing object released, the finalizer.
  on: { DELETE: { actions: run(t.deletion) } },
  states: {
    Pending: {
      on: { RECONCILE: settled('Pending', [invalid, { target: 'Progressing', actions: run(t.startRun) }]) },
    },
    Invalid: {
      on: {
        RECONCILE: settled('Invalid', [
          {
            guard: and(['invalid', 'invalidTooLong']),
            target: 'RollingBack',
            actions: run(t.beginInvalidFailure),
          },
          { guard: 'invalid', actions: run(t.markInvalid) },
          newRun,
          // Back to the phase it had: a finished run stays finished, a rollback finishes.
          { guard: 'wasSucceeded', target: 'Succeeded', actions: run(t.revalidate) },
          { guard: 'wasFailed', target: 'Failed', actions: run(t.revalidate) },
          { guard: 'wasAborted', target: 'Aborted', actions: run(t.revalidate) },
          { guard: 'wasRollingBack', target: 'RollingBack', actions: run(t.revalidate) },
          // A run that was promoting goes back through Progressing: the promotion gate stands again.
          { guard: 'runUnderway', target: 'Progressing', actions: run(t.revalidate) },
          { target: 'Progressing', actions: run(t.startRun) },
        ]),
      },
    },
    Progressing: {
      on: {
        RECONCILE: settled('Progressing', [
          ...running,
          pause,
          deadline,
          { guard: 'cannotRoute', actions: run(t.awaitTraffic) },
          { guard: 'windowClosed', actions: run(t.holdForWindow) },
          // Never raise the canary's weight in a round with a failed check, even one within failureLimit.
          { guard: 'lastCheckFailed', actions: run(t.holdAfterFailure) },
          { guard: 'readyToPromote', target: 'Promoting', actions: run(t.beginPromotion) },
          { guard: 'stepsDone', actions: run(t.clockOn, t.awaitPassingChecks) },
          { guard: 'atSetWeight', actions: run(t.clockOn, t.applySetWeight) },
          { guard: 'analysisStepDone', actions: run(t.clockOn, t.completeAnalysisStep) },
          { guard: 'atAnalysisStep', actions: run(t.clockOn, t.awaitAnalysis) },
          // A pause step whose time is up (or that was resumed): move past it.
          { actions: run(t.resume) },
        ]),
      },
    },
    Paused: {
      on: {
        RECONCILE: settled('Paused', [
          ...running,
          { guard: 'shouldHold', actions: run(t.hold) },
          // A pause step that is over still waits for the window before the run moves past it.
          {
            guard: and(['windowClosed', 'atPauseStep']),
            target: 'Progressing',
            actions: run(t.holdForWindow),
          },
          { target: 'Progressing', actions: run(t.resume) },
        ]),
      },
    },
    Promoting: {
      on: {
        RECONCILE: settled('Promoting', [
          newRun,
          abort,
          { guard: 'trafficOnCanary', target: 'Succeeded', actions: run(t.finishPromotion) },
          deadline,
          { actions: run(t.awaitTraffic) },
        ]),
      },
    },
    RollingBack: {
      on: {
        RECONCILE: settled('RollingBack', [
          newRun,
          {
            guard: and(['trafficOnStable', 'endsAborted']),
            target: 'Aborted',
            actions: run(t.finishRollback),
          },
          { guard: 'trafficOnStable', target: 'Failed', actions: run(t.finishRollback) },
          { actions: run(t.awaitTraffic) },
        ]),
      },
    },
    Succeeded: { on: { RECONCILE: settled('Succeeded', [invalid, newRun]) } },
    Failed: {
      on: {
        RECONCILE: settled('Failed', [
          invalid,
          newRun,
          { guard: 'retryRequested', target: 'Progressing', actions: run(t.startRun) },
        ]),
      },
    },
    Aborted: {
      on: {
        RECONCILE: settled('Aborted', [
          invalid,
          newRun,
          { guard: 'retryRequested', target: 'Progressing', actions: run(t.startRun) },
        ]),
      },
    },
  },
});

export const PHASES: readonly Phase[] = [
  'Pending',
  'Progressing',
  'Paused',
  'Promoting',
  'Succeeded',
  'RollingBack',
  'Failed',
  'Aborted',
  'Invalid',
];
