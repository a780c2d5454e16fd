// Awaiting things that arrive by callback (informer events, child-process output) instead of sleeping.

/** A queue of values pushed by callbacks; `next(match)` resolves with the first match, past or future. */
export class EventLog<T> {
  readonly seen: T[] = [];
  private waiters: { match: (v: T) => boolean; resolve: (v: T) => void }[] = [];

  push = (value: T): void => {
    this.seen.push(value);
    for (const w of [...this.waiters]) {
      if (w.match(value)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(value);
      }
    }
  };

  /** The first value (already seen or still to come) that matches; rejects after timeoutMs. */
  find(match: (v: T) => boolean, timeoutMs = 20_000, what = 'a matching event'): Promise<T> {
    const found = this.seen.find(match);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(
          new Error(
            `timed out after ${timeoutMs} ms waiting for ${what}; seen: ${JSON.stringify(this.seen).slice(-800)}`,
          ),
        );
      }, timeoutMs);
      const done = (v: T) => {
        clearTimeout(timer);
        resolve(v);
      };
      this.waiters.push({ match, resolve: done });
    });
  }
}
