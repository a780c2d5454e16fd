// Check rounds on a fake clock, run by the real CheckRunner (a metric with no Prometheus address is
// judged without a request): rounds found overdue at a first look spread over one interval, each
// measured at the moment it really starts; every other round starts at once.
import { expect } from 'chai';
import { createClock, type Clock, type TimerId } from '@sinonjs/fake-timers';
import { CheckRounds, turnOffset } from '../../src/controller/check-rounds.js';
import { CheckRunner } from '../../src/controller/checks.js';
import { PrometheusAllowlist } from '../../src/controller/prometheus-allowlist.js';
import type { TimerClock } from '../../src/controller/timers.js';
import type { Lookups } from '../../src/controller/validate.js';
import { checkRollout } from '../support/check-rollout.js';

const START = Date.UTC(2025, 0, 6, 12, 0, 0);
const INTERVAL_MS = 10_000;
const iso = (ms: number) => new Date(ms).toISOString();

function timerClock(clock: Clock): TimerClock {
  return {
    now: () => clock.now,
    setTimeout: (callback, ms) => clock.setTimeout(callback, ms),
    clearTimeout: (handle) => clock.clearTimeout(handle as TimerId),
  };
}

/** Lets every pending promise callback run; the fake clock does not move. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

const lookups: Lookups = {
  serviceExists: () => true,
  metricTemplate: () => undefined,
  admission: { prometheus: new PrometheusAllowlist([]) },
};

/** A Rollout whose round was due at `dueAt`; its one metric names no Prometheus, so it is judged at once. */
const rollout = (name: string, dueAt: number, generation = 1) =>
  checkRollout({ name, namespace: 'shop', generation, dueAt });

function setup() {
  const clock = createClock(START);
  const finished = new Map<string, number>();
  const errors: unknown[] = [];
  const rounds = new CheckRounds(new CheckRunner({ admission: lookups.admission }), {
    queue: {
      add: (key) => finished.set(key, clock.now),
      addUrgent: () => expect.fail('no round fails here'),
    },
    failed: (_key, err) => errors.push(err),
    clock: timerClock(clock),
  });
  return { clock, finished, errors, rounds };
}

describe('CheckRounds', () => {
  const keys = Array.from({ length: 200 }, (_, i) => `shop/web-${i}`);
  const nameOf = (key: string) => key.split('/')[1]!;

  it('spreads rounds found overdue at a first look over one interval, each measured when it really starts', async () => {
    const { clock, finished, rounds } = setup();
    const now = new Date(START);
    // Due a minute ago, while no controller ran.
    for (const k of keys)
      expect(rounds.take(k, rollout(nameOf(k), START - 60_000), lookups, now, true)).to.deep.equal([]);
    await settle();
    const perSecond: number[] = [];
    for (let s = 0; s < INTERVAL_MS / 1000; s++) {
      const before = finished.size;
      clock.tick(1000);
      await settle();
      perSecond.push(finished.size - before);
    }
    expect(finished.size, 'every round within one interval').to.equal(keys.length);
    // 200 over ten seconds: about 20 a second, never the whole herd at once.
    for (const n of perSecond) expect(n).to.be.within(8, 35);
    for (const k of keys) {
      expect(rounds.asking(k)).to.equal(false);
      const results = rounds.take(k, rollout(nameOf(k), START - 60_000), lookups, new Date(clock.now), false);
      // Its own place in the interval, and the round's now is when it started there.
      expect(
        results.map((r) => r.at),
        k,
      ).to.deep.equal([iso(START + turnOffset(k, INTERVAL_MS))]);
      expect(finished.get(k)! - START).to.be.within(turnOffset(k, INTERVAL_MS), INTERVAL_MS);
    }
  });

  it('starts at once a round that is not a first look, or that fell due just as it was looked at', async () => {
    const { finished, rounds } = setup();
    const now = new Date(START);
    for (const k of keys.slice(0, 100))
      rounds.take(k, rollout(nameOf(k), START - 60_000), lookups, now, false);
    for (const k of keys.slice(100)) rounds.take(k, rollout(nameOf(k), START), lookups, now, true);
    await settle();
    expect(finished.size).to.equal(keys.length);
    expect(new Set(finished.values())).to.deep.equal(new Set([START]));
  });

  it('keeps a waiting round out while it waits, drops it when forgotten, and starts a new spec’s round at once', async () => {
    const { clock, finished, rounds } = setup();
    const now = new Date(START);
    const [a, b] = keys.filter((k) => turnOffset(k, INTERVAL_MS) > 1000);
    rounds.take(a!, rollout(nameOf(a!), START - 60_000), lookups, now, true);
    rounds.take(b!, rollout(nameOf(b!), START - 60_000), lookups, now, true);
    expect(rounds.asking(a!)).to.equal(true);
    // A second look before its turn starts nothing new.
    expect(rounds.take(a!, rollout(nameOf(a!), START - 60_000), lookups, now, true)).to.deep.equal([]);
    rounds.forget(a!);
    // A spec edit: another round, not a first look any more, asked at once.
    rounds.take(b!, rollout(nameOf(b!), START - 60_000, 2), lookups, now, false);
    await settle();
    expect([...finished]).to.deep.equal([[b, START]]);
    clock.tick(INTERVAL_MS);
    await settle();
    expect([...finished], 'neither turn comes any more').to.deep.equal([[b, START]]);
    expect(rounds.asking(a!)).to.equal(false);
  });

  it('places each Rollout within the interval, the same every time', () => {
    for (const k of keys) {
      const offset = turnOffset(k, INTERVAL_MS);
      expect(offset).to.be.within(0, INTERVAL_MS - 1);
      expect(turnOffset(k, INTERVAL_MS)).to.equal(offset);
    }
  });

  it('brings back a Rollout holding a failed round ahead of the backlog, whatever event brings it', async () => {
    const lanes: string[] = [];
    const verdicts = new Map([
      ['shop/fails', 'Fail'],
      ['shop/passes', 'Pass'],
    ]);
    // The runner's answer is all this test varies; how a verdict is reached is the CheckRunner's tests'.
    const runner = {
      run: async (r: { metadata?: { name?: string } }) => [
        { metric: 'answer', verdict: verdicts.get(`shop/${r.metadata?.name}`), reason: '', at: iso(START) },
      ],
    } as unknown as CheckRunner;
    const rounds = new CheckRounds(runner, {
      queue: { add: (k) => lanes.push(`add ${k}`), addUrgent: (k) => lanes.push(`urgent ${k}`) },
      failed: (_key, err) => expect.fail(String(err)),
    });
    for (const k of verdicts.keys()) rounds.take(k, rollout(nameOf(k), START), lookups, new Date(START));
    rounds.requeue('shop/fails'); // before its results: a routine look
    await settle();
    // Their reconciles found the cache behind; the Rollouts' watch events bring them back.
    for (const k of verdicts.keys()) rounds.requeue(k);
    rounds.requeue('shop/other');
    expect(lanes).to.deep.equal([
      'add shop/fails',
      'urgent shop/fails',
      'add shop/passes',
      'urgent shop/fails',
      'add shop/passes',
      'add shop/other',
    ]);
    // Once taken, the results are spent: a routine look again.
    rounds.take('shop/fails', rollout('fails', START), lookups, new Date(START));
    rounds.requeue('shop/fails');
    expect(lanes.at(-1)).to.equal('add shop/fails');
  });
});
