// The keyed work queue on a fake clock: duplicates collapse, one key never runs twice at once, a key
// re-added while running runs once more, urgent keys pass the backlog, backoff doubles and resets,
// failures stay per key, shutdown drains.
import { expect } from 'chai';
import { createClock, type Clock, type TimerId } from '@sinonjs/fake-timers';
import type { TimerClock } from '../../src/controller/timers.js';
import { WorkQueue, type WorkQueueOptions } from '../../src/controller/work-queue.js';

const START = Date.UTC(2025, 0, 6, 12, 0, 0);

function timerClock(clock: Clock): TimerClock {
  return {
    now: () => clock.now,
    setTimeout: (callback, ms) => clock.setTimeout(callback, ms),
    clearTimeout: (handle) => clock.clearTimeout(handle as TimerId),
  };
}

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
  reject: (error: Error) => void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets every pending promise callback run; the fake clock does not move. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

function setup(options: Omit<WorkQueueOptions<string>, 'clock'> = {}) {
  const clock = createClock(START);
  const errors: { key: string; failures: number; message: string }[] = [];
  const queue = new WorkQueue<string>({
    onError: (error, key, failures) => errors.push({ key, failures, message: (error as Error).message }),
    ...options,
    clock: timerClock(clock),
  });
  return { clock, queue, errors };
}

describe('WorkQueue', () => {
  let queues: WorkQueue<string>[] = [];
  const track = <T extends { queue: WorkQueue<string> }>(s: T): T => {
    queues.push(s.queue);
    return s;
  };
  afterEach(async () => {
    await Promise.all(queues.map((q) => q.shutdown()));
    queues = [];
  });

  it('collapses duplicate adds of a waiting key and keeps first-added order', async () => {
    const { queue } = track(setup());
    for (const key of ['a', 'b', 'a', 'c', 'b', 'a']) queue.add(key);
    expect(queue.len()).to.equal(3);
    expect(queue.stats().adds).to.equal(3);
    const seen: string[] = [];
    queue.run(1, async (key) => {
      seen.push(key);
    });
    await settle();
    expect(seen).to.deep.equal(['a', 'b', 'c']);
    expect(queue.len()).to.equal(0);
    expect(queue.stats().processed).to.equal(3);
  });

  it('never hands one key to two workers at once, and runs a key re-added while running once more', async () => {
    const { queue } = track(setup());
    const active = new Map<string, number>();
    let maxActiveA = 0;
    let maxActiveAll = 0;
    const runs: string[] = [];
    const gates = new Map<string, Deferred[]>();
    queue.run(4, async (key) => {
      runs.push(key);
      active.set(key, (active.get(key) ?? 0) + 1);
      maxActiveA = Math.max(maxActiveA, active.get('a') ?? 0);
      maxActiveAll = Math.max(
        maxActiveAll,
        [...active.values()].reduce((s, n) => s + n, 0),
      );
      const gate = deferred();
      gates.set(key, [...(gates.get(key) ?? []), gate]);
      await gate.promise;
      active.set(key, active.get(key)! - 1);
    });

    queue.add('a');
    queue.add('b');
    await settle();
    expect(runs).to.deep.equal(['a', 'b']);
    expect(queue.stats().inFlight).to.equal(2);

    // 'a' is running: adding it again (many times) marks it dirty once; idle workers must not take it.
    for (let i = 0; i < 5; i++) queue.add('a');
    queue.add('c');
    await settle();
    expect(runs).to.deep.equal(['a', 'b', 'c']);
    expect(queue.len()).to.equal(0);
    expect(queue.stats().adds).to.equal(4); // a, b, a (dirty while running), c

    gates.get('a')![0]!.resolve();
    await settle();
    expect(runs).to.deep.equal(['a', 'b', 'c', 'a']);
    gates.get('a')![1]!.resolve();
    gates.get('b')![0]!.resolve();
    gates.get('c')![0]!.resolve();
    await settle();
    expect(runs).to.deep.equal(['a', 'b', 'c', 'a']); // once more, not five times more
    expect(maxActiveA).to.equal(1);
    expect(maxActiveAll).to.equal(3); // the other workers did run other keys meanwhile
    expect(queue.stats()).to.include({ inFlight: 0, processed: 4, depth: 0 });
  });

  it('backs off per key, doubling from the base to the ceiling, and forget() resets it', () => {
    const { queue } = track(setup({ backoff: { baseMs: 100, maxMs: 1000 } }));
    const delays = Array.from({ length: 7 }, () => queue.addRateLimited('a'));
    expect(delays).to.deep.equal([100, 200, 400, 800, 1000, 1000, 1000]);
    expect(queue.failures('a')).to.equal(7);
    expect(queue.addRateLimited('b')).to.equal(100); // per key
    queue.forget('a');
    expect(queue.failures('a')).to.equal(0);
    expect(queue.addRateLimited('a')).to.equal(100);
    expect(queue.stats().retries).to.equal(9);
  });

  it('defaults to 100 ms doubling to 30 s, without jitter', () => {
    const { queue } = track(setup());
    const delays = Array.from({ length: 11 }, () => queue.addRateLimited('a'));
    expect(delays).to.deep.equal([100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000]);
  });

  it('adds seeded jitter only when asked, the same for the same seed', () => {
    const run = (seed: number) => {
      const { queue } = track(
        setup({ backoff: { baseMs: 100, maxMs: 1000, jitter: { factor: 0.5, seed } } }),
      );
      return Array.from({ length: 6 }, () => queue.addRateLimited('a'));
    };
    const first = run(7);
    expect(run(7)).to.deep.equal(first);
    expect(run(8)).to.not.deep.equal(first);
    [100, 200, 400, 800, 1000, 1000].forEach((base, i) => {
      expect(first[i]).to.be.within(base, base * 1.5);
    });
  });

  it('queues a rate-limited key only when its backoff has passed', async () => {
    const { queue, clock } = track(setup({ backoff: { baseMs: 100, maxMs: 1000 } }));
    queue.addRateLimited('a');
    clock.tick(99);
    expect(queue.len()).to.equal(0);
    expect(queue.stats().delayed).to.equal(1);
    clock.tick(1);
    expect(queue.len()).to.equal(1);
    expect(queue.stats().delayed).to.equal(0);
  });

  it('retries a throwing handler with backoff while other keys keep going, then resets on success', async () => {
    const { queue, clock, errors } = track(setup({ backoff: { baseMs: 100, maxMs: 1000 } }));
    const runs: [string, number][] = [];
    let badFailuresLeft = 3;
    queue.run(1, async (key) => {
      runs.push([key, clock.now - START]);
      if (key === 'bad' && badFailuresLeft-- > 0) throw new Error(`bad attempt failed`);
    });
    queue.add('bad');
    queue.add('good-1');
    await settle();
    expect(runs).to.deep.equal([
      ['bad', 0],
      ['good-1', 0],
    ]);
    expect(errors).to.deep.equal([{ key: 'bad', failures: 1, message: 'bad attempt failed' }]);

    queue.add('good-2');
    await settle();
    await clock.tickAsync(100); // first retry after 100 ms
    await clock.tickAsync(200); // second after 200 ms more
    await clock.tickAsync(400); // third after 400 ms more: succeeds
    await settle();
    expect(runs).to.deep.equal([
      ['bad', 0],
      ['good-1', 0],
      ['good-2', 0],
      ['bad', 100],
      ['bad', 300],
      ['bad', 700],
    ]);
    expect(errors.map((e) => e.failures)).to.deep.equal([1, 2, 3]);
    expect(queue.failures('bad')).to.equal(0);
    expect(queue.stats()).to.include({ processed: 6, failures: 3, retries: 3, inFlight: 0 });
  });

  it('keeps a backoff the handler asked for itself instead of throwing', async () => {
    const { queue } = track(setup({ backoff: { baseMs: 100, maxMs: 1000 } }));
    queue.run(1, async (key) => {
      queue.addRateLimited(key); // a transient error handled as a value
    });
    queue.add('a');
    await settle();
    expect(queue.failures('a')).to.equal(1);
    expect(queue.stats().failures).to.equal(0);
  });

  it('catches a handler that throws synchronously', async () => {
    const { queue, errors } = track(setup());
    const seen: string[] = [];
    queue.run(1, ((key: string) => {
      if (key === 'sync') throw new Error('not even a promise');
      seen.push(key);
      return Promise.resolve();
    }) as (key: string) => Promise<void>);
    queue.add('sync');
    queue.add('after');
    await settle();
    expect(seen).to.deep.equal(['after']);
    expect(errors.map((e) => e.key)).to.deep.equal(['sync']);
  });

  it('routes addAfter through one shared timer, earliest due time winning', async () => {
    const { queue, clock } = track(setup());
    for (let i = 0; i < 1000; i++) queue.addAfter(`ns/r-${i}`, 1000 + i);
    queue.addAfter('ns/r-0', 5000); // later: ignored
    queue.addAfter('ns/r-999', 10); // earlier: wins
    expect(clock.countTimers()).to.equal(1);
    expect(queue.stats().delayed).to.equal(1000);
    clock.tick(10);
    expect(queue.len()).to.equal(1);
    clock.tick(990);
    expect(queue.len()).to.equal(2);
    clock.tick(998);
    expect(queue.len()).to.equal(1000);
    expect(clock.countTimers()).to.equal(0);
    clock.tick(10_000);
    expect(queue.len()).to.equal(1000);
    queue.addAfter('now', 0);
    expect(queue.len()).to.equal(1001);
  });

  it('reports how long the longest-waiting key has waited', () => {
    const { queue, clock } = track(setup());
    expect(queue.stats().longestWaitMs).to.equal(0);
    queue.add('a');
    clock.tick(250);
    queue.add('b');
    clock.tick(50);
    expect(queue.stats().longestWaitMs).to.equal(300);
    expect(queue.stats().depth).to.equal(2);
  });

  it('reports how long the longest-running handler has run, so /healthz can see a stuck worker', async () => {
    const { queue, clock } = track(setup());
    const gate = deferred();
    queue.run(2, async (key) => {
      if (key === 'stuck') await gate.promise;
    });
    expect(queue.stats().longestRunningMs).to.equal(0);
    queue.add('stuck');
    await settle();
    clock.tick(90_000);
    queue.add('quick');
    await settle();
    expect(queue.stats().longestRunningMs).to.equal(90_000);
    gate.resolve();
    await settle();
    expect(queue.stats().longestRunningMs).to.equal(0);
  });

  it('shutdown() waits for running handlers, starts no new ones, and ignores later adds', async () => {
    const { queue, clock } = track(setup());
    const gate = deferred();
    const started: string[] = [];
    const finished: string[] = [];
    queue.run(1, async (key) => {
      started.push(key);
      await gate.promise;
      finished.push(key);
    });
    queue.add('running');
    queue.add('queued');
    queue.addAfter('delayed', 1000);
    await settle();
    expect(started).to.deep.equal(['running']);

    let resolved = false;
    const done = queue.shutdown().then(() => (resolved = true));
    await settle();
    expect(resolved).to.equal(false);
    expect(clock.countTimers()).to.equal(0); // the delayed add is dropped

    queue.add('late');
    queue.addAfter('late-delayed', 10);
    queue.addRateLimited('late-retry');
    gate.resolve();
    await done;
    expect(finished).to.deep.equal(['running']);
    expect(started).to.deep.equal(['running']);
    expect(queue.len()).to.equal(0);
    expect(clock.countTimers()).to.equal(0);
    await queue.shutdown(); // idempotent
  });

  it('shutdown() drains a handler that fails, without scheduling its retry', async () => {
    const { queue, clock, errors } = track(setup());
    const gate = deferred();
    queue.run(2, async () => {
      await gate.promise;
    });
    queue.add('a');
    await settle();
    const done = queue.shutdown();
    gate.reject(new Error('lost the API server'));
    await done;
    expect(errors.map((e) => e.message)).to.deep.equal(['lost the API server']);
    expect(clock.countTimers()).to.equal(0);
  });

  /** One worker held on 'held' while the test queues; release() lets it go on. */
  async function heldWorker(queue: WorkQueue<string>) {
    const runs: string[] = [];
    const gate = deferred();
    queue.run(1, async (key) => {
      runs.push(key);
      if (key === 'held' && runs.length === 1) await gate.promise;
    });
    queue.add('held');
    await settle();
    expect(runs).to.deep.equal(['held']);
    return { runs, release: gate.resolve };
  }

  it('hands urgent keys out before the backlog, in the order they became urgent, each once', async () => {
    const { queue } = track(setup());
    const { runs, release } = await heldWorker(queue);
    for (const key of ['a', 'b', 'c', 'd', 'e']) queue.add(key);
    queue.addUrgent('x');
    queue.addUrgent('d'); // waiting already: it moves up, not in twice
    queue.addUrgent('x');
    queue.add('x');
    queue.add('d');
    expect(queue.len()).to.equal(6);
    expect(queue.stats().adds).to.equal(7); // held, a..e, x
    release();
    await settle();
    expect(runs).to.deep.equal(['held', 'x', 'd', 'a', 'b', 'c', 'e']);
    expect(queue.stats()).to.include({ depth: 0, processed: 7 });
  });

  it('runs a key made urgent while a handler has it right after, ahead of the backlog, still one at a time', async () => {
    const { queue } = track(setup());
    const { runs, release } = await heldWorker(queue);
    for (const key of ['a', 'b', 'c']) queue.add(key);
    queue.addUrgent('held');
    queue.add('held');
    expect(queue.len(), 'not handed out while it runs').to.equal(3);
    release();
    await settle();
    expect(runs).to.deep.equal(['held', 'held', 'a', 'b', 'c']);
  });

  it('runs an urgent key on the reserve worker while every worker is held by a routine run', async () => {
    const { queue } = track(setup());
    const { runs, release } = await heldWorker(queue);
    queue.add('a');
    queue.addUrgent('x');
    await settle();
    expect(runs, 'the rollback does not wait; the routine key does').to.deep.equal(['held', 'x']);
    queue.addUrgent('held'); // running now: still one at a time, right after
    await settle();
    expect(runs).to.deep.equal(['held', 'x']);
    release();
    await settle();
    expect(runs).to.deep.equal(['held', 'x', 'held', 'a']);
  });

  it('ignores urgent adds after shutdown', async () => {
    const { queue } = track(setup());
    await queue.shutdown();
    queue.addUrgent('a');
    expect(queue.len()).to.equal(0);
  });

  it('refuses a second run() and a worker count below one', () => {
    const { queue } = track(setup());
    expect(() => queue.run(0, async () => undefined)).to.throw(RangeError);
    queue.run(1, async () => undefined);
    expect(() => queue.run(1, async () => undefined)).to.throw('already');
  });
});
