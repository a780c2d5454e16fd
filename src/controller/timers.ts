// The one timer structure for every rollout's next due time: a min-heap of (dueAt, key) behind a
// single Node timer armed for the earliest entry (DESIGN principle 8: timers are shared, never one per rollout).

/** The clock the timers read and arm; tests pass a fake one (@sinonjs/fake-timers). */
export interface TimerClock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/**
 * The process's own clock. Globals are looked up on each call, not captured at load time, so a test
 * that installs fake timers globally drives this clock too.
 */
export const systemClock: TimerClock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => globalThis.setTimeout(callback, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as Parameters<typeof clearTimeout>[0]),
};

/** Node clamps longer delays to 1 ms (with a warning), so a far-future entry is reached in hops of this. */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

export interface TimersOptions<K> {
  clock?: TimerClock;
  /**
   * Called when `onDue` throws, so one key's failure never stops the others firing. Without it the
   * first error is rethrown after every due key has fired: a bug should surface, not vanish.
   */
  onError?: (error: unknown, key: K) => void;
}

interface Entry<K> {
  key: K;
  dueAt: number;
  /** Insertion order, so keys due at the same millisecond fire in the order they were scheduled. */
  seq: number;
}

export class Timers<K = string> {
  private readonly clock: TimerClock;
  private readonly onError: ((error: unknown, key: K) => void) | undefined;
  private readonly heap: Entry<K>[] = [];
  /** key → its index in `heap`, so a key's entry is found, moved earlier or removed in O(log n). */
  private readonly index = new Map<K, number>();
  private armed: { handle: unknown; dueAt: number } | undefined;
  private seq = 0;
  private stopped = false;

  constructor(
    private readonly onDue: (key: K) => void,
    options: TimersOptions<K> = {},
  ) {
    this.clock = options.clock ?? systemClock;
    this.onError = options.onError;
  }

  /**
   * Asks for `onDue(key)` at `atMs` (epoch ms; a past time fires on the next timer turn). A key has at
   * most one pending due time and the earliest wins, as in client-go's AddAfter: a later request never
   * postpones an earlier one. Returns whether this call set or moved the key's due time. After `stop()`
   * it does nothing.
   */
  schedule(key: K, atMs: number): boolean {
    if (!Number.isFinite(atMs)) throw new RangeError(`timers: due time for ${String(key)} is ${atMs}`);
    if (this.stopped) return false;
    const at = this.index.get(key);
    if (at !== undefined) {
      const entry = this.heap[at]!;
      if (entry.dueAt <= atMs) return false;
      entry.dueAt = atMs;
      entry.seq = this.seq++;
      this.siftUp(at);
    } else {
      this.heap.push({ key, dueAt: atMs, seq: this.seq++ });
      this.index.set(key, this.heap.length - 1);
      this.siftUp(this.heap.length - 1);
    }
    this.arm();
    return true;
  }

  /** Drops the key's pending due time; returns whether it had one. */
  cancel(key: K): boolean {
    const at = this.index.get(key);
    if (at === undefined) return false;
    this.removeAt(at);
    this.arm();
    return true;
  }

  /** The key's pending due time (epoch ms), if any. */
  dueAt(key: K): number | undefined {
    const at = this.index.get(key);
    return at === undefined ? undefined : this.heap[at]!.dueAt;
  }

  /** How many keys have a pending due time. */
  size(): number {
    return this.heap.length;
  }

  /** Drops every pending due time and the Node timer; later `schedule` calls are ignored. */
  stop(): void {
    this.stopped = true;
    this.heap.length = 0;
    this.index.clear();
    this.disarm();
  }

  /** Keeps exactly one timer armed, for the earliest entry, or none when the heap is empty. */
  private arm(): void {
    const first = this.heap[0];
    if (first === undefined) return this.disarm();
    if (this.armed?.dueAt === first.dueAt) return;
    this.disarm();
    const delay = Math.min(Math.max(0, first.dueAt - this.clock.now()), MAX_TIMER_DELAY_MS);
    const handle = this.clock.setTimeout(() => this.fire(), delay);
    // A pending requeue is no reason to keep a stopping process alive; the controller's own
    // servers and watches do that.
    (handle as { unref?: () => unknown } | undefined)?.unref?.();
    this.armed = { handle, dueAt: first.dueAt };
  }

  private disarm(): void {
    if (this.armed === undefined) return;
    this.clock.clearTimeout(this.armed.handle);
    this.armed = undefined;
  }

  private fire(): void {
    this.armed = undefined;
    const now = this.clock.now();
    const due: K[] = [];
    // Take every due key out before calling back, so a callback that schedules its own key again
    // (or one already due) lands on the next timer turn instead of looping here.
    while (this.heap[0] !== undefined && this.heap[0].dueAt <= now) {
      due.push(this.heap[0].key);
      this.removeAt(0);
    }
    // Re-arm first: the earliest entry may be one we only hopped towards (MAX_TIMER_DELAY_MS), and a
    // throwing callback must not leave the rest unarmed.
    this.arm();
    let firstError: { error: unknown } | undefined;
    for (const key of due) {
      try {
        this.onDue(key);
      } catch (error) {
        if (this.onError) this.onError(error, key);
        else firstError ??= { error };
      }
    }
    if (firstError) throw firstError.error;
  }

  private removeAt(at: number): void {
    const removed = this.heap[at]!;
    const last = this.heap.pop()!;
    this.index.delete(removed.key);
    if (removed === last) return;
    this.heap[at] = last;
    this.index.set(last.key, at);
    this.siftDown(at);
    this.siftUp(at);
  }

  private before(a: Entry<K>, b: Entry<K>): boolean {
    return a.dueAt < b.dueAt || (a.dueAt === b.dueAt && a.seq < b.seq);
  }

  private siftUp(at: number): void {
    const heap = this.heap;
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (!this.before(heap[at]!, heap[parent]!)) return;
      this.swap(at, parent);
      at = parent;
    }
  }

  private siftDown(at: number): void {
    const heap = this.heap;
    for (;;) {
      const left = 2 * at + 1;
      const right = left + 1;
      let first = at;
      if (left < heap.length && this.before(heap[left]!, heap[first]!)) first = left;
      if (right < heap.length && this.before(heap[right]!, heap[first]!)) first = right;
      if (first === at) return;
      this.swap(at, first);
      at = first;
    }
  }

  private swap(i: number, j: number): void {
    const a = this.heap[i]!;
    const b = this.heap[j]!;
    this.heap[i] = b;
    this.heap[j] = a;
    this.index.set(b.key, i);
    this.index.set(a.key, j);
  }
}
