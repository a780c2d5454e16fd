// The shared timer heap on a fake clock: earliest due time wins, cancel, one Node timer for any number
// of keys, delays past Node's 2^31-1 ms limit, firing order, unref, stop, and a throwing callback.
import { expect } from 'chai';
import { createClock, type Clock, type TimerId } from '@sinonjs/fake-timers';
import { MAX_TIMER_DELAY_MS, Timers, type TimerClock } from '../../src/controller/timers.js';

const START = Date.UTC(2025, 0, 6, 12, 0, 0);
const DAY = 86_400_000;

interface Fixture {
  clock: Clock;
  fired: string[];
  /** When each key fired, by the fake clock. */
  firedAt: Map<string, number>;
  timers: Timers<string>;
  handles: unknown[];
  /** Every delay passed to the clock's setTimeout. */
  delays: number[];
}

function timerClock(clock: Clock, handles: unknown[] = [], delays: number[] = []): TimerClock {
  return {
    now: () => clock.now,
    setTimeout: (callback, ms) => {
      const handle = clock.setTimeout(callback, ms);
      handles.push(handle);
      delays.push(ms);
      return handle;
    },
    clearTimeout: (handle) => clock.clearTimeout(handle as TimerId),
  };
}

function fixture(onDue?: (key: string, f: Fixture) => void): Fixture {
  const clock = createClock(START);
  const handles: unknown[] = [];
  const delays: number[] = [];
  const f: Fixture = { clock, fired: [], firedAt: new Map(), handles, delays, timers: undefined! };
  f.timers = new Timers<string>(
    (key) => {
      f.fired.push(key);
      f.firedAt.set(key, clock.now);
      onDue?.(key, f);
    },
    { clock: timerClock(clock, handles, delays) },
  );
  return f;
}

/** A small seeded PRNG, so the "many keys" test is the same on every run. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('Timers', () => {
  it('fires a key at its due time, not before', () => {
    const f = fixture();
    f.timers.schedule('a', START + 1000);
    f.clock.tick(999);
    expect(f.fired).to.deep.equal([]);
    f.clock.tick(1);
    expect(f.fired).to.deep.equal(['a']);
    expect(f.timers.size()).to.equal(0);
    expect(f.clock.countTimers()).to.equal(0);
  });

  it('keeps the earliest due time per key: a later request never postpones it', () => {
    const f = fixture();
    expect(f.timers.schedule('a', START + 100)).to.equal(true);
    expect(f.timers.schedule('a', START + 500)).to.equal(false);
    expect(f.timers.dueAt('a')).to.equal(START + 100);
    expect(f.timers.schedule('a', START + 50)).to.equal(true);
    expect(f.timers.dueAt('a')).to.equal(START + 50);
    expect(f.timers.size()).to.equal(1);
    f.clock.tick(1000);
    expect(f.fired).to.deep.equal(['a']);
    expect(f.firedAt.get('a')).to.equal(START + 50);
  });

  it('fires a past due time on the next timer turn, never synchronously', () => {
    const f = fixture();
    f.timers.schedule('late', START - 5000);
    expect(f.fired).to.deep.equal([]);
    f.clock.tick(0);
    expect(f.fired).to.deep.equal(['late']);
  });

  it('cancels a key, and disarms the timer when nothing is left', () => {
    const f = fixture();
    f.timers.schedule('a', START + 100);
    f.timers.schedule('b', START + 200);
    expect(f.timers.cancel('a')).to.equal(true);
    expect(f.timers.cancel('a')).to.equal(false);
    expect(f.timers.cancel('never-scheduled')).to.equal(false);
    expect(f.timers.dueAt('a')).to.equal(undefined);
    f.clock.tick(1000);
    expect(f.fired).to.deep.equal(['b']);

    f.timers.schedule('c', START + 5000);
    expect(f.clock.countTimers()).to.equal(1);
    f.timers.cancel('c');
    expect(f.clock.countTimers()).to.equal(0);
    f.clock.tick(10_000);
    expect(f.fired).to.deep.equal(['b']);
  });

  it('re-arms for the new earliest entry when the earliest is cancelled', () => {
    const f = fixture();
    f.timers.schedule('first', START + 100);
    f.timers.schedule('second', START + 300);
    f.timers.cancel('first');
    f.clock.tick(299);
    expect(f.fired).to.deep.equal([]);
    f.clock.tick(1);
    expect(f.fired).to.deep.equal(['second']);
  });

  it('serves 10,000 keys with one underlying timer, firing each at its time in order', () => {
    const f = fixture();
    const rand = random(42);
    const due = new Map<string, number>();
    let maxTimers = 0;
    for (let i = 0; i < 10_000; i++) {
      const key = `ns-${i % 50}/rollout-${i}`;
      const at = START + Math.floor(rand() * 3_600_000);
      due.set(key, Math.min(at, due.get(key) ?? Infinity));
      f.timers.schedule(key, at);
      maxTimers = Math.max(maxTimers, f.clock.countTimers());
    }
    // A few cancelled and a few moved earlier, to exercise the heap's middle.
    for (let i = 0; i < 10_000; i += 97) {
      f.timers.cancel(`ns-${i % 50}/rollout-${i}`);
      due.delete(`ns-${i % 50}/rollout-${i}`);
    }
    for (let i = 1; i < 10_000; i += 89) {
      const key = `ns-${i % 50}/rollout-${i}`;
      if (!due.has(key)) continue;
      f.timers.schedule(key, START + 10);
      due.set(key, START + 10);
    }
    expect(maxTimers).to.equal(1);
    expect(f.timers.size()).to.equal(due.size);

    for (let t = 0; t < 3_600_000; t += 60_000) {
      f.clock.tick(60_000);
      maxTimers = Math.max(maxTimers, f.clock.countTimers());
    }
    expect(maxTimers).to.equal(1);
    expect(f.clock.countTimers()).to.equal(0);
    expect(f.fired).to.have.length(due.size);
    for (const [key, at] of due) expect(f.firedAt.get(key), key).to.equal(at);
    const times = f.fired.map((key) => due.get(key)!);
    expect(times).to.deep.equal([...times].sort((a, b) => a - b));
  });

  it('fires keys due at the same millisecond in the order they were scheduled', () => {
    const f = fixture();
    f.timers.schedule('c', START + 300);
    f.timers.schedule('x', START + 100);
    f.timers.schedule('y', START + 100);
    f.timers.schedule('a', START + 200);
    f.timers.schedule('z', START + 100);
    f.clock.tick(1000); // one jump past all of them: still fired in due order
    expect(f.fired).to.deep.equal(['x', 'y', 'z', 'a', 'c']);
  });

  it('reaches due times beyond the 2^31-1 ms setTimeout limit by re-arming', () => {
    const f = fixture();
    const far = START + 40 * DAY; // 3.456e9 ms away, past the ~24.8-day limit
    f.timers.schedule('far', far);
    f.timers.schedule('farther', START + 400 * DAY);
    expect(f.clock.countTimers()).to.equal(1);
    expect(f.delays).to.deep.equal([MAX_TIMER_DELAY_MS]); // Node would run a longer one after 1 ms
    f.clock.tick(MAX_TIMER_DELAY_MS); // the first hop: nothing is due yet
    expect(f.fired).to.deep.equal([]);
    expect(f.clock.countTimers()).to.equal(1);
    f.clock.tick(far - f.clock.now - 1);
    expect(f.fired).to.deep.equal([]);
    f.clock.tick(1);
    expect(f.fired).to.deep.equal(['far']);
    expect(f.firedAt.get('far')).to.equal(far);
    f.clock.tick(400 * DAY);
    expect(f.firedAt.get('farther')).to.equal(START + 400 * DAY);
    expect(Math.max(...f.delays)).to.equal(MAX_TIMER_DELAY_MS);
  });

  it('arms an unref-ed timer, so pending due times never keep the process alive', () => {
    const f = fixture();
    f.timers.schedule('a', START + 1000);
    f.timers.schedule('b', START + 10);
    expect(f.handles).to.have.length(2);
    for (const handle of f.handles) expect((handle as { hasRef(): boolean }).hasRef()).to.equal(false);
  });

  it('unref-s the real timer too', () => {
    const timers = new Timers<string>(() => undefined);
    let handle: unknown;
    const original = globalThis.setTimeout;
    // Watch the default clock's call to the global setTimeout, which it looks up on every call.
    globalThis.setTimeout = ((callback: () => void, ms: number) =>
      (handle = original(callback, ms))) as typeof setTimeout;
    try {
      timers.schedule('a', Date.now() + 60_000);
    } finally {
      globalThis.setTimeout = original;
      timers.stop();
    }
    expect((handle as NodeJS.Timeout).hasRef()).to.equal(false);
  });

  it('stop() drops everything and ignores later schedules', () => {
    const f = fixture();
    f.timers.schedule('a', START + 100);
    f.timers.schedule('b', START + 200);
    f.timers.stop();
    expect(f.clock.countTimers()).to.equal(0);
    expect(f.timers.size()).to.equal(0);
    expect(f.timers.schedule('c', START + 300)).to.equal(false);
    f.clock.tick(1000);
    expect(f.fired).to.deep.equal([]);
    expect(f.clock.countTimers()).to.equal(0);
  });

  it('lets a callback schedule its own key again without looping', () => {
    let count = 0;
    const f = fixture((key, fx) => {
      if (++count < 3) fx.timers.schedule(key, fx.clock.now); // due immediately, again
    });
    f.timers.schedule('again', START + 10);
    f.clock.tick(10);
    expect(f.fired).to.deep.equal(['again']);
    // Node (and the fake clock) run a 0 ms timeout set from inside a timer 1 ms later.
    f.clock.tick(1);
    expect(f.fired).to.deep.equal(['again', 'again']);
    f.clock.tick(1);
    expect(f.fired).to.deep.equal(['again', 'again', 'again']);
    expect(f.clock.countTimers()).to.equal(0);
  });

  it('fires the other due keys when one callback throws, and reports the error', () => {
    const clock = createClock(START);
    const fired: string[] = [];
    const errors: [string, string][] = [];
    const timers = new Timers<string>(
      (key) => {
        if (key === 'bad') throw new Error('boom');
        fired.push(key);
      },
      { clock: timerClock(clock), onError: (error, key) => errors.push([key, (error as Error).message]) },
    );
    timers.schedule('a', START + 10);
    timers.schedule('bad', START + 10);
    timers.schedule('b', START + 10);
    timers.schedule('later', START + 20);
    clock.tick(20);
    expect(fired).to.deep.equal(['a', 'b', 'later']);
    expect(errors).to.deep.equal([['bad', 'boom']]);
  });

  it('without onError, rethrows the first error after every due key has fired', () => {
    const clock = createClock(START);
    const fired: string[] = [];
    const timers = new Timers<string>(
      (key) => {
        fired.push(key);
        if (key.startsWith('bad')) throw new Error(key);
      },
      { clock: timerClock(clock) },
    );
    timers.schedule('bad-1', START + 10);
    timers.schedule('ok', START + 10);
    timers.schedule('bad-2', START + 10);
    timers.schedule('next', START + 50);
    expect(() => clock.tick(10)).to.throw('bad-1');
    expect(fired).to.deep.equal(['bad-1', 'ok', 'bad-2']);
    clock.tick(40); // still armed for the rest
    expect(fired).to.deep.equal(['bad-1', 'ok', 'bad-2', 'next']);
  });

  it('refuses a due time that is not a number', () => {
    const f = fixture();
    expect(() => f.timers.schedule('a', NaN)).to.throw(RangeError);
    expect(() => f.timers.schedule('a', Infinity)).to.throw(RangeError);
    expect(f.timers.size()).to.equal(0);
  });
});
