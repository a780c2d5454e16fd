// Sequences a review of the engine found unsafe, each driven through decide() as the reviewer did.
import { expect } from 'chai';
import { atWeight, settled, spec, World } from '../support/machine-world.js';

const invalid = {
  valid: false as const,
  reason: 'ServiceNotFound',
  message: 'spec.canaryService: Service web-v2 not found',
};

describe('machine: review findings', () => {
  it('a Succeeded run stays Succeeded across an invalid spell, whatever the checks then say', () => {
    const w = new World(spec()).runUntil(settled);
    expect(w.phase()).to.equal('Succeeded');
    w.validation = invalid;
    w.reconcile();
    expect(w.phase()).to.equal('Invalid');
    w.validation = { valid: true };
    w.verdict = 'Fail';
    w.runUntil(() => false, 50);
    expect(w.phase()).to.equal('Succeeded');
    expect(w.writes.at(-1)).to.equal(100);
    expect(w.reasons().filter((r) => r === 'Promoted')).to.have.length(1);
  });

  it('a Failed run stays Failed across an invalid spell, without a second RolledBack', () => {
    const w = new World(spec()).runUntil(atWeight(10));
    w.verdict = 'Fail';
    w.runUntil(settled);
    w.validation = invalid;
    w.reconcile();
    w.validation = { valid: true };
    w.runUntil(() => false, 10);
    expect(w.phase()).to.equal('Failed');
    expect(w.reasons().filter((r) => r === 'RolledBack')).to.have.length(1);
  });

  it('a deletion writes stable 100 even while the spec is invalid, when the stable Service exists', () => {
    const w = new World(spec()).runUntil(atWeight(50));
    w.validation = invalid;
    w.reconcile();
    w.deleting = true;
    w.reconcile();
    expect(w.traffic?.canaryWeight).to.equal(0);
    w.reconcile();
    expect(w.finalizerRemoved).to.equal(true);
  });

  it('passing checks are progress: a long analysis step does not hit the deadline', () => {
    const s = spec({
      steps: [{ setWeight: 10 }, { analysis: { iterations: 3 } }, { setWeight: 100 }],
      progressDeadlineSeconds: 600,
    });
    s.analysis!.interval = '4m';
    const w = new World(s).runUntil(settled);
    expect(w.phase()).to.equal('Succeeded');
  });

  it('Prometheus down with a long interval pauses MetricsUnavailable and never fails on the deadline', () => {
    const s = spec({
      steps: [{ setWeight: 10 }, { analysis: { iterations: 3 } }, { setWeight: 100 }],
      progressDeadlineSeconds: 600,
    });
    s.analysis!.interval = '3m';
    const w = new World(s).runUntil(atWeight(10));
    w.verdict = 'Error';
    w.runUntil((x) => x.phase() === 'Paused');
    expect(w.status?.pauseReason).to.equal('MetricsUnavailable');
    w.runUntil(() => false, 20);
    expect(w.phase()).to.equal('Paused');
  });

  it('a TrafficSplit still routing to the previous canary after a new generation is rewritten to stable 100', () => {
    const w = new World(spec()).runUntil(atWeight(50));
    w.generation = 2;
    w.spec = spec({ canaryService: 'web-v3' });
    // Observed for the new target: no web-v3, so canary 0, but web-v2 still has half the traffic.
    w.traffic = { canaryWeight: 0, lastWritten: 50, asPlanned: false };
    const before = w.writes.length;
    w.reconcile();
    expect(w.writes.slice(before)).to.deep.equal([0]);
    expect(w.reasons()).to.not.include('TrafficDrift');
  });

  it('never raises the weight while the latest check of a metric failed, even within failureLimit', () => {
    const s = spec({ steps: [{ setWeight: 10 }, { pause: { duration: '2s' } }, { setWeight: 50 }] });
    s.analysis!.failureLimit = 1;
    const w = new World(s).runUntil((x) => x.phase() === 'Paused');
    w.verdict = 'Fail';
    w.runUntil(() => (w.status?.analysis?.failed ?? 0) === 1);
    w.verdict = undefined; // no new round: the failed check stays the latest
    w.runUntil(() => false, 3); // the pause ends meanwhile
    expect(w.status?.canaryWeight).to.equal(10);
    expect(w.status?.message, 'the hold still names the failed check').to.equal(
      'holding until success-rate 100 passes again (1 of 1 failed checks tolerated)',
    );
    w.verdict = 'Pass';
    w.runUntil(settled);
    expect(w.phase()).to.equal('Succeeded');
  });

  it('promotion waits for a passing check at the last weight, not one from a lower weight', () => {
    const w = new World(
      spec({ steps: [{ setWeight: 10 }, { analysis: { iterations: 1 } }, { setWeight: 50 }] }),
    );
    let checksAt50 = 0;
    for (let i = 0; i < 200 && !settled(w); i++) {
      const rounds = w.rounds.length;
      const weight = w.status?.canaryWeight;
      const after = w.reconcile();
      if (w.rounds.length > rounds && weight === 50) checksAt50++;
      w.now += after === undefined ? 1000 : Math.max(after, 1);
    }
    expect(w.phase()).to.equal('Succeeded');
    expect(checksAt50, 'checks made at 50% before promotion').to.be.at.least(1);
  });

  it('resuming a MetricsUnavailable pause does not also skip a timed pause step', () => {
    const s = spec({ steps: [{ setWeight: 10 }, { pause: { duration: '1h' } }, { setWeight: 50 }] });
    s.analysis!.errorLimit = 0;
    const w = new World(s).runUntil((x) => x.status?.pauseReason === 'PauseStep');
    w.verdict = 'Error';
    w.runUntil((x) => x.status?.pauseReason === 'MetricsUnavailable');
    w.verdict = 'Pass';
    w.annotations.resume = true;
    for (let i = 0; i < 5; i++) {
      w.reconcile();
      w.now += 1000; // seconds, not the hour the pause step still has to run
    }
    expect(w.status?.canaryWeight).to.equal(10);
    expect(w.status?.pauseReason).to.equal('PauseStep');
  });

  it('outside the window a timed pause that is over does not move the run past it', () => {
    const s = spec({ steps: [{ setWeight: 10 }, { pause: { duration: '2s' } }, { setWeight: 50 }] });
    const w = new World(s).runUntil((x) => x.status?.pauseReason === 'PauseStep');
    w.window = { open: false, nextOpenAt: w.now + 3_600_000 };
    w.runUntil(() => false, 10);
    expect(w.status?.currentStepIndex).to.equal(1);
    expect(w.status?.canaryWeight).to.equal(10);
  });

  it('an abort whose annotation outlived a failed write is not reported as ignored', () => {
    const w = new World(spec()).runUntil(atWeight(50));
    w.annotations.abort = true;
    const d = w.observation();
    w.reconcile();
    expect(w.phase()).to.equal('RollingBack');
    // The TrafficSplit write failed after the status was saved: traffic and the annotation are as before.
    w.traffic = d.traffic && { ...d.traffic };
    w.annotations.abort = true;
    w.runUntil(settled);
    expect(w.phase()).to.equal('Aborted');
    expect(w.reasons()).to.not.include('AnnotationIgnored');
  });
});
