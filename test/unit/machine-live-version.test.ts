// The live-version rule, observedGeneration and the real deadline (SPEC §3, §4), driven through decide().
import { expect } from 'chai';
import { decide } from '../../src/machine/decide.js';
import { atWeight, settled, spec, World } from '../support/machine-world.js';

const invalid = {
  valid: false as const,
  reason: 'InvalidQuery',
  message: 'spec.analysis.metrics[0].query: unknown variable {{ canry }}',
};

describe('machine: the live-version rule', () => {
  it('a threshold edit after Succeeded leaves the canary at 100 and starts no run', () => {
    const w = new World(spec()).runUntil(settled);
    const writes = [...w.writes];
    w.spec = spec();
    w.spec.analysis!.metrics[0]!.thresholdRange = { min: 99.9 };
    w.generation = 2;
    w.runUntil(() => false, 20);
    expect(w.phase()).to.equal('Succeeded');
    expect(w.writes).to.deep.equal(writes);
    expect(w.status?.canaryWeight).to.equal(100);
    expect(w.status?.observedGeneration).to.equal(2);
    expect(w.reasons().filter((r) => r === 'RunStarted')).to.have.length(1);
    expect(w.events.find((e) => e.reason === 'SpecUpdated')?.message).to.equal(
      'generation 2: the run has ended (Succeeded); traffic stays on web-v2',
    );
  });

  it('an edit after a failure leaves stable at 100', () => {
    const w = new World(spec()).runUntil(atWeight(10));
    w.verdict = 'Fail';
    w.runUntil(settled);
    expect(w.phase()).to.equal('Failed');
    w.spec = spec({ progressDeadlineSeconds: 900 });
    w.generation = 2;
    w.verdict = 'Pass';
    w.runUntil(() => false, 20);
    expect(w.phase()).to.equal('Failed');
    expect(w.writes.at(-1)).to.equal(0);
    expect(w.status?.observedGeneration).to.equal(2);
  });

  it('a steps edit mid-run applies from the current step and never raises the weight by itself', () => {
    const w = new World(spec()).runUntil(atWeight(10));
    expect(w.status?.currentStepIndex).to.equal(1);
    w.verdict = undefined; // no round answers: nothing but the edit happens
    w.spec = spec({ steps: [{ setWeight: 10 }, { pause: {} }, { setWeight: 40 }, { setWeight: 100 }] });
    w.generation = 2;
    w.reconcile();
    expect(w.status?.canaryWeight).to.equal(10);
    expect(w.status?.currentStepIndex).to.equal(1);
    expect(w.phase()).to.equal('Paused');
    expect(w.status?.pauseReason).to.equal('PauseStep');
    expect(w.reasons().filter((r) => r === 'RunStarted')).to.have.length(1);
    expect(w.events.find((e) => e.reason === 'SpecUpdated')?.message).to.equal(
      'generation 2: it applies to the run from step 2/4, at canary 10%',
    );
    w.annotations.resume = true;
    w.verdict = 'Pass';
    w.runUntil(settled);
    expect(w.writes).to.deep.equal([0, 10, 40, 100]);
  });

  it('a new stable or canary Service starts a new run; a new routing object too', () => {
    const w = new World(spec()).runUntil(settled);
    w.spec = spec({ stableService: 'web-v2', canaryService: 'web-v3' });
    w.generation = 2;
    w.reconcile();
    expect(w.reasons().at(-1)).to.equal('RunStarted');
    expect(w.status?.runTarget).to.deep.equal({
      stableService: 'web-v2',
      canaryService: 'web-v3',
      route: 'TrafficSplit/web',
    });
    w.runUntil(settled);
    w.spec = { ...w.spec, trafficRouting: { smi: { trafficSplitName: 'web-split' } } };
    w.generation = 3;
    w.reconcile();
    expect(w.reasons().filter((r) => r === 'RunStarted')).to.have.length(3);
  });

  it('a status written before runTarget existed is adopted, not restarted', () => {
    const w = new World(spec()).runUntil(settled);
    const { runTarget: _dropped, ...old } = w.status!;
    void _dropped;
    const d = decide(w.spec, { ...old, observedGeneration: 1 }, { ...w.observation(), generation: 2 });
    expect(d.status.phase).to.equal('Succeeded');
    expect(d.status.runTarget).to.deep.equal({
      stableService: 'web-v1',
      canaryService: 'web-v2',
      route: 'TrafficSplit/web',
    });
    expect(d.effects.filter((e) => e.type === 'setWeights')).to.deep.equal([]);
  });

  it('observedGeneration advances to an invalid generation, and the phase says Invalid', () => {
    const w = new World(spec()).runUntil(atWeight(10));
    w.generation = 2;
    w.validation = invalid;
    w.reconcile();
    expect(w.phase()).to.equal('Invalid');
    expect(w.status?.observedGeneration).to.equal(2);
    const valid = w.status?.conditions?.find((c) => c.type === 'Valid');
    expect(valid).to.include({ status: 'False', reason: 'InvalidQuery', observedGeneration: 2 });
  });
});

describe('machine: an invalid spell mid-run', () => {
  it('after the run has ended, a spell never rolls back and never spins: no requeue at once, ever', () => {
    const w = new World(spec({ progressDeadlineSeconds: 60 })).runUntil(settled);
    w.validation = invalid;
    w.reconcile();
    w.now += 3_600_000;
    const requeue = w.reconcile();
    expect(w.phase()).to.equal('Invalid');
    expect(w.status?.invalidFrom).to.equal('Succeeded');
    expect(requeue).to.not.equal(0);
    expect(w.writes.at(-1)).to.equal(100);
  });

  it('holds the weight, and rolls back once it lasts longer than the deadline', () => {
    const w = new World(spec({ progressDeadlineSeconds: 60 })).runUntil(atWeight(10));
    w.validation = invalid;
    w.reconcile();
    const since = w.now;
    w.runUntil((x) => x.now - since >= 59_000);
    expect(w.phase()).to.equal('Invalid');
    expect(w.traffic?.canaryWeight).to.equal(10);
    // Rolled back to Failed, and still invalid: the look that finds stable at 100 ends the run as Failed
    // and, the spec being invalid, lands in Invalid from Failed (the RolledBack Event says it failed).
    w.runUntil((x) => x.status?.invalidFrom === 'Failed');
    expect(w.phase()).to.equal('Invalid');
    expect(w.reasons()).to.include('RolledBack');
    expect(w.now - since).to.be.within(60_000, 61_000);
    expect(w.status?.rollback?.reason).to.equal('InvalidSpec');
    expect(w.status?.message).to.contain('spec.analysis.metrics[0].query');
    expect(w.writes.at(-1)).to.equal(0);
  });

  it('a spell shorter than the deadline changes nothing; the run goes on', () => {
    const w = new World(spec({ progressDeadlineSeconds: 60 })).runUntil(atWeight(10));
    w.validation = invalid;
    w.reconcile();
    w.now += 30_000;
    w.reconcile();
    w.validation = { valid: true };
    w.runUntil(settled);
    expect(w.phase()).to.equal('Succeeded');
  });

  it('at weight 0 the canary carries no traffic: the spell holds without a rollback', () => {
    // An analysis first: the run starts, and stays, on stable 100.
    const steps = [{ analysis: { iterations: 2 } }, { setWeight: 10 }];
    const w = new World(spec({ progressDeadlineSeconds: 60, steps }));
    w.reconcile();
    expect(w.status?.canaryWeight).to.equal(0);
    w.validation = invalid;
    w.runUntil(() => false, 30);
    w.now += 3_600_000;
    w.reconcile();
    expect(w.phase()).to.equal('Invalid');
    expect(w.reasons()).to.not.include('RolledBack');
  });
});

describe('machine: the progress deadline is real', () => {
  it('a weight the API server refuses ends the run Failed after the deadline, passing checks or not', () => {
    const w = new World(spec({ progressDeadlineSeconds: 60 })).runUntil(atWeight(10));
    w.runUntil((x) => (x.status?.currentStepIndex ?? 0) >= 3); // past the analysis, at 50
    expect(w.status?.canaryWeight).to.equal(50);
    const started = Date.parse(w.status!.stepStartedAt!);
    w.refused = { canaryWeight: 50, message: 'admission webhook "deny.example" denied the request' };
    // The refused write is not resent; the checks at 10% keep passing and are not progress.
    w.traffic = { canaryWeight: 10, lastWritten: 10 };
    const writes = w.writes.length;
    w.runUntil(settled);
    expect(w.phase()).to.equal('Failed');
    expect(w.status?.rollback?.reason).to.equal('ProgressDeadlineExceeded');
    expect(w.status?.message).to.contain('canary 50% never routed');
    expect(w.status?.message).to.contain('denied the request');
    expect(w.now - started).to.be.within(60_000, 63_000);
    expect(w.writes.slice(writes)).to.deep.equal([0]);
  });

  it('while refused, TrafficRouted says so', () => {
    const w = new World(spec()).runUntil(atWeight(10));
    w.refused = { canaryWeight: 10, message: 'denied' };
    w.traffic = { canaryWeight: 0, lastWritten: 0 };
    w.reconcile();
    expect(w.status?.conditions?.find((c) => c.type === 'TrafficRouted')).to.include({
      status: 'False',
      reason: 'WriteRefused',
    });
    expect(w.last!.effects.filter((e) => e.type === 'setWeights')).to.deep.equal([]);
  });

  it('a promotion whose 100% can never be written fails after the deadline', () => {
    // Promotion from 50 (no setWeight 100 step), so the promotion itself must write 100.
    const steps = [{ setWeight: 10 }, { analysis: { iterations: 2 } }, { setWeight: 50 }];
    const w = new World(spec({ progressDeadlineSeconds: 60, steps }));
    w.runUntil((x) => x.phase() === 'Promoting');
    w.refused = { canaryWeight: 100, message: 'denied' };
    w.traffic = { canaryWeight: 50, lastWritten: 50 };
    w.runUntil(settled);
    expect(w.phase()).to.equal('Failed');
    expect(w.status?.message).to.contain('the promotion to 100% made no progress');
  });

  it('after an outage of the controller the step gets a fresh look, not an instant failure', () => {
    const w = new World(spec({ progressDeadlineSeconds: 60 })).runUntil(atWeight(10));
    w.refused = { canaryWeight: 10, message: 'denied' };
    w.traffic = { canaryWeight: 0, lastWritten: 0 };
    w.reconcile();
    const clock = Date.parse(w.status!.progressSince!);
    w.now += 40_000;
    w.reconcile(); // 40 s of the 60 used up while a controller ran
    w.now += 3_600_000; // then an hour with no controller
    w.firstLook = true;
    w.reconcile();
    w.firstLook = false;
    expect(w.phase()).to.equal('Progressing');
    // the outage is not counted: about 20 s are left
    expect(Date.parse(w.status!.progressSince!) - clock).to.be.at.least(3_600_000);
    w.runUntil(settled);
    expect(w.phase()).to.equal('Failed');
  });

  it('Prometheus errors below errorLimit do not fail the run on the deadline', () => {
    const s = spec({ progressDeadlineSeconds: 60 });
    s.analysis!.interval = '25s';
    const w = new World(s).runUntil(atWeight(10));
    w.verdict = 'Error';
    w.runUntil((x) => x.phase() === 'Paused');
    expect(w.status?.pauseReason).to.equal('MetricsUnavailable');
    expect(w.reasons()).to.not.include('RolledBack');
  });
});

describe('machine: a reconcile that changes nothing never spins', () => {
  it('a person holding a timed pause step whose time is up gets no requeue at once', () => {
    const s = spec({ steps: [{ setWeight: 10 }, { pause: { duration: '2s' } }, { setWeight: 100 }] });
    s.analysis = undefined;
    const w = new World(s).runUntil((x) => x.status?.pauseReason === 'PauseStep');
    w.annotations.paused = true;
    w.reconcile();
    expect(w.status?.pauseReason).to.equal('Manual');
    w.now += 10_000; // the pause step's 2 s are long over, the person still holds it
    const status = structuredClone(w.status);
    const requeue = w.reconcile();
    expect(w.status).to.deep.equal(status);
    expect(requeue, 'no requeue at once: removing the annotation brings the Rollout back').to.equal(
      undefined,
    );
    w.annotations.paused = false;
    w.runUntil(settled);
    expect(w.phase()).to.equal('Succeeded');
  });
});
