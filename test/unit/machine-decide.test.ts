// Every transition of SPEC §4 through decide(), in a simulated world (test/support/machine-world.ts).
import { expect } from 'chai';
import { decide } from '../../src/machine/decide.js';
import { atWeight, settled, spec, T0, World } from '../support/machine-world.js';

describe('machine: whole runs', () => {
  it('promotes a healthy canary: stable 100 → 90/10 → 50/50 → canary 100, with events in order', () => {
    const w = new World(spec()).runUntil(settled);
    expect(w.phase()).to.equal('Succeeded');
    expect(w.writes).to.deep.equal([0, 10, 50, 100]);
    expect(w.reasons().filter((r) => r !== 'AnalysisPassed')).to.deep.equal([
      // The run starts on a routing object it creates, and writes step 1's weight on it: one Event.
      'RunStarted',
      'WeightChanged',
      'Paused',
      'Resumed',
      'WeightChanged',
      // The round at 100 % starts the promotion and ends it: one Event tells both.
      'Promoted',
    ]);
    expect(w.status?.step).to.equal('5/5');
    expect(w.status?.conditions?.find((c) => c.type === 'Ready')?.status).to.equal('True');
  });

  it('rolls back at the first failing check: stable 100, Failed, naming the metric and value', () => {
    const w = new World(spec()).runUntil(atWeight(10));
    w.verdict = 'Fail';
    w.value = 80;
    w.runUntil(settled);
    expect(w.phase()).to.equal('Failed');
    expect(w.writes).to.deep.equal([0, 10, 0]);
    expect(w.status?.message).to.contain('success-rate 80');
    expect(w.reasons()).to.include.members(['AnalysisFailed', 'RolledBack']);
    // Nothing moves afterwards, however long we wait.
    w.verdict = 'Pass';
    w.runUntil(() => false, 50);
    expect(w.phase()).to.equal('Failed');
    expect(w.writes).to.deep.equal([0, 10, 0]);
  });

  it('expands stepWeight/maxWeight into one passing check per weight', () => {
    const w = new World(spec({ steps: undefined, stepWeight: 20, maxWeight: 60 })).runUntil(settled);
    expect(w.phase()).to.equal('Succeeded');
    expect(w.writes).to.deep.equal([0, 20, 40, 60, 100]);
    expect(w.status?.step).to.equal('6/6');
  });

  it('walks stepWeights in order', () => {
    const w = new World(spec({ steps: undefined, stepWeights: [1, 5, 25, 50] })).runUntil(settled);
    expect(w.writes).to.deep.equal([0, 1, 5, 25, 50, 100]);
  });

  it('tolerates failureLimit failed checks, never raising the weight in a round that failed', () => {
    const s = spec();
    s.analysis!.failureLimit = 2;
    const w = new World(s).runUntil(atWeight(10));
    w.verdict = 'Fail';
    w.runUntil(() => (w.status?.analysis?.failed ?? 0) === 2);
    expect(w.phase()).to.equal('Progressing');
    expect(w.status?.canaryWeight).to.equal(10);
    w.runUntil(settled);
    expect(w.phase()).to.equal('Failed');
    expect(w.status?.analysis?.failed).to.equal(3);
  });
});

describe('machine: checks at weight 0 (blue-green)', () => {
  const blueGreen = () =>
    spec({ steps: [{ setWeight: 0 }, { analysis: { iterations: 3 } }, { setWeight: 100 }] });

  it('an analysis step at weight 0 checks the canary, then one switch to 100 and promotion', () => {
    const w = new World(blueGreen()).runUntil((x) => x.writes.includes(100));
    // Three passing rounds while every user stayed on stable, and not one more before the switch.
    expect(w.rounds).to.deep.equal(['Pass', 'Pass', 'Pass']);
    expect(w.writes).to.deep.equal([0, 100]);
    w.runUntil(settled);
    expect(w.phase()).to.equal('Succeeded');
    expect(w.writes).to.deep.equal([0, 100]);
    // Promotion still waited for a passing check at 100, not only the preview checks at 0.
    expect(w.rounds.length).to.be.greaterThan(3);
  });

  it('a failing preview check fails the run before any user request reaches the canary', () => {
    const w = new World(blueGreen());
    w.verdict = 'Fail';
    w.value = 42;
    w.runUntil(settled);
    expect(w.phase()).to.equal('Failed');
    expect(w.writes).to.deep.equal([0]);
    expect(w.status?.message).to.contain('success-rate 42');
  });

  it('a run may begin with an analysis step', () => {
    const w = new World(spec({ steps: [{ analysis: { iterations: 2 } }, { setWeight: 100 }] })).runUntil(
      settled,
    );
    expect(w.phase()).to.equal('Succeeded');
    expect(w.writes).to.deep.equal([0, 100]);
  });

  it('other steps at weight 0 make no checks: a pause before the first weight queries nothing', () => {
    const w = new World(spec({ steps: [{ pause: {} }, { setWeight: 10 }] })).runUntil(() => false, 50);
    expect(w.phase()).to.equal('Paused');
    expect(w.rounds).to.deep.equal([]);
    w.annotations.resume = true;
    w.runUntil(settled);
    expect(w.phase()).to.equal('Succeeded');
    expect(w.rounds.length).to.be.greaterThan(0);
  });
});

describe('machine: missing data', () => {
  it('pauses after inconclusiveLimit inconclusive checks, never promotes, and goes on by itself when data comes', () => {
    const w = new World(spec()).runUntil(atWeight(10));
    w.verdict = 'Inconclusive';
    w.runUntil((x) => x.phase() === 'Paused');
    expect(w.status?.pauseReason).to.equal('AnalysisInconclusive');
    expect(w.status?.analysis?.inconclusive).to.equal(3);
    w.runUntil(() => false, 100);
    expect(w.phase()).to.equal('Paused');
    expect(w.status?.canaryWeight).to.equal(10);
    w.verdict = 'Pass';
    w.runUntil(settled);
    expect(w.phase()).to.equal('Succeeded');
    expect(w.reasons()).to.include('Resumed');
  });

  it('never reaches Succeeded when every check is Error or Inconclusive, even with no analysis step', () => {
    for (const verdict of ['Error', 'Inconclusive'] as const) {
      const s = spec({ steps: [{ setWeight: 50 }, { setWeight: 100 }] });
      s.analysis!.inconclusiveLimit = 1000;
      s.analysis!.errorLimit = 1000;
      const w = new World(s);
      w.verdict = verdict;
      w.runUntil(() => false, 300);
      expect(w.phase(), verdict).to.not.equal('Succeeded');
      expect(w.status?.message).to.contain('promotion waits for a passing check');
    }
  });

  it('pauses on consecutive errors (MetricsUnavailable), holds the weight, never rolls back, then completes', () => {
    const w = new World(spec()).runUntil(atWeight(10));
    w.verdict = 'Error';
    w.runUntil((x) => x.phase() === 'Paused');
    expect(w.status?.pauseReason).to.equal('MetricsUnavailable');
    expect(w.status?.analysis?.consecutiveErrors).to.equal(5);
    w.runUntil(() => false, 200); // far past progressDeadlineSeconds: a pause is not a stuck step
    expect(w.phase()).to.equal('Paused');
    expect(w.writes).to.deep.equal([0, 10]);
    w.verdict = 'Pass';
    w.runUntil(settled);
    expect(w.phase()).to.equal('Succeeded');
  });
});

describe('machine: annotations', () => {
  it('perch.dev/paused holds the weight; a failing check while paused still rolls back', () => {
    const w = new World(spec()).runUntil(atWeight(10));
    w.annotations.paused = true;
    w.runUntil(() => false, 30);
    expect(w.phase()).to.equal('Paused');
    expect(w.status?.pauseReason).to.equal('Manual');
    expect(w.writes).to.deep.equal([0, 10]);
    w.verdict = 'Fail';
    w.runUntil(settled);
    expect(w.phase()).to.equal('Failed');
    expect(w.writes).to.deep.equal([0, 10, 0]);
  });

  it('removing perch.dev/paused resumes', () => {
    const w = new World(spec()).runUntil(atWeight(10));
    w.annotations.paused = true;
    w.runUntil(() => false, 10);
    w.annotations.paused = false;
    w.runUntil(settled);
    expect(w.phase()).to.equal('Succeeded');
    expect(w.reasons()).to.include('Resumed');
  });

  it('pause: {} waits for perch.dev/resume, which is then removed', () => {
    const w = new World(spec({ steps: [{ setWeight: 10 }, { pause: {} }, { setWeight: 100 }] }));
    w.runUntil(() => false, 200);
    expect(w.phase()).to.equal('Paused');
    expect(w.status?.pauseReason).to.equal('PauseStep');
    w.annotations.resume = true;
    w.runUntil(settled);
    expect(w.phase()).to.equal('Succeeded');
    expect(w.annotations.resume).to.equal(false);
  });

  it('perch.dev/promote promotes now, also out of an inconclusive pause', () => {
    const w = new World(spec()).runUntil(atWeight(10));
    w.verdict = 'Inconclusive';
    w.runUntil((x) => x.phase() === 'Paused');
    w.annotations.promote = true;
    w.runUntil(settled);
    expect(w.phase()).to.equal('Succeeded');
    expect(w.writes).to.deep.equal([0, 10, 100]);
    expect(w.annotations.promote).to.equal(false);
  });

  it('perch.dev/abort gives Aborted at stable 100; perch.dev/retry starts again from step 0', () => {
    const w = new World(spec()).runUntil(atWeight(50));
    w.annotations.abort = true;
    w.runUntil(settled);
    expect(w.phase()).to.equal('Aborted');
    expect(w.traffic?.canaryWeight).to.equal(0);
    expect(w.annotations.abort).to.equal(false);
    w.annotations.retry = true;
    w.reconcile();
    expect(w.phase()).to.equal('Progressing');
    expect(w.status?.currentStepIndex).to.equal(0);
    expect(w.annotations.retry).to.equal(false);
    w.runUntil(settled);
    expect(w.phase()).to.equal('Succeeded');
    expect(w.writes).to.deep.equal([0, 10, 50, 0, 10, 50, 100]);
    expect(w.reasons().filter((r) => r === 'RunStarted')).to.have.length(2);
  });

  it('a resume left behind by a crash (acted on, not yet removed) never skips the next pause', () => {
    const w = new World(
      spec({ steps: [{ setWeight: 10 }, { pause: {} }, { pause: {} }, { setWeight: 100 }] }),
    );
    w.runUntil((x) => x.phase() === 'Paused');
    w.annotations.resume = true;
    w.reconcile();
    expect(w.status?.currentStepIndex).to.equal(2);
    w.annotations.resume = true; // the controller died before removing it
    w.runUntil(() => false, 50);
    expect(w.phase()).to.equal('Paused');
    expect(w.status?.currentStepIndex).to.equal(2);
    expect(w.annotations.resume).to.equal(false);
  });

  it('removes a one-shot annotation that does not apply, so it never fires later', () => {
    const w = new World(
      spec({ steps: [{ setWeight: 10 }, { setWeight: 20 }, { pause: {} }, { setWeight: 100 }] }),
    );
    w.runUntil(atWeight(10));
    w.annotations.resume = true; // too early: no pause to resume
    w.annotations.retry = true; // nothing failed
    w.reconcile();
    expect(w.annotations).to.include({ resume: false, retry: false });
    expect(w.reasons().filter((r) => r === 'AnnotationIgnored')).to.have.length(2);
    w.runUntil(() => false, 100);
    expect(w.phase()).to.equal('Paused'); // the pause step still waits
  });
});

describe('machine: generations, validity, windows, deadlines', () => {
  it('a new generation mid-run starts again from stable 100', () => {
    const w = new World(spec()).runUntil(atWeight(50));
    w.generation = 2;
    w.spec = spec({ canaryService: 'web-v3' });
    w.reconcile();
    expect(w.status?.observedGeneration).to.equal(2);
    expect(w.traffic?.canaryWeight).to.equal(0);
    w.runUntil(settled);
    expect(w.writes).to.deep.equal([0, 10, 50, 0, 10, 50, 100]);
  });

  it('an invalid spec never touches traffic; valid again, the run starts', () => {
    const w = new World(spec());
    w.validation = {
      valid: false,
      reason: 'ServiceNotFound',
      message: 'spec.canaryService: Service web-v2 not found',
    };
    w.runUntil(() => false, 20);
    expect(w.phase()).to.equal('Invalid');
    expect(w.writes).to.deep.equal([]);
    const valid = w.status?.conditions?.find((c) => c.type === 'Valid');
    expect(valid).to.include({ status: 'False', reason: 'ServiceNotFound' });
    w.validation = { valid: true };
    w.runUntil(settled);
    expect(w.phase()).to.equal('Succeeded');
  });

  it('outside the window no step advances; inside it does; a failing check outside still rolls back', () => {
    const w = new World(spec()).runUntil(atWeight(10));
    w.window = { open: false, nextOpenAt: w.now + 3_600_000 };
    w.runUntil(() => w.now > T0 + 1_800_000);
    expect(w.status?.canaryWeight).to.equal(10);
    expect(w.status?.message).to.contain('outside the promotion window');
    expect(w.phase()).to.equal('Progressing'); // the deadline clock stops outside the window
    w.window = { open: true };
    w.runUntil(atWeight(50));
    w.window = { open: false };
    w.verdict = 'Fail';
    w.runUntil(settled);
    expect(w.phase()).to.equal('Failed');
  });

  it('a step that makes no progress for progressDeadlineSeconds fails the run', () => {
    const s = spec({ progressDeadlineSeconds: 60 });
    s.analysis!.failureLimit = 10_000;
    const w = new World(s).runUntil(atWeight(10));
    w.verdict = 'Fail';
    w.runUntil(settled);
    expect(w.phase()).to.equal('Failed');
    expect(w.status?.rollback?.reason).to.equal('ProgressDeadlineExceeded');
  });

  it('undoes someone else’s weight change with a TrafficDrift event', () => {
    const w = new World(spec()).runUntil(atWeight(10));
    w.traffic = { canaryWeight: 30, lastWritten: 10 };
    w.reconcile();
    expect(w.traffic.canaryWeight).to.equal(10);
    expect(w.reasons()).to.include('TrafficDrift');
  });

  it('finishes its own interrupted write without calling it drift', () => {
    const w = new World(spec()).runUntil(atWeight(10));
    // The status says 10 but the TrafficSplit still shows what Perch wrote before (a crash between writes).
    w.traffic = { canaryWeight: 0, lastWritten: 0 };
    w.reconcile();
    expect(w.traffic.canaryWeight).to.equal(10);
    expect(w.reasons()).to.not.include('TrafficDrift');
  });

  it('on deletion mid-run writes stable 100 first, then releases the TrafficSplit, then the finalizer', () => {
    const w = new World(spec()).runUntil(atWeight(50));
    w.deleting = true;
    w.reconcile();
    expect(w.last!.effects.map((e) => e.type)).to.deep.equal([
      'setWeights',
      'releaseTraffic',
      'event',
      'removeFinalizer',
    ]);
    expect(w.traffic?.canaryWeight).to.equal(0);
    expect(w.released).to.equal(true);
    expect(w.finalizerRemoved).to.equal(true);
  });

  it('on deletion after success leaves the canary, the live version, at 100 and releases it', () => {
    const w = new World(spec()).runUntil(settled);
    expect(w.phase()).to.equal('Succeeded');
    const writes = w.writes.length;
    w.deleting = true;
    w.reconcile();
    expect(w.writes.length).to.equal(writes);
    expect(w.traffic?.canaryWeight).to.equal(100);
    expect(w.released).to.equal(true);
    expect(w.finalizerRemoved).to.equal(true);
    expect(w.reasons().at(-1)).to.equal('TrafficReleased');
  });

  it('on deletion during an invalid spell after success keeps the canary at 100', () => {
    const w = new World(spec()).runUntil(settled);
    w.validation = { valid: false, reason: 'InvalidQuery', message: 'spec.analysis.metrics[0].query: bad' };
    w.reconcile();
    expect(w.phase()).to.equal('Invalid');
    w.traffic = { canaryWeight: 40, lastWritten: 100 };
    w.deleting = true;
    w.reconcile();
    expect(w.traffic?.canaryWeight).to.equal(100);
    expect(w.finalizerRemoved).to.equal(true);
  });

  it('on deletion keeps the Rollout while the API server refuses the live weight', () => {
    const w = new World(spec()).runUntil(atWeight(50));
    w.deleting = true;
    w.refused = { canaryWeight: 0, message: 'admission webhook "deny" denied the request' };
    w.reconcile();
    expect(w.last!.effects).to.deep.equal([]);
    expect(w.finalizerRemoved).to.equal(false);
    w.refused = undefined;
    w.reconcile();
    expect(w.traffic?.canaryWeight).to.equal(0);
    expect(w.finalizerRemoved).to.equal(true);
  });

  it('on deletion of a Rollout that never created its TrafficSplit writes nothing', () => {
    const w = new World(spec());
    w.deleting = true;
    w.reconcile();
    expect(w.last!.effects).to.deep.equal([{ type: 'removeFinalizer' }]);
  });

  it('never writes a TrafficSplit it may not own (NotOwned)', () => {
    const w = new World(spec());
    w.traffic = { canaryWeight: 20 };
    w.routing = {
      ok: false,
      reason: 'NotOwned',
      message: 'TrafficSplit web exists and is not managed by this Rollout',
    };
    w.runUntil(() => false, 20);
    expect(w.writes).to.deep.equal([]);
    expect(w.status?.conditions?.find((c) => c.type === 'TrafficRouted')).to.include({
      status: 'False',
      reason: 'NotOwned',
    });
  });

  it('keeps the last 10 measurements per metric', () => {
    const s = spec({ steps: [{ setWeight: 10 }, { analysis: { iterations: 30 } }] });
    s.analysis!.metrics.push({ name: 'latency', query: 'y', thresholdRange: { max: 500 } });
    const w = new World(s).runUntil((x) => (x.status?.analysis?.passed ?? 0) >= 25);
    const m = w.status!.analysis!.measurements;
    expect(m.filter((x) => x.metric === 'latency')).to.have.length(10);
    expect(m.filter((x) => x.metric === 'success-rate')).to.have.length(10);
  });

  it('rebuilds from status alone: a fresh decide on the same inputs gives the same answer', () => {
    const w = new World(spec()).runUntil(atWeight(50));
    const obs = w.observation();
    expect(decide(w.spec, structuredClone(w.status), obs)).to.deep.equal(
      decide(w.spec, structuredClone(w.status), obs),
    );
  });
});
