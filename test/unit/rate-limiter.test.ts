// The API rate limit's token bucket on a fake clock: a burst at once, then one request per 1/qps, none
// lost and in the order asked; a quiet spell refills only up to the burst; an aborted wait leaves the line.
import { createClock, type Clock, type TimerId } from '@sinonjs/fake-timers';
import { expect } from 'chai';
import {
  DEFAULT_RATE_LIMIT,
  rateLimitError,
  TokenBucket,
  type BucketClock,
} from '../../src/k8s/rate-limiter.js';

function bucketClock(clock: Clock, timers: { armed: number }): BucketClock {
  return {
    now: () => clock.now,
    setTimeout: (callback, ms) => {
      timers.armed++;
      return clock.setTimeout(callback, ms);
    },
    clearTimeout: (handle) => clock.clearTimeout(handle as TimerId),
  };
}

interface Line {
  /** Request number → fake time it was let go. */
  wentAt: Map<number, number>;
  /** Request numbers in the order they were let go. */
  order: number[];
}

/** Asks for `n` tokens at once, numbered from `first`, recording when each is let go. */
function ask(bucket: TokenBucket, clock: Clock, n: number, line: Line, first = 0): Promise<void>[] {
  return Array.from({ length: n }, (_, i) =>
    bucket.take().then(() => {
      line.wentAt.set(first + i, clock.now);
      line.order.push(first + i);
    }),
  );
}

describe('API rate limit (token bucket)', () => {
  let clock: Clock;
  let timers: { armed: number };
  let line: Line;
  beforeEach(() => {
    clock = createClock(0);
    timers = { armed: 0 };
    line = { wentAt: new Map(), order: [] };
  });

  it('lets the burst go at once, then one request every 1/qps, every request in the order it asked', async () => {
    const bucket = new TokenBucket({ qps: 5, burst: 3 }, bucketClock(clock, timers));
    const all = ask(bucket, clock, 10, line);
    await clock.tickAsync(0);
    expect(line.order).to.deep.equal([0, 1, 2]);
    expect(bucket.waiting()).to.equal(7);
    await clock.tickAsync(199);
    expect(line.order, 'nothing before the first token comes back (200 ms at 5/s)').to.have.length(3);
    await clock.tickAsync(1);
    expect(line.order).to.deep.equal([0, 1, 2, 3]);
    await clock.tickAsync(1200);
    await Promise.all(all);
    expect(line.order).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect([...line.wentAt.entries()].sort((a, b) => a[0] - b[0]).map(([, at]) => at)).to.deep.equal([
      0, 0, 0, 200, 400, 600, 800, 1000, 1200, 1400,
    ]);
    expect(bucket.waiting()).to.equal(0);
    // One timer at a time, for the head of the line: not one per waiting request.
    expect(timers.armed).to.equal(7);
  });

  it('after a quiet spell holds only the burst, however long the spell, and newcomers queue behind waiters', async () => {
    const bucket = new TokenBucket({ qps: 10, burst: 4 }, bucketClock(clock, timers));
    await Promise.all(ask(bucket, clock, 4, line));
    await clock.tickAsync(60_000);
    const first = ask(bucket, clock, 6, line, 100);
    await clock.tickAsync(0);
    expect(line.order).to.deep.equal([0, 1, 2, 3, 100, 101, 102, 103]);
    // A request asking while others wait goes after them, even if a token has come meanwhile.
    await clock.tickAsync(100);
    const late = ask(bucket, clock, 1, line, 200);
    await clock.tickAsync(0);
    expect(line.order.slice(8)).to.deep.equal([104]);
    await clock.tickAsync(200);
    await Promise.all([...first, ...late]);
    expect(line.order.slice(8)).to.deep.equal([104, 105, 200]);
    expect(line.wentAt.get(105)).to.equal(60_200);
    expect(line.wentAt.get(200)).to.equal(60_300);
  });

  it('keeps a fractional rate: 0.5 per second is one request every 2 s', async () => {
    const bucket = new TokenBucket({ qps: 0.5, burst: 1 }, bucketClock(clock, timers));
    const all = ask(bucket, clock, 3, line);
    await clock.tickAsync(4000);
    await Promise.all(all);
    expect(line.order.map((i) => line.wentAt.get(i))).to.deep.equal([0, 2000, 4000]);
  });

  it('takes an aborted request out of the line, rejecting with its reason; the others keep their turn', async () => {
    const bucket = new TokenBucket({ qps: 5, burst: 1 }, bucketClock(clock, timers));
    await bucket.take();
    const abort = new AbortController();
    const went: string[] = [];
    const a = bucket.take().then(() => went.push('a'));
    const b = bucket.take(abort.signal).then(
      () => went.push('b'),
      (err: unknown) => went.push(`b refused: ${(err as Error).message}`),
    );
    const c = bucket.take().then(() => went.push('c'));
    await clock.tickAsync(100);
    abort.abort(new Error('request timed out'));
    await clock.tickAsync(0);
    expect(went).to.deep.equal(['b refused: request timed out']);
    expect(bucket.waiting()).to.equal(2);
    await clock.tickAsync(400);
    await Promise.all([a, b, c]);
    expect(went).to.deep.equal(['b refused: request timed out', 'a', 'c']);
    expect(clock.now).to.equal(500);
    // Aborted before asking: never in line.
    const gone = new AbortController();
    gone.abort(new Error('already gone'));
    let refused: unknown;
    await bucket.take(gone.signal).catch((err: unknown) => (refused = err));
    expect((refused as Error).message).to.equal('already gone');
    expect(bucket.waiting()).to.equal(0);
  });

  it('drops its timer when the last waiter leaves, so an idle controller arms nothing', async () => {
    const bucket = new TokenBucket({ qps: 1, burst: 1 }, bucketClock(clock, timers));
    await bucket.take();
    const abort = new AbortController();
    const waiting = bucket.take(abort.signal).catch(() => undefined);
    expect(clock.countTimers()).to.equal(1);
    abort.abort();
    await waiting;
    expect(clock.countTimers()).to.equal(0);
  });

  it('refuses a limit that cannot work, naming the flag and the fix', () => {
    expect(rateLimitError(DEFAULT_RATE_LIMIT)).to.equal(undefined);
    expect(rateLimitError({ qps: 0, burst: 10 })).to.equal(
      '--kube-api-qps 0: give a positive number of requests per second, such as 200',
    );
    expect(rateLimitError({ qps: NaN, burst: 10 }, { qps: 'fast' })).to.match(/^--kube-api-qps fast: /);
    expect(rateLimitError({ qps: 5, burst: 0.5 })).to.equal(
      '--kube-api-burst 0.5: give a whole number of requests, at least 1, such as 400',
    );
    expect(() => new TokenBucket({ qps: -1, burst: 1 })).to.throw(RangeError, /--kube-api-qps -1/);
  });
});
