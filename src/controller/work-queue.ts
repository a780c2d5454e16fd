// The keyed work queue between the informers and reconcile, in the manner of client-go's workqueue:
// duplicates collapse, one key is never handled twice at once, failures back off per key, delays share one
// timer, and urgent keys (a failing check round) pass the backlog.
import { Timers, systemClock, type TimerClock } from './timers.js';

export interface BackoffOptions {
  /** First retry delay; each further consecutive failure doubles it. Default 100 ms. */
  baseMs?: number;
  /** Ceiling for the doubling. Default 30 s. */
  maxMs?: number;
  /**
   * Off by default. When set, each delay grows by up to `factor` × itself (after the ceiling, as
   * k8s.io/apimachinery's wait.Backoff does), from a PRNG seeded with `seed` so runs repeat exactly.
   * It spreads the retries of many keys that failed together, e.g. when the API server came back.
   */
  jitter?: { factor: number; seed: number };
}

export interface WorkQueueOptions<K> {
  clock?: TimerClock;
  backoff?: BackoffOptions;
  /** A handler's error (the key is already queued for a retry); `failures` counts consecutive ones. */
  onError?: (error: unknown, key: K, failures: number) => void;
}

export interface WorkQueueStats {
  /** Keys waiting for a worker. */
  depth: number;
  /** Keys waiting for their delay (addAfter, addRateLimited) to pass. */
  delayed: number;
  /** Keys a handler is working on now. */
  inFlight: number;
  /** Adds that queued a key, not counting those that collapsed into one already waiting. */
  adds: number;
  /** addRateLimited calls, including the queue's own after a handler threw. */
  retries: number;
  /** Handler runs finished, successful or not. */
  processed: number;
  /** Handler runs that threw. */
  failures: number;
  /** How long the longest-waiting key has been waiting to be handled (queued, or re-added while running); 0 when none. */
  longestWaitMs: number;
  /** How long the longest-running handler has been running; 0 when none runs. A stuck worker shows here. */
  longestRunningMs: number;
}

export type Handler<K> = (key: K) => Promise<void>;

const DEFAULT_BASE_MS = 100;
const DEFAULT_MAX_MS = 30_000;
const STOP = Symbol('stop');

export class WorkQueue<K = string> {
  private readonly clock: TimerClock;
  private readonly timers: Timers<K>;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly jitter: { factor: number; random: () => number } | undefined;
  private readonly onError: (error: unknown, key: K, failures: number) => void;

  /** Keys ready for a worker, in the order they became ready (a Set keeps insertion order). */
  private readonly queue = new Set<K>();
  /** Urgent keys ready for a worker, taken before any in `queue`; a key is in one of the two at most. */
  private readonly fast = new Set<K>();
  /** Keys made urgent while a handler has them: they go to `fast` when it returns. */
  private readonly urgentAfterRun = new Set<K>();
  /** Keys that need a run: those in `queue`, plus those added again while a handler has them. */
  private readonly dirty = new Set<K>();
  /** Keys a handler has now → when it took them; insertion order makes the first entry the oldest. */
  private readonly processing = new Map<K, number>();
  /** Dirty key → when it became dirty; insertion order makes the first entry the oldest. */
  private readonly waitingSince = new Map<K, number>();
  private readonly failureCounts = new Map<K, number>();
  /** Keys whose running handler called addRateLimited itself, so its return must not reset the backoff. */
  private readonly backedOffInRun = new Set<K>();
  /** Idle workers, each waiting for a key to be queued. */
  private readonly idle: (() => void)[] = [];
  /** The reserve worker, idle: it takes urgent keys only, so one never waits for a routine run to end. */
  private readonly idleReserve: (() => void)[] = [];
  private workers: Promise<void>[] | undefined;
  private stopping = false;
  private counters = { adds: 0, retries: 0, processed: 0, failures: 0 };

  constructor(options: WorkQueueOptions<K> = {}) {
    this.clock = options.clock ?? systemClock;
    this.timers = new Timers<K>((key) => this.add(key), { clock: this.clock });
    this.baseMs = options.backoff?.baseMs ?? DEFAULT_BASE_MS;
    this.maxMs = options.backoff?.maxMs ?? DEFAULT_MAX_MS;
    const jitter = options.backoff?.jitter;
    this.jitter = jitter && { factor: jitter.factor, random: mulberry32(jitter.seed) };
    this.onError =
      options.onError ??
      ((error, key, failures) =>
        console.error(`work queue: ${String(key)} failed (${failures} in a row):`, error));
  }

  /** Queues the key now. A key already waiting is not queued twice; one being handled runs once more after. */
  add(key: K): void {
    if (this.stopping || this.dirty.has(key)) return;
    this.counters.adds++;
    this.dirty.add(key);
    this.waitingSince.set(key, this.clock.now());
    if (this.processing.has(key)) return; // done() queues it when the running handler returns
    this.queue.add(key);
    this.idle.shift()?.();
  }

  /**
   * Queues the key ahead of every key add() queued: a Rollout whose check round just failed must not
   * wait behind a backlog of routine reconciles to roll back. Still once, and never two workers at once:
   * a key already waiting moves up; one being handled runs once more right after.
   */
  addUrgent(key: K): void {
    if (this.stopping) return;
    if (this.processing.has(key)) {
      this.urgentAfterRun.add(key);
      return this.add(key);
    }
    if (this.fast.has(key)) return;
    if (!this.dirty.has(key)) {
      this.counters.adds++;
      this.dirty.add(key);
      this.waitingSince.set(key, this.clock.now());
    }
    this.queue.delete(key);
    this.fast.add(key);
    this.wakeForUrgent();
  }

  /**
   * Queues the key after `ms`, through the shared timers. A key already waiting for an earlier time
   * keeps that time; a later request never postpones it.
   */
  addAfter(key: K, ms: number): void {
    if (this.stopping) return;
    if (ms <= 0) return this.add(key);
    this.timers.schedule(key, this.clock.now() + ms);
  }

  /** Queues the key after its backoff (base × 2^consecutive failures, capped) and counts the failure; returns the delay. */
  addRateLimited(key: K): number {
    const failures = this.failureCounts.get(key) ?? 0;
    this.failureCounts.set(key, failures + 1);
    if (this.processing.has(key)) this.backedOffInRun.add(key);
    this.counters.retries++;
    // 2^52 is far past any ceiling; the cap keeps the exponent from reaching Infinity.
    let delay = Math.min(this.maxMs, this.baseMs * 2 ** Math.min(failures, 52));
    if (this.jitter) delay += delay * this.jitter.factor * this.jitter.random();
    delay = Math.round(delay);
    this.addAfter(key, delay);
    return delay;
  }

  /**
   * Resets the key's backoff. The queue does this itself when a handler returns, unless that handler
   * called addRateLimited for its own key (a transient error handled as a value rather than thrown).
   */
  forget(key: K): void {
    this.failureCounts.delete(key);
  }

  /** Consecutive failures recorded for the key (its next backoff is base × 2^this). */
  failures(key: K): number {
    return this.failureCounts.get(key) ?? 0;
  }

  /** Keys waiting for a worker. */
  len(): number {
    return this.queue.size + this.fast.size;
  }

  stats(): WorkQueueStats {
    const oldest = this.waitingSince.values().next();
    const running = this.processing.values().next();
    return {
      longestRunningMs: running.done ? 0 : Math.max(0, this.clock.now() - running.value),
      depth: this.len(),
      delayed: this.timers.size(),
      inFlight: this.processing.size,
      ...this.counters,
      longestWaitMs: oldest.done ? 0 : Math.max(0, this.clock.now() - oldest.value),
    };
  }

  /**
   * Starts `workers` loops that take keys in order and await `handler(key)`, and one reserve loop that
   * takes urgent keys only: when every worker awaits a routine reconcile, a rollback still starts at once.
   * A handler that throws (or rejects) has its key retried with backoff and its error passed to onError;
   * other keys go on. A handler that returns resets its key's backoff (see forget).
   */
  run(workers: number, handler: Handler<K>): void {
    if (this.workers) throw new Error('work queue: run() was already called');
    if (!Number.isInteger(workers) || workers < 1) throw new RangeError(`work queue: ${workers} workers`);
    this.workers = [
      ...Array.from({ length: workers }, () => this.work(handler, false)),
      this.work(handler, true),
    ];
  }

  /**
   * Stops taking keys and drops pending delays, waits for the handlers running now to finish, and
   * resolves. Keys still queued are dropped: the next controller's informers list them again.
   */
  async shutdown(): Promise<void> {
    if (!this.stopping) {
      this.stopping = true;
      this.timers.stop();
      for (const wake of [...this.idle.splice(0), ...this.idleReserve.splice(0)]) wake();
    }
    await Promise.all(this.workers ?? []);
    this.queue.clear();
    this.fast.clear();
    this.urgentAfterRun.clear();
    this.dirty.clear();
    this.waitingSince.clear();
  }

  private async work(handler: Handler<K>, reserve: boolean): Promise<void> {
    for (;;) {
      const key = await this.take(reserve);
      if (key === STOP) return;
      try {
        await handler(key);
        if (!this.backedOffInRun.has(key)) this.forget(key);
      } catch (error) {
        this.counters.failures++;
        if (!this.backedOffInRun.has(key)) this.addRateLimited(key);
        try {
          this.onError(error, key, this.failures(key));
        } catch {
          // A failing error reporter must not take a worker down with it.
        }
      } finally {
        this.backedOffInRun.delete(key);
        this.counters.processed++;
        this.done(key);
      }
    }
  }

  private async take(reserve: boolean): Promise<K | typeof STOP> {
    for (;;) {
      if (this.stopping) return STOP;
      const urgent = this.fast.values().next();
      const next = urgent.done && !reserve ? this.queue.values().next() : urgent;
      if (!next.done) {
        const key = next.value;
        this.fast.delete(key);
        this.queue.delete(key);
        this.dirty.delete(key);
        this.waitingSince.delete(key);
        this.processing.set(key, this.clock.now());
        return key;
      }
      await new Promise<void>((wake) => (reserve ? this.idleReserve : this.idle).push(wake));
    }
  }

  /** An urgent key is ready: the reserve worker takes it if idle, else any idle worker. */
  private wakeForUrgent(): void {
    (this.idleReserve.shift() ?? this.idle.shift())?.();
  }

  private done(key: K): void {
    this.processing.delete(key);
    const urgent = this.urgentAfterRun.delete(key);
    if (this.stopping || !this.dirty.has(key)) return;
    if (urgent) {
      this.fast.add(key);
      this.wakeForUrgent();
    } else {
      this.queue.add(key);
      this.idle.shift()?.();
    }
  }
}

/** A small seeded PRNG (mulberry32): jitter that tests and benchmarks can replay. */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
