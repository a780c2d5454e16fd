// A bound on the queries one Prometheus has from us at once, the rest waiting their turn in fair order:
// one per waiting owner (a Rollout) in turn, so a Rollout with many metrics never holds the line.

export class InflightLimit {
  private running = 0;
  /** Owner → its waiting queries, in order; the Map's order is whose turn comes next. */
  private readonly waiting = new Map<string, (() => void)[]>();
  private waiters = 0;

  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`in-flight limit: ${max}`);
  }

  /**
   * Runs `task` once fewer than `max` run, and resolves (or rejects) as it does. Its own deadline
   * should start inside `task`: time spent waiting here is our queue's, not the server's slowness.
   */
  async run<T>(owner: string, task: () => Promise<T>): Promise<T> {
    if (this.running >= this.max || this.waiters > 0) {
      await new Promise<void>((turn) => {
        const queue = this.waiting.get(owner);
        if (queue) queue.push(turn);
        else this.waiting.set(owner, [turn]);
        this.waiters++;
      });
    } else {
      this.running++;
    }
    try {
      return await task();
    } finally {
      this.release();
    }
  }

  /** Queries running now, and waiting for a turn. */
  stats(): { running: number; waiting: number } {
    return { running: this.running, waiting: this.waiters };
  }

  /** The slot goes straight to the next owner in turn, who then goes to the back of the line. */
  private release(): void {
    const next = this.waiting.entries().next();
    if (next.done) {
      this.running--;
      return;
    }
    const [owner, queue] = next.value;
    const turn = queue.shift()!;
    this.waiting.delete(owner);
    if (queue.length > 0) this.waiting.set(owner, queue);
    this.waiters--;
    turn();
  }
}
