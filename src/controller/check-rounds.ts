// Rounds of metric checks, run beside the work queue: a reconcile that finds a round due starts it
// and goes on without it; the finished round brings the Rollout back (a failing one ahead of the
// backlog), which then takes its results.
import type { CheckResult } from '../analysis/types.js';
import type { Rollout } from '../api/v1alpha1.js';
import { parseDuration } from '../machine/duration.js';
import type { CheckRunner } from './checks.js';
import { Timers, systemClock, type TimerClock } from './timers.js';
import type { Lookups } from './validate.js';
import type { WorkQueue } from './work-queue.js';

interface Round {
  /** The generation and due time it answers; a spec edit or a new due time makes it another round. */
  due: string;
  results?: CheckResult[];
  /** Set while the round waits for its turn (spread after a restart): what it will run with. */
  waiting?: { rollout: Rollout; lookups: Lookups };
}

export interface CheckRoundsOptions {
  /**
   * Where a finished round brings its Rollout back. A round with a failed check goes ahead of the
   * backlog (addUrgent): its reconcile may roll back, and the time from a failing sample to stable at
   * 100 % must not grow with the number of Rollouts queued before it.
   */
  queue: Pick<WorkQueue<string>, 'add' | 'addUrgent'>;
  /** A round threw, which the runner never should: a bug, logged; the Rollout is retried with backoff. */
  failed(key: string, err: unknown): void;
  clock?: TimerClock;
}

/**
 * A slow or unreachable Prometheus (5 s timeouts) must never hold the workers that abort, roll back or
 * delete other Rollouts, so no reconcile awaits a query.
 */
export class CheckRounds {
  private readonly rounds = new Map<string, Round>();
  /** Rounds found overdue at a first look, each waiting for its turn within one interval. */
  private readonly turns: Timers<string>;
  private readonly clock: TimerClock;

  constructor(
    private readonly runner: CheckRunner,
    private readonly opts: CheckRoundsOptions,
  ) {
    this.clock = opts.clock ?? systemClock;
    this.turns = new Timers<string>((key) => this.turnCame(key), { clock: this.clock });
  }

  /**
   * The results of the round due now, once; [] while Prometheus is still being asked (or just asked).
   * `firstLook`: this controller has not reconciled the Rollout before (it just started, or just became
   * leader). A round found overdue then starts at the Rollout's own offset within one interval, not at
   * once: a thousand Rollouts whose rounds fell due while no controller ran would otherwise all ask
   * Prometheus in the same second, and again every interval after.
   */
  take(key: string, rollout: Rollout, lookups: Lookups, now: Date, firstLook = false): CheckResult[] {
    const nextCheckAt = rollout.status?.analysis?.nextCheckAt ?? '';
    const due = `${rollout.metadata?.generation}/${nextCheckAt}`;
    const round = this.rounds.get(key);
    if (round?.due === due) {
      if (!round.results) return [];
      this.rounds.delete(key);
      return round.results;
    }
    this.turns.cancel(key);
    const started: Round = { due };
    this.rounds.set(key, started);
    const intervalMs = parseDuration(rollout.spec.analysis?.interval ?? '') ?? 0;
    const overdue = firstLook && Date.parse(nextCheckAt) < now.getTime();
    const offset = overdue && intervalMs >= 1 ? turnOffset(key, intervalMs) : 0;
    if (offset > 0) {
      started.waiting = { rollout, lookups };
      this.turns.schedule(key, now.getTime() + offset);
    } else {
      this.start(key, started, rollout, lookups, now);
    }
    return [];
  }

  /** Whether a round for the Rollout is out (or waiting for its turn), its results not in yet. */
  asking(key: string): boolean {
    const r = this.rounds.get(key);
    return r !== undefined && !r.results;
  }

  /**
   * Brings the Rollout back for any reason (its watch event, a Service's, the routing object's). While
   * it holds a round with a failed check it goes ahead of the backlog: that round's own urgent requeue
   * is spent when the reconcile waits for the cache to show our last write, and the watch event that
   * then brings the key back must not queue the rollback behind every routine reconcile.
   */
  requeue(key: string): void {
    if (this.rounds.get(key)?.results?.some((r) => r.verdict === 'Fail')) this.opts.queue.addUrgent(key);
    else this.opts.queue.add(key);
  }

  forget(key: string): void {
    this.rounds.delete(key);
    this.turns.cancel(key);
  }

  /** Rounds waiting for their turn are dropped: the next controller finds them due again. */
  stop(): void {
    this.turns.stop();
  }

  /** The round's `now` is when it really starts: the evaluation time and the measurements' `at`. */
  private turnCame(key: string): void {
    const round = this.rounds.get(key);
    if (!round?.waiting) return;
    const { rollout, lookups } = round.waiting;
    round.waiting = undefined;
    this.start(key, round, rollout, lookups, new Date(this.clock.now()));
  }

  private start(key: string, round: Round, rollout: Rollout, lookups: Lookups, now: Date): void {
    void this.runner.run(rollout, lookups, now).then(
      (results) => {
        if (this.rounds.get(key) !== round) return; // forgotten or replaced meanwhile
        round.results = results;
        this.requeue(key);
      },
      (err: unknown) => {
        if (this.rounds.get(key) === round) this.rounds.delete(key);
        this.opts.failed(key, err);
      },
    );
  }
}

/**
 * The Rollout's own place within the interval, from its key (FNV-1a): spread evenly over many keys, and
 * the same on every restart and every replica, so a test or a person can tell when a round will go.
 */
export function turnOffset(key: string, intervalMs: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    hash ^= key.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % Math.floor(intervalMs);
}
