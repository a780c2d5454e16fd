// The demo's time limit on a fake clock: it counts running time only, not time a person holds the
// rollout with perch.dev/paused; and the live view names the reason of a pause.
import { install } from '@sinonjs/fake-timers';
import { expect } from 'chai';
import { giveUpAfter } from '../../src/sandbox/demo/budget.js';
import { heldByPerson, liveLine, TransitionLog, type RunState } from '../../src/sandbox/demo/view.js';

describe('perch demo: time limit and pause display', () => {
  let clock: ReturnType<typeof install>;
  beforeEach(() => {
    clock = install({ now: Date.UTC(2026, 0, 1), toFake: ['Date', 'setInterval', 'clearInterval'] });
  });
  afterEach(() => clock.uninstall());

  it('gives up after the limit of running time', () => {
    let gaveUp = 0;
    giveUpAfter(
      10_000,
      () => false,
      () => gaveUp++,
    );
    clock.tick(9_750);
    expect(gaveUp).to.equal(0);
    clock.tick(250);
    expect(gaveUp).to.equal(1);
    clock.tick(60_000);
    expect(gaveUp, 'once only').to.equal(1);
  });

  it('does not count the time a person holds the rollout', () => {
    let gaveUp = 0;
    let held = false;
    giveUpAfter(
      10_000,
      () => held,
      () => gaveUp++,
    );
    clock.tick(6_000);
    held = true;
    clock.tick(600_000);
    expect(gaveUp).to.equal(0);
    held = false;
    clock.tick(3_750);
    expect(gaveUp).to.equal(0);
    clock.tick(500);
    expect(gaveUp).to.equal(1);
  });

  it('stops counting when stopped', () => {
    let gaveUp = 0;
    const stop = giveUpAfter(
      1_000,
      () => false,
      () => gaveUp++,
    );
    stop();
    clock.tick(10_000);
    expect(gaveUp).to.equal(0);
  });

  it('a manual pause is held by a person, shown as Paused(Manual) in the live line and the plain log', () => {
    const s: RunState = {
      run: 'v2',
      stable: 'bookstore-v1',
      canary: 'bookstore-v2',
      expected: 'Succeeded',
      startedAt: Date.now(),
      phase: 'Paused',
      pauseReason: 'Manual',
      weight: 10,
      step: '2/5',
    };
    expect(heldByPerson(s)).to.equal(true);
    expect(liveLine(s)).to.include('Paused(Manual)');
    expect(new TransitionLog().line(s)).to.match(/ phase=Paused\(Manual\) weight=10 step=2\/5 /);
    expect(heldByPerson({ ...s, pauseReason: 'AnalysisInconclusive' }), 'a safety pause').to.equal(false);
    expect(heldByPerson({ ...s, endedAt: Date.now() }), 'a finished run').to.equal(false);
  });
});
