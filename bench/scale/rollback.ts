// How long a faulty Rollout's rollback took the engine: from its failing check round (when it began, and
// when it was due) to the API server receiving the TrafficSplit write that routes the stable Service alone.
import type { Rollout } from '../../src/api/v1alpha1.js';
import { auditTime } from './audit.js';

export interface RollbackTimes {
  /** The failing measurement's `at`: the reconcile that began the round (its Prometheus query follows). */
  knownAt: number;
  /** status.analysis.nextCheckAt the round answered: when it was due. Undefined when status never said. */
  dueAt: number | undefined;
  /** The audit log's receive time of the stable-alone TrafficSplit write; undefined when none was found. */
  writtenAt: number | undefined;
}

/** The latest due time at or before `knownAt` (a round never starts before it is due). */
export function roundDue(nextCheckAts: Iterable<number>, knownAt: number): number | undefined {
  let due: number | undefined;
  for (const t of nextCheckAts) if (t <= knownAt && (due === undefined || t > due)) due = t;
  return due;
}

/**
 * The times of one faulty Rollout's rollback from its final status, the due times seen in its status
 * over the run, and the first stable-alone write at or after the failing round began.
 */
export function rollbackTimes(
  final: Rollout | undefined,
  nextCheckAts: Iterable<number>,
  stableAloneWriteAfter: (since: number) => number | undefined,
): RollbackTimes | undefined {
  const failed = final?.status?.analysis?.measurements?.find((m) => m.verdict === 'Fail');
  if (!failed) return undefined;
  const knownAt = auditTime(failed.at) || Date.parse(failed.at);
  if (!Number.isFinite(knownAt)) return undefined;
  return { knownAt, dueAt: roundDue(nextCheckAts, knownAt), writtenAt: stableAloneWriteAfter(knownAt) };
}
