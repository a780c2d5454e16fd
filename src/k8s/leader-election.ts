// Leader election through a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it: a Lease
// expires by when this process last saw it change, on its own monotonic clock; a leader stops writing first.
import {
  CoordinationV1Api,
  Observable,
  V1MicroTime,
  type ConfigurationOptions,
  type KubeConfig,
  type V1Lease,
} from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { formatDuration } from '../machine/duration.js';
import { apiError } from './api-error.js';
import { configureClient } from './client-config.js';

/** client-go's: a standby waits up to this factor of the retry period more, so standbys do not stampede. */
export const JITTER_FACTOR = 1.2;

export interface LeaderElectionTimings {
  /** How long a standby waits, from the last change of the Lease it saw, before taking it over. */
  leaseDurationMs: number;
  /** How long a leader keeps leading without a successful renewal; it stops writing then. */
  renewDeadlineMs: number;
  /** How often to try to acquire or renew. */
  retryPeriodMs: number;
}

/** client-go's defaults. */
export const DEFAULT_TIMINGS: LeaderElectionTimings = {
  leaseDurationMs: 15_000,
  renewDeadlineMs: 10_000,
  retryPeriodMs: 2_000,
};

const FLAGS: Record<keyof LeaderElectionTimings, string> = {
  leaseDurationMs: '--leader-elect-lease-duration',
  renewDeadlineMs: '--leader-elect-renew-deadline',
  retryPeriodMs: '--leader-elect-retry-period',
};

const ms = (n: number) => (Number.isInteger(n / 1000) ? formatDuration(n) : `${n}ms`);

/** What is wrong with these timings, naming the flags; undefined when they keep one leader at a time. */
export function timingsError(t: LeaderElectionTimings): string | undefined {
  for (const k of Object.keys(FLAGS) as (keyof LeaderElectionTimings)[]) {
    if (!(Number.isFinite(t[k]) && t[k] > 0)) return `${FLAGS[k]} ${t[k]}: give a positive duration`;
  }
  if (t.leaseDurationMs <= t.renewDeadlineMs)
    return (
      `${FLAGS.leaseDurationMs} (${ms(t.leaseDurationMs)}) must be longer than ${FLAGS.renewDeadlineMs} ` +
      `(${ms(t.renewDeadlineMs)}): a leader that cannot renew must stop before a standby may take over`
    );
  if (t.renewDeadlineMs <= JITTER_FACTOR * t.retryPeriodMs)
    return (
      `${FLAGS.renewDeadlineMs} (${ms(t.renewDeadlineMs)}) must be longer than ${JITTER_FACTOR} × ` +
      `${FLAGS.retryPeriodMs} (${ms(t.retryPeriodMs)}): a leader must get more than one try to renew`
    );
  return undefined;
}

/** The clock election runs on. Tests pass one made with @sinonjs/fake-timers. */
export interface ElectionClock {
  /** Milliseconds that only move forward: every expiry and deadline is judged on this clock alone. */
  monotonic(): number;
  /** Wall-clock milliseconds: only written into the Lease (renewTime, acquireTime) for people to read. */
  wall(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const TEST_CLOCK_OFFSET_ENV = 'PERCH_TEST_CLOCK_OFFSET_MS';

/**
 * TEST ONLY: PERCH_TEST_CLOCK_OFFSET_MS shifts the wall clock this process writes into the Lease
 * (renewTime, acquireTime), so a test can run a replica whose clock is skewed. Election ignores it.
 */
export function testClockOffsetMs(env: NodeJS.ProcessEnv = process.env): number {
  const text = env[TEST_CLOCK_OFFSET_ENV];
  if (text === undefined || text === '') return 0;
  const n = Number(text);
  if (!Number.isInteger(n))
    throw new Error(`${TEST_CLOCK_OFFSET_ENV}=${text}: give whole milliseconds, such as -30000 (tests only)`);
  return n;
}

/** The process's clocks; globals are looked up on each call, so fake timers installed globally drive it. */
export function systemClock(wallOffsetMs = testClockOffsetMs()): ElectionClock {
  return {
    monotonic: () => performance.now(),
    wall: () => Date.now() + wallOffsetMs,
    setTimeout: (callback, delay) => globalThis.setTimeout(callback, delay),
    clearTimeout: (handle) => globalThis.clearTimeout(handle as Parameters<typeof clearTimeout>[0]),
  };
}

/** hostname_random, as client-go's callers usually make it. */
export function newIdentity(): string {
  return `${hostname()}_${randomBytes(4).toString('hex')}`;
}

export interface LeaderElectionOptions extends Partial<LeaderElectionTimings> {
  namespace: string;
  name: string;
  /** Who we are: the holderIdentity written to the Lease. Default: newIdentity(). */
  identity?: string;
  onError?: (message: string) => void;
  clock?: ElectionClock;
}

/** The Lease as this process last saw it, and when (monotonic) it saw it change. */
interface Observed {
  record: string;
  leaseMs: number;
  at: number;
}

type State = 'idle' | 'acquiring' | 'leading' | 'lost' | 'stopped';

/** Request options that abort the request with `signal`, on top of the client's own timeout. */
function abortWith(signal: AbortSignal): ConfigurationOptions {
  return {
    middleware: [
      {
        pre: (ctx) => {
          const own = ctx.getSignal();
          ctx.setSignal(own ? AbortSignal.any([own, signal]) : signal);
          return new Observable(Promise.resolve(ctx));
        },
        post: (res) => new Observable(Promise.resolve(res)),
      },
    ],
    middlewareMergeStrategy: 'append',
  };
}

export class LeaderElector {
  readonly identity: string;
  readonly timings: LeaderElectionTimings;
  private readonly api: CoordinationV1Api;
  private readonly clock: ElectionClock;
  private readonly leaseSeconds: number;
  private state: State = 'idle';
  private observed: Observed | undefined;
  /** Monotonic start of the last attempt that acquired or renewed: leading ends renewDeadline after it. */
  private renewedAt = -Infinity;
  private lostReason = '';
  private retryTimer: unknown;
  private deadlineTimer: unknown;
  private inFlight: AbortController | undefined;
  private onLost: ((reason: string) => void) | undefined;

  constructor(
    private readonly kc: KubeConfig,
    private readonly opts: LeaderElectionOptions,
  ) {
    this.timings = {
      leaseDurationMs: opts.leaseDurationMs ?? DEFAULT_TIMINGS.leaseDurationMs,
      renewDeadlineMs: opts.renewDeadlineMs ?? DEFAULT_TIMINGS.renewDeadlineMs,
      retryPeriodMs: opts.retryPeriodMs ?? DEFAULT_TIMINGS.retryPeriodMs,
    };
    const wrong = timingsError(this.timings);
    if (wrong) throw new Error(`leader election: ${wrong}`);
    this.api = kc.makeApiClient(CoordinationV1Api);
    this.clock = opts.clock ?? systemClock();
    this.identity = opts.identity ?? newIdentity();
    this.leaseSeconds = Math.ceil(this.timings.leaseDurationMs / 1000);
  }

  private get lease(): string {
    return `${this.opts.namespace}/${this.opts.name}`;
  }

  /** Leading now, by this process's own clock: a renewal succeeded less than renewDeadline ago. */
  isLeader(): boolean {
    return this.state === 'leading' && this.clock.monotonic() < this.renewedAt + this.timings.renewDeadlineMs;
  }

  /** Why this process may not write now; undefined while it leads. */
  writeRefusal(): string | undefined {
    if (this.isLeader()) return undefined;
    if (this.state === 'leading')
      return `the Lease ${this.lease} was not renewed within the renew deadline (${ms(this.timings.renewDeadlineMs)})`;
    if (this.state === 'lost') return `leadership of the Lease ${this.lease} was lost: ${this.lostReason}`;
    return `this process does not hold the Lease ${this.lease}`;
  }

  /**
   * Resolves once this process holds the Lease. From now on writes through the KubeConfig, other than
   * to Leases, go out only while it leads. `onLost` runs once, at the renew deadline at the latest.
   */
  acquire(onLost: (reason: string) => void): Promise<void> {
    if (this.state !== 'idle') throw new Error(`leader election for ${this.lease} was already started`);
    configureClient(this.kc, { writeFence: () => this.writeRefusal() });
    this.onLost = onLost;
    this.state = 'acquiring';
    return new Promise((resolve) => {
      const loop = async () => {
        this.retryTimer = undefined;
        const wasLeading = this.state === 'leading';
        const ok = await this.tryAcquireOrRenew();
        if (this.state !== 'acquiring' && this.state !== 'leading') return;
        if (ok && !wasLeading) {
          this.state = 'leading';
          this.armDeadline();
          resolve();
        } else if (ok) this.armDeadline();
        const { retryPeriodMs } = this.timings;
        const wait =
          this.state === 'leading' ? retryPeriodMs : retryPeriodMs * (1 + Math.random() * JITTER_FACTOR);
        this.retryTimer = this.clock.setTimeout(() => void loop(), wait);
      };
      void loop();
    });
  }

  /** Stops electing; when leading, releases the Lease so a standby takes over at once. */
  async release(): Promise<void> {
    const held = this.state === 'leading';
    this.stop('stopped');
    if (!held) return;
    const { name, namespace } = this.opts;
    try {
      const lease = await this.api.readNamespacedLease({ name, namespace });
      if (lease.spec?.holderIdentity !== this.identity) return;
      const now = new V1MicroTime(this.clock.wall());
      lease.spec = { ...lease.spec, holderIdentity: undefined, leaseDurationSeconds: 1, renewTime: now };
      // The resourceVersion read makes this a compare-and-swap: a Lease taken over meanwhile stays taken.
      await this.api.replaceNamespacedLease({ name, namespace, body: lease });
    } catch (err) {
      this.opts.onError?.(`releasing the Lease: ${apiError(err).message}`);
    }
  }

  /**
   * One attempt, as client-go's tryAcquireOrRenew: read the Lease, note when its record changed, take
   * it when it is ours, free, or unchanged for a lease duration by our clock. True when we hold it now.
   */
  async tryAcquireOrRenew(): Promise<boolean> {
    const started = this.clock.monotonic();
    const abort = new AbortController();
    this.inFlight = abort;
    // A leader's attempt is cut at its deadline (armDeadline); a standby's after one renew deadline.
    const bound =
      this.state === 'leading'
        ? undefined
        : this.clock.setTimeout(() => abort.abort(), this.timings.renewDeadlineMs);
    try {
      const ok = await this.attempt(abortWith(abort.signal));
      if (ok && !abort.signal.aborted) this.renewedAt = started;
      return ok && !abort.signal.aborted;
    } finally {
      if (bound !== undefined) this.clock.clearTimeout(bound);
      if (this.inFlight === abort) this.inFlight = undefined;
    }
  }

  private async attempt(options: ConfigurationOptions): Promise<boolean> {
    const { name, namespace } = this.opts;
    let lease: V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ name, namespace }, options);
    } catch (err) {
      const e = apiError(err);
      if (e.kind !== 'notFound') return this.failed('reading', e.message);
      const now = new V1MicroTime(this.clock.wall());
      try {
        const created = await this.api.createNamespacedLease(
          {
            namespace,
            body: {
              metadata: { name, namespace },
              spec: {
                holderIdentity: this.identity,
                leaseDurationSeconds: this.leaseSeconds,
                acquireTime: now,
                renewTime: now,
                leaseTransitions: 0,
              },
            },
          },
          options,
        );
        this.observe(created);
        return true;
      } catch (e2) {
        const c = apiError(e2);
        return c.kind === 'conflict' ? false : this.failed('creating', c.message);
      }
    }
    this.observe(lease);
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const mine = holder === this.identity;
    if (!mine && this.state === 'leading') {
      this.lose(`the Lease is held by ${holder || 'no one'} now`);
      return false;
    }
    if (!mine && holder !== '' && !this.expired()) return false;
    const now = new V1MicroTime(this.clock.wall());
    lease.spec = {
      ...spec,
      holderIdentity: this.identity,
      leaseDurationSeconds: this.leaseSeconds,
      renewTime: now,
      acquireTime: mine ? spec.acquireTime : now,
      leaseTransitions: (spec.leaseTransitions ?? 0) + (mine ? 0 : 1),
    };
    try {
      // The resourceVersion read above makes this a compare-and-swap: two candidates cannot both win.
      this.observe(await this.api.replaceNamespacedLease({ name, namespace, body: lease }, options));
      return true;
    } catch (err) {
      const e = apiError(err);
      return e.kind === 'conflict' ? false : this.failed('updating', e.message);
    }
  }

  private failed(doing: string, message: string): false {
    if (this.state !== 'lost' && this.state !== 'stopped')
      this.opts.onError?.(`${doing} the Lease ${this.lease}: ${message}`);
    return false;
  }

  /** Notes the record and, when it differs from the last one seen, the monotonic time it changed. */
  private observe(lease: V1Lease): void {
    const s = lease.spec ?? {};
    const stamp = (t: Date | undefined) => (t ? new Date(t).toISOString() : '');
    const record = JSON.stringify([
      s.holderIdentity ?? '',
      s.leaseDurationSeconds,
      stamp(s.acquireTime),
      stamp(s.renewTime),
      s.leaseTransitions,
      lease.metadata?.resourceVersion,
    ]);
    if (this.observed?.record === record) return;
    this.observed = {
      record,
      // A holder asking for longer than we would is given it: waiting longer is always safe.
      leaseMs: Math.max(this.timings.leaseDurationMs, (s.leaseDurationSeconds ?? 0) * 1000),
      at: this.clock.monotonic(),
    };
  }

  /** Unchanged for a whole lease duration since we saw it change; the holder's timestamps are never read. */
  private expired(): boolean {
    const o = this.observed;
    return o === undefined || this.clock.monotonic() >= o.at + o.leaseMs;
  }

  private armDeadline(): void {
    if (this.deadlineTimer !== undefined) this.clock.clearTimeout(this.deadlineTimer);
    const left = this.renewedAt + this.timings.renewDeadlineMs - this.clock.monotonic();
    this.deadlineTimer = this.clock.setTimeout(
      () => this.lose(`not renewed within the renew deadline (${ms(this.timings.renewDeadlineMs)})`),
      Math.max(0, left),
    );
  }

  private lose(reason: string): void {
    if (this.state !== 'leading') return;
    this.lostReason = reason;
    this.stop('lost');
    this.onLost?.(reason);
  }

  private stop(state: 'lost' | 'stopped'): void {
    this.state = state;
    for (const t of [this.retryTimer, this.deadlineTimer]) if (t !== undefined) this.clock.clearTimeout(t);
    this.retryTimer = this.deadlineTimer = undefined;
    this.inFlight?.abort();
  }
}
