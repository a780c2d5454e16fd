// Rounds of metric checks, run beside the work queue: a reconcile that finds a round due starts it
// and goes on without it; the finished round brings the Rollout back, which then takes its results.
import type { CheckResult } from '../analysis/types.js';
import type { Rollout } from '../api/v1alpha1.js';
import type { CheckRunner } from './checks.js';
import type { Lookups } from './validate.js';

interface Round {
  /** The generation and due time it answers; a spec edit or a new due time makes it another round. */
  due: string;
  results?: CheckResult[];
}

export interface CheckRoundsOptions {
  /** A round finished: reconcile the Rollout again. */
  done(key: string): void;
  /** A round threw, which the runner never should: a bug, logged; the Rollout is retried with backoff. */
  failed(key: string, err: unknown): void;
}

/**
 * A slow or unreachable Prometheus (5 s timeouts) must never hold the workers that abort, roll back or
 * delete other Rollouts, so no reconcile awaits a query.
 */
export class CheckRounds {
  private readonly rounds = new Map<string, Round>();

  constructor(
    private readonly runner: CheckRunner,
    private readonly opts: CheckRoundsOptions,
  ) {}

  /** The results of the round due now, once; [] while Prometheus is still being asked (or just asked). */
  take(key: string, rollout: Rollout, lookups: Lookups, now: Date): CheckResult[] {
    const due = `${rollout.metadata?.generation}/${rollout.status?.analysis?.nextCheckAt ?? ''}`;
    const round = this.rounds.get(key);
    if (round?.due === due) {
      if (!round.results) return [];
      this.rounds.delete(key);
      return round.results;
    }
    const started: Round = { due };
    this.rounds.set(key, started);
    void this.runner.run(rollout, lookups, now).then(
      (results) => {
        if (this.rounds.get(key) !== started) return; // forgotten or replaced meanwhile
        started.results = results;
        this.opts.done(key);
      },
      (err: unknown) => {
        if (this.rounds.get(key) === started) this.rounds.delete(key);
        this.opts.failed(key, err);
      },
    );
    return [];
  }

  /** Whether a round for the Rollout is out, its results not in yet. */
  asking(key: string): boolean {
    const r = this.rounds.get(key);
    return r !== undefined && !r.results;
  }

  forget(key: string): void {
    this.rounds.delete(key);
  }
}
