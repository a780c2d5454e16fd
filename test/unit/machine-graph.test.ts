// A walk over the machine's reachable states: seeded random worlds (verdicts, annotations, windows,
// drift, new generations, invalid specs) driving decide(), with the invariants checked after each step.
import { expect } from 'chai';
import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import type { Verdict } from '../../src/analysis/types.js';
import type { Phase } from '../../src/api/v1alpha1.js';
import { latestVerdicts } from '../../src/machine/checks.js';
import { checksDue } from '../../src/machine/decide.js';
import { planOf } from '../../src/machine/plan.js';
import { rolloutMachine } from '../../src/machine/rollout-machine.js';
import { liveWeight } from '../../src/machine/traffic.js';
import { spec, World } from '../support/machine-world.js';

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const VERDICTS: (Verdict | undefined)[] = [
  'Pass',
  'Pass',
  'Pass',
  'Fail',
  'Inconclusive',
  'Error',
  undefined,
];
const SPECS = [
  spec(),
  spec({ steps: undefined, stepWeight: 25, maxWeight: 75 }),
  spec({ steps: [{ setWeight: 10 }, { pause: {} }, { setWeight: 60 }, { analysis: { iterations: 3 } }] }),
  spec({ steps: [{ setWeight: 30 }, { setWeight: 100 }], progressDeadlineSeconds: 30 }),
  // Blue-green: checks at weight 0 during the analysis step, then one switch.
  spec({ steps: [{ setWeight: 0 }, { analysis: { iterations: 2 } }, { pause: {} }, { setWeight: 100 }] }),
];

describe('machine: graph walk over reachable states', function () {
  this.timeout(60_000);

  it('keeps every invariant on 2,000 seeded walks and reaches every state of the machine', () => {
    const visited = new Set<Phase>();
    for (let walk = Number(process.env.WALK_FROM ?? 0); walk < Number(process.env.WALK_TO ?? 2000); walk++) {
      const random = prng(walk + 1);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
      const base = structuredClone(pick(SPECS));
      base.analysis!.failureLimit = pick([0, 0, 1]);
      base.analysis!.inconclusiveLimit = pick([0, 2]);
      base.analysis!.errorLimit = pick([0, 4]);
      const w = new World(base);
      let manualPromote = false;
      let passesThisRun = 0;

      for (let step = 0; step < 80; step++) {
        // Perturb the world.
        const r = random();
        if (r < 0.25) w.verdict = pick(VERDICTS);
        else if (r < 0.3) w.annotations.paused = !w.annotations.paused;
        else if (r < 0.34) w.annotations[pick(['resume', 'promote', 'abort', 'retry'] as const)] = true;
        else if (r < 0.37)
          w.window = random() < 0.5 ? { open: true } : { open: false, nextOpenAt: w.now + 5000 };
        else if (r < 0.39 && w.traffic)
          w.traffic = { canaryWeight: pick([0, 33, 100]), lastWritten: w.traffic.lastWritten };
        else if (r < 0.395) {
          // A spec edit that delivers the same thing: other steps, limits or deadline.
          const edited = structuredClone(pick(SPECS));
          w.spec = { ...edited, stableService: w.spec.stableService, canaryService: w.spec.canaryService };
          w.generation++;
        } else if (r < 0.4) {
          // A new version to deliver: a new run.
          w.spec = { ...w.spec, canaryService: w.spec.canaryService === 'web-v2' ? 'web-v3' : 'web-v2' };
          w.generation++;
        } else if (r < 0.42)
          w.validation =
            random() < 0.5
              ? { valid: true }
              : { valid: false, reason: 'ServiceNotFound', message: 'spec.stableService: not found' };

        // A closed window opens at the time it said it would, as a real schedule does.
        if (!w.window.open && w.window.nextOpenAt !== undefined && w.now >= w.window.nextOpenAt)
          w.window = { open: true };
        const before = w.status;
        const eventsBefore = w.events.length;
        // A round due that Prometheus has not answered yet: the controller waits for the round itself.
        const roundOut = checksDue(w.spec, before, w.now) && w.verdict === undefined;
        const promoteAsked = w.annotations.promote;
        const obs = w.observation();
        w.rounds.length = 0;
        const failedRound = obs.checks.some((c) => c.verdict === 'Fail');
        const after = w.reconcile();
        const status = w.status!;
        const effects = w.last!.effects;
        visited.add(before?.phase ?? (rolloutMachine.config.initial as Phase)).add(status.phase!);

        if (effects.some((e) => e.type === 'event' && e.reason === 'RunStarted')) {
          manualPromote = false;
          passesThisRun = 0;
        }
        if (status.phase === 'Promoting' && before?.phase !== 'Promoting' && promoteAsked)
          manualPromote = true;
        passesThisRun += obs.checks.every((c) => c.verdict === 'Pass') && obs.checks.length > 0 ? 1 : 0;

        const where = `walk ${walk} step ${step}: ${before?.phase} → ${status.phase}`;
        if (process.env.WALK_TRACE)
          console.log(
            where,
            JSON.stringify({
              ann: obs.annotations,
              checks: obs.checks.map((c) => c.verdict),
              traffic: obs.traffic,
              valid: obs.validation.valid,
              gen: obs.generation,
              idx: status.currentStepIndex,
              w: status.canaryWeight,
              msg: status.message,
              eff: effects.map((e) => (e.type === 'event' ? e.reason : e.type)),
            }),
          );
        // The invariants, checked 160,000 times: with node:assert, as chai's expect (a chain of Proxies per
        // call) costs more than the machine itself.
        // Weights are within 0..100 and add up to 100.
        const weight = status.canaryWeight ?? 0;
        assert.ok(weight >= 0 && weight <= 100, `${where}: canaryWeight ${weight} outside 0..100`);
        if (status.stableWeight !== undefined) assert.equal(weight + status.stableWeight, 100, where);
        for (const e of effects)
          if (e.type === 'setWeights')
            assert.ok(e.canaryWeight >= 0 && e.canaryWeight <= 100, `${where}: setWeights ${e.canaryWeight}`);
        // The canary's weight is never raised in a reconcile whose checks failed.
        if (failedRound)
          assert.ok(
            weight <= (before?.canaryWeight ?? 0),
            `${where}: weight ${weight} raised on a failed round`,
          );
        // An invalid spec never moves traffic but to roll back, after an invalid spell longer than the deadline.
        if (!obs.validation.valid)
          for (const e of effects.filter((x) => x.type === 'setWeights'))
            assert.deepEqual(
              [e, status.phase],
              [{ type: 'setWeights', canaryWeight: 0, drift: false }, 'RollingBack'],
              where,
            );
        // A reconcile that changes nothing never asks to run again at once: that would spin a worker.
        // (Compared only when it asked to: the deep comparison is the walk's dearest check.)
        if (after === 0 && !roundOut) {
          const quiet =
            before !== undefined &&
            isDeepStrictEqual(before, status) &&
            effects.every((e) => e.type === 'requeueAfter');
          assert.ok(!quiet, `${where}: requeue of a reconcile that changed nothing`);
        }
        // observedGeneration names the generation acted on, valid or not.
        assert.equal(status.observedGeneration, obs.generation, where);
        // The weight goes up only by a step of the run or a promotion, never by a spec edit alone (a run's
        // start tells the first step's weight written on the routing object it creates).
        const raisedBy = ['WeightChanged', 'Promoting', 'Promoted', 'RunStarted'];
        if (weight > (before?.canaryWeight ?? 0))
          assert.ok(
            w
              .reasons()
              .slice(eventsBefore)
              .some((x) => raisedBy.includes(x)),
            `${where}: weight raised without WeightChanged, Promoting, Promoted or a RunStarted`,
          );
        // The live-version rule: after a run has ended, nothing but a new run (a new target, a retry)
        // moves traffic off the live version, whatever the edits, checks and annotations.
        const ended = (p: Phase | undefined) => p === 'Succeeded' || p === 'Failed' || p === 'Aborted';
        const endedBefore =
          ended(before?.phase) || (before?.phase === 'Invalid' && ended(before.invalidFrom));
        if (endedBefore && !w.reasons().slice(eventsBefore).includes('RunStarted')) {
          const live = liveWeight(before!);
          assert.equal(weight, live, where);
          for (const e of effects) if (e.type === 'setWeights') assert.equal(e.canaryWeight, live, where);
        }
        // Promotion begins only after the last step with every metric's latest check passing, or on a
        // promote; Succeeded only out of a promotion (whose spec may have been edited since).
        const promotedInOneLook =
          status.phase === 'Succeeded' &&
          before?.phase !== 'Succeeded' &&
          w.reasons().slice(eventsBefore).includes('Promoted');
        if (
          (status.phase === 'Promoting' || promotedInOneLook) &&
          before?.phase !== 'Promoting' &&
          !manualPromote
        ) {
          const plan = planOf(w.spec);
          const allPass = [...latestVerdicts(status.analysis, plan.metrics).values()].every(
            (v) => v === 'Pass',
          );
          assert.ok((before?.currentStepIndex ?? 0) >= plan.steps.length && allPass, where);
          // Never on missing data: without a promote, at least one round of this run passed.
          assert.ok(passesThisRun > 0, `${where}: promoted with no passing round in this run`);
        }
        // (One look may carry a promotion through to its end, told in one Promoted Event.)
        if (status.phase === 'Succeeded' && before?.phase !== 'Succeeded')
          assert.ok(
            before?.phase === 'Promoting' ||
              before?.phase === 'Invalid' ||
              w.reasons().slice(eventsBefore).includes('Promoted'),
            where,
          );
        w.now += after === undefined ? 1000 : Math.max(1, Math.min(after, 5000));
      }
    }
    const states = Object.keys(rolloutMachine.root.states).sort();
    expect([...visited].sort(), `visited ${[...visited].join(', ')}`).to.deep.equal(states);
  });
});
