// The controller's client-side rate limit on API requests: a token bucket as client-go's (burst tokens
// to start, refilled at qps per second), whose waiters go out strictly in the order they asked.

/** The clock the bucket reads and arms; tests pass a fake one (@sinonjs/fake-timers). */
export interface BucketClock {
  /** Milliseconds that only move forward. */
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Globals looked up on each call, so fake timers installed globally drive it too. */
export const systemBucketClock: BucketClock = {
  now: () => performance.now(),
  setTimeout: (callback, ms) => globalThis.setTimeout(callback, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as Parameters<typeof clearTimeout>[0]),
};

export interface RateLimit {
  /** Requests per second, sustained. */
  qps: number;
  /** Requests that may go at once after a quiet spell (the bucket's size). */
  burst: number;
}

/**
 * client-go's defaults (5/10) suit a command-line client, and controller-runtime's common 20-100 a
 * controller of a few hundred objects. Perch's design point is 1,000 runs of about 10 writes each
 * finishing within a minute: some 200 writes/s, so a lower default would be the bottleneck itself (at 50/s
 * those runs take over 3 minutes). 200/s still keeps a runaway controller from taking all of an API server
 * (this 2-core sandbox's takes 230-360 patches/s); the burst absorbs a thousand Rollouts created at once.
 * Lower both on an API server shared with much else.
 */
export const DEFAULT_RATE_LIMIT: RateLimit = { qps: 200, burst: 400 };

/** What is wrong with a limit, naming the flags (and the values as written, when given); undefined when usable. */
export function rateLimitError(
  limit: RateLimit,
  written: { qps?: string; burst?: string } = {},
): string | undefined {
  if (!(Number.isFinite(limit.qps) && limit.qps > 0))
    return `--kube-api-qps ${written.qps ?? limit.qps}: give a positive number of requests per second, such as ${DEFAULT_RATE_LIMIT.qps}`;
  if (!(Number.isInteger(limit.burst) && limit.burst >= 1))
    return `--kube-api-burst ${written.burst ?? limit.burst}: give a whole number of requests, at least 1, such as ${DEFAULT_RATE_LIMIT.burst}`;
  return undefined;
}

interface Waiter {
  go: () => void;
  onAbort: () => void;
}

/** Refills are sums of fractions: a token a rounding error short of whole has come. */
const WHOLE = 1 - 1e-9;

export class TokenBucket {
  readonly limit: RateLimit;
  private readonly clock: BucketClock;
  private tokens: number;
  private filledAt: number;
  /** Requests waiting for a token, first come first served. */
  private readonly queue: Waiter[] = [];
  private timer: unknown;

  constructor(limit: RateLimit, clock: BucketClock = systemBucketClock) {
    const wrong = rateLimitError(limit);
    if (wrong) throw new RangeError(wrong);
    this.limit = { ...limit };
    this.clock = clock;
    this.tokens = limit.burst;
    this.filledAt = clock.now();
  }

  /**
   * Resolves when the caller may send one request: at once while tokens are left and nobody waits,
   * else in turn. An aborted signal takes the caller out of the line and rejects with its reason.
   */
  take(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason as Error);
    this.refill();
    if (this.queue.length === 0 && this.tokens >= WHOLE) {
      this.tokens -= 1;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        go: () => {
          signal?.removeEventListener('abort', waiter.onAbort);
          resolve();
        },
        onAbort: () => {
          const at = this.queue.indexOf(waiter);
          if (at >= 0) this.queue.splice(at, 1);
          if (this.queue.length === 0) this.disarm();
          reject(signal?.reason as Error);
        },
      };
      signal?.addEventListener('abort', waiter.onAbort, { once: true });
      this.queue.push(waiter);
      if (this.queue.length === 1) this.arm();
    });
  }

  /** Requests waiting for a token now. */
  waiting(): number {
    return this.queue.length;
  }

  private refill(): void {
    const now = this.clock.now();
    this.tokens = Math.min(this.limit.burst, this.tokens + ((now - this.filledAt) * this.limit.qps) / 1000);
    this.filledAt = now;
  }

  /** One timer, for the head of the line: when it fires, everyone a token has come for goes, in order. */
  private arm(): void {
    const missing = 1 - this.tokens;
    const ms = Math.max(0, Math.ceil((missing * 1000) / this.limit.qps));
    this.timer = this.clock.setTimeout(() => this.release(), ms);
  }

  private disarm(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private release(): void {
    this.timer = undefined;
    this.refill();
    while (this.queue.length > 0 && this.tokens >= WHOLE) {
      this.tokens -= 1;
      this.queue.shift()!.go();
    }
    if (this.queue.length > 0) this.arm();
  }
}
