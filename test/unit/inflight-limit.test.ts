// The bound on queries in flight to one Prometheus: never more than `max` at once, the rest served one
// owner (Rollout) at a time in turn, a failing query freeing its slot like any other.
import { expect } from 'chai';
import { InflightLimit } from '../../src/analysis/inflight-limit.js';

/** Lets every pending promise callback run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A task that starts when the limit lets it, recorded in `started`, and ends when the test says. */
function gated(started: string[], name: string) {
  let finish!: () => void;
  let fail!: (e: Error) => void;
  const ended = new Promise<void>((resolve, reject) => {
    finish = resolve;
    fail = reject;
  });
  return {
    task: () => {
      started.push(name);
      return ended.then(() => name);
    },
    finish: () => finish(),
    fail: (e: Error) => fail(e),
  };
}

describe('InflightLimit', () => {
  it('runs at most `max` tasks at once and starts a waiting one as each ends', async () => {
    const limit = new InflightLimit(3);
    const started: string[] = [];
    const tasks = Array.from({ length: 10 }, (_, i) => gated(started, `q${i}`));
    const done = tasks.map((t, i) => limit.run(`r${i}`, t.task));
    await settle();
    expect(started).to.deep.equal(['q0', 'q1', 'q2']);
    expect(limit.stats()).to.deep.equal({ running: 3, waiting: 7 });
    tasks[1]!.finish();
    await settle();
    expect(started).to.deep.equal(['q0', 'q1', 'q2', 'q3']);
    expect(limit.stats()).to.deep.equal({ running: 3, waiting: 6 });
    for (const t of tasks) t.finish();
    expect(await Promise.all(done)).to.deep.equal(tasks.map((_, i) => `q${i}`));
    expect(limit.stats()).to.deep.equal({ running: 0, waiting: 0 });
  });

  it('serves waiting owners in turn, so one with many queries never holds the others back', async () => {
    const limit = new InflightLimit(1);
    const started: string[] = [];
    const gates = new Map<string, ReturnType<typeof gated>>();
    const queued = [
      ['a', 'a1'],
      ['a', 'a2'],
      ['a', 'a3'],
      ['a', 'a4'],
      ['b', 'b1'],
      ['b', 'b2'],
      ['c', 'c1'],
    ] as const;
    const done = queued.map(([owner, name]) => {
      const g = gated(started, name);
      gates.set(name, g);
      return limit.run(owner, g.task);
    });
    for (let i = 0; i < queued.length; i++) {
      await settle();
      gates.get(started.at(-1)!)!.finish(); // the one running now ends; the next in turn starts
    }
    await Promise.all(done);
    // a1 took the free slot; then each owner's next query in turn: a, b, c, a, b, a.
    expect(started).to.deep.equal(['a1', 'a2', 'b1', 'c1', 'a3', 'b2', 'a4']);
  });

  it('frees the slot of a task that fails, and passes its error on', async () => {
    const limit = new InflightLimit(1);
    const started: string[] = [];
    const first = gated(started, 'first');
    const second = gated(started, 'second');
    const failed = limit.run('a', first.task);
    const next = limit.run('b', second.task);
    await settle();
    first.fail(new Error('connection reset'));
    let error: unknown;
    await failed.catch((e: unknown) => (error = e));
    expect((error as Error).message).to.equal('connection reset');
    await settle();
    expect(started).to.deep.equal(['first', 'second']);
    second.finish();
    expect(await next).to.equal('second');
    expect(limit.stats()).to.deep.equal({ running: 0, waiting: 0 });
  });

  it('refuses a bound below one', () => {
    expect(() => new InflightLimit(0)).to.throw(RangeError, 'in-flight limit: 0');
    expect(() => new InflightLimit(1.5)).to.throw(RangeError);
  });
});
