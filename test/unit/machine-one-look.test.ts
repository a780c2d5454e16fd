// One observation, several transitions: decide() carries a run as far as the same facts allow, so a
// step's end and the next step's start are one status write and one Event (issue 16: writes per run).
import { expect } from 'chai';
import { STEPS } from '../../bench/scale/workload.js';
import type { Effect } from '../../src/machine/types.js';
import { atWeight, spec, World } from '../support/machine-world.js';

const events = (effects: Effect[]) =>
  effects.filter((e): e is Extract<Effect, { type: 'event' }> => e.type === 'event');

describe('machine: one look, as far as the facts allow', () => {
  it('a passing round that ends an analysis step begins the setWeight step after it in the same decision', () => {
    const w = new World(spec()).runUntil(atWeight(10));
    w.runUntil((x) => (x.status?.analysis?.consecutivePassed ?? 0) === 1);
    expect(w.status?.currentStepIndex).to.equal(1);
    w.runUntil((x) => x.status?.currentStepIndex !== 1);
    // steps: [10, analysis x2, 50, pause 2s, 100]: the analysis step (index 1) done, setWeight 50 (index 2) applied.
    expect(w.status?.currentStepIndex).to.equal(3);
    expect(w.status?.canaryWeight).to.equal(50);
    expect(w.last!.effects.filter((e) => e.type === 'setWeights')).to.deep.equal([
      { type: 'setWeights', canaryWeight: 50, drift: false },
    ]);
    const told = events(w.last!.effects);
    expect(told.map((e) => e.reason)).to.deep.equal(['WeightChanged']);
    expect(told[0]!.message).to.equal(
      '2 consecutive passing checks (step 2/5); canary 50%, stable 50% (step 3/5)',
    );
  });

  it('creates a run’s routing object at stable 100 with the first weight right after it; past that, never two weights in one decision', () => {
    const w = new World(spec({ steps: [{ setWeight: 10 }, { setWeight: 20 }, { setWeight: 30 }] }));
    w.reconcile(); // no routing object yet: created at stable 100, and step 1's weight written on it
    expect(w.writes).to.deep.equal([0, 10]);
    expect(w.status?.canaryWeight).to.equal(10);
    expect(w.status?.conditions?.find((c) => c.type === 'TrafficRouted')?.status).to.equal('False');
    const told = events(w.last!.effects);
    expect(told.map((e) => e.reason)).to.deep.equal(['RunStarted']);
    expect(told[0]!.message).to.equal(
      'run started: web-v2 against web-v1, 3 steps, stable 100%; canary 10%, stable 90% (step 1/3)',
    );
    w.reconcile();
    expect(w.writes).to.deep.equal([0, 10, 20]);
    w.reconcile();
    expect(w.writes).to.deep.equal([0, 10, 20, 30]);
  });

  it('a run that begins on stable 100 (a pause or an analysis first) creates the routing object alone, and says it is routed only once seen', () => {
    const w = new World(spec({ steps: [{ pause: {} }, { setWeight: 20 }] }));
    w.reconcile();
    expect(w.writes).to.deep.equal([0]);
    expect(w.status?.currentStepIndex).to.equal(0);
    expect(w.status?.conditions?.find((c) => c.type === 'TrafficRouted')?.status).to.equal('False');
    expect(events(w.last!.effects).map((e) => e.reason)).to.deep.equal(['RunStarted']);
    w.reconcile();
    expect(w.writes).to.deep.equal([0]);
    expect(w.phase()).to.equal('Paused');
  });

  it('a create that failed after the status was written is made again at stable 100 first, then the weight', () => {
    const w = new World(spec({ steps: [{ setWeight: 10 }, { setWeight: 20 }] }));
    w.reconcile();
    expect(w.status?.canaryWeight).to.equal(10);
    // The status write went through; the create did not (a 500): the routing object is still missing.
    w.traffic = undefined;
    w.writes.length = 0;
    w.reconcile();
    expect(w.writes).to.deep.equal([0, 10]);
    expect(w.status?.canaryWeight).to.equal(10);
  });

  it('a run on a routing object that exists writes only its first weight', () => {
    const w = new World(spec({ steps: [{ setWeight: 10 }, { setWeight: 20 }] }));
    w.traffic = { canaryWeight: 0, lastWritten: 0, asPlanned: true, ownedByRef: true };
    w.reconcile();
    expect(w.writes).to.deep.equal([10]);
  });

  it('a round at 100% after the last step promotes and ends the run in one decision, told by one Promoted Event', () => {
    const w = new World(spec());
    w.runUntil((x) => x.status?.currentStepIndex === 5 && x.traffic?.canaryWeight === 100);
    expect(w.phase()).to.equal('Progressing');
    w.runUntil((x) => x.phase() !== 'Progressing');
    expect(w.phase()).to.equal('Succeeded');
    const told = events(w.last!.effects);
    expect(told.map((e) => e.reason)).to.deep.equal(['Promoted']);
    expect(told[0]!.message).to.match(
      /^every step passed; promoting the canary to 100%; canary promoted: 100% of traffic on it after /,
    );
    expect(w.writes.at(-1)).to.equal(100);
  });

  it('a promotion that must write 100% lands in Promoting and tells it on its own', () => {
    const w = new World(spec({ steps: [{ setWeight: 10 }, { analysis: { iterations: 1 } }] }));
    w.runUntil((x) => x.phase() === 'Promoting');
    expect(events(w.last!.effects).map((e) => e.reason)).to.deep.equal(['Promoting']);
    expect(w.last!.effects.filter((e) => e.type === 'setWeights')).to.deep.equal([
      { type: 'setWeights', canaryWeight: 100, drift: false },
    ]);
  });

  it('a failing round that starts the rollback is one AnalysisFailed Event, naming the metric and the rollback', () => {
    const w = new World(spec()).runUntil(atWeight(10));
    w.verdict = 'Fail';
    w.value = 80;
    w.runUntil((x) => x.phase() === 'RollingBack');
    const told = events(w.last!.effects);
    expect(told.map((e) => e.reason)).to.deep.equal(['AnalysisFailed']);
    expect(told[0]!.eventType).to.equal('Warning');
    expect(told[0]!.message).to.equal(
      'rolling back to stable: success-rate 80 (Fail) (1 failed check, limit 0)',
    );
  });

  it('a failed check within failureLimit keeps its own AnalysisFailed Event', () => {
    const w = new World(spec({ analysis: { ...spec().analysis!, failureLimit: 1 } })).runUntil(atWeight(10));
    w.verdict = 'Fail';
    w.runUntil((x) => (x.status?.analysis?.failed ?? 0) === 1);
    expect(w.phase()).to.equal('Progressing');
    expect(events(w.last!.effects).map((e) => `${e.eventType} ${e.reason}`)).to.deep.equal([
      'Warning AnalysisFailed',
    ]);
  });

  it('a run of the bench workload changes its status once per transition: start at 10, 50, 100, Succeeded', () => {
    const w = new World(spec({ steps: STEPS }));
    const phases: string[] = [];
    let changes = 0;
    for (let i = 0; i < 200 && w.phase() !== 'Succeeded'; i++) {
      const before = JSON.stringify(w.status);
      const after = w.reconcile();
      if (JSON.stringify(w.status) !== before) {
        changes++;
        phases.push(`${w.phase()} ${w.status?.canaryWeight}`);
      }
      w.now += after === undefined ? 60_000 : Math.max(after, 1);
    }
    // Each weight is routed before the run moves on; the look that sees it routed writes nothing, as the
    // next round (due within 30 s) writes TrafficRouted=True with its counts.
    expect(phases).to.deep.equal(['Progressing 10', 'Progressing 50', 'Progressing 100', 'Succeeded 100']);
    expect(changes).to.equal(4);
    expect(w.reasons()).to.deep.equal(['RunStarted', 'WeightChanged', 'WeightChanged', 'Promoted']);
  });
});

describe('machine: a look that only sees its weight routed', () => {
  const routedCondition = (w: World) => w.status?.conditions?.find((c) => c.type === 'TrafficRouted');

  it('writes nothing while a round is due within 30 s; that round writes TrafficRouted=True', () => {
    const w = new World(spec());
    w.reconcile(); // started: created at stable 100, then step 1's 10 written on it
    expect(w.writes).to.deep.equal([0, 10]);
    const asked = w.status;
    expect(routedCondition(w)?.status).to.equal('False');
    w.now += 100;
    w.reconcile(); // sees 10 routed
    expect(w.status).to.equal(asked);
    expect(w.last!.effects.every((e) => e.type === 'requeueAfter')).to.equal(true);
    w.now = Date.parse(w.status!.analysis!.nextCheckAt!);
    w.reconcile(); // the round
    expect(routedCondition(w)).to.include({ status: 'True', reason: 'Routed' });
    expect(w.status?.analysis?.passed).to.equal(1);
  });

  it('writes at once where the round is further away than 30 s', () => {
    const w = new World(spec({ analysis: { ...spec().analysis!, interval: '1m' } }));
    w.reconcile(); // started, stable 100 written
    w.reconcile(); // routed at 0: step 1 sets 10
    w.now += 100;
    w.reconcile(); // sees 10 routed; the round is a minute away
    expect(routedCondition(w)).to.include({ status: 'True', reason: 'Routed' });
    expect(w.status?.message).to.equal('waiting for 2 consecutive passing checks (0 so far)');
  });

  it('writes at once where no round is coming: a pause at weight 0 checks nothing', () => {
    const w = new World(spec({ steps: [{ pause: {} }, { setWeight: 100 }] }));
    w.reconcile(); // started, stable 100 written
    w.reconcile(); // routed at 0
    expect(routedCondition(w)).to.include({ status: 'True', reason: 'Routed' });
  });
});
