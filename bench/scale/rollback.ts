// How long a faulty Rollout's rollback took the engine: from its failing check round (due, begun, and answered
// by Prometheus, from its query log) to the API server receiving the TrafficSplit write that routes the
// stable Service alone, found in the audit log.
import type { Rollout } from '../../src/api/v1alpha1.js';
import { auditTime, isCountedStage, type AuditEvent, type ClientFilter } from '../audit-tally.js';

export interface RollbackTimes {
  /** The failing measurement's `at`: the reconcile that began the round (its Prometheus query follows). */
  knownAt: number;
  /** status.analysis.nextCheckAt the round answered: when it was due. Undefined when status never said. */
  dueAt: number | undefined;
  /**
   * When Prometheus logged the failing round's query (evaluated at `knownAt`) as answered: from here to
   * `writtenAt` is the engine's own part. Undefined when the query log does not hold it.
   */
  answeredAt: number | undefined;
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
  answered: (evaluatedAt: number) => number | undefined = () => undefined,
): RollbackTimes | undefined {
  const failed = final?.status?.analysis?.measurements?.find((m) => m.verdict === 'Fail');
  if (!failed) return undefined;
  const knownAt = auditTime(failed.at) || Date.parse(failed.at);
  if (!Number.isFinite(knownAt)) return undefined;
  return {
    knownAt,
    dueAt: roundDue(nextCheckAts, knownAt),
    answeredAt: answered(Date.parse(failed.at)),
    writtenAt: stableAloneWriteAfter(knownAt),
  };
}

/** Whether a body routes all traffic to `stable`: a `backends` array (anywhere in it) of that Service alone at 100. */
export function routesStableAlone(body: unknown, stable: string): boolean {
  const found = findBackends(body);
  if (!found || found.length !== 1) return false;
  const only = found[0] as { service?: unknown; weight?: unknown } | null;
  return only?.service === stable && Number(only.weight) === 100;
}

/** The first `backends` array in a merge patch, an update's object or a JSON patch's values. */
function findBackends(v: unknown): unknown[] | undefined {
  if (Array.isArray(v)) {
    for (const item of v) {
      const inner = findBackends(item);
      if (inner) return inner;
    }
    return undefined;
  }
  if (v === null || typeof v !== 'object') return undefined;
  const o = v as Record<string, unknown>;
  if (Array.isArray(o.backends)) return o.backends;
  // A JSON patch operation on /spec/backends carries the array as its value.
  if (typeof o.path === 'string' && /\/backends$/.test(o.path) && Array.isArray(o.value)) return o.value;
  for (const value of Object.values(o)) {
    const inner = findBackends(value);
    if (inner) return inner;
  }
  return undefined;
}

/** From the audit log, per TrafficSplit, when the client's accepted writes (not creates) routed its stable Service alone. */
export class StableAloneWrites {
  private readonly times = new Map<string, number[]>();

  constructor(
    private readonly isClient: ClientFilter,
    /** TrafficSplit name to its stable Service. */
    private readonly stableOf: (split: string) => string | undefined,
  ) {}

  add(e: AuditEvent): void {
    const name = e.objectRef?.name;
    if (e.objectRef?.resource !== 'trafficsplits' || !name || (e.verb !== 'patch' && e.verb !== 'update'))
      return;
    if (!isCountedStage(e) || !this.isClient(e)) return;
    const stable = this.stableOf(name);
    const code = e.responseStatus?.code ?? 0;
    if (!stable || code < 200 || code >= 300 || !routesStableAlone(e.requestObject, stable)) return;
    const list = this.times.get(name) ?? [];
    list.push(auditTime(e.requestReceivedTimestamp));
    this.times.set(name, list);
  }

  /** The first stable-alone write of `split` at or after `since`, or undefined. */
  after(split: string, since: number): number | undefined {
    return (this.times.get(split) ?? []).filter((t) => t >= since).sort((a, b) => a - b)[0];
  }
}

/**
 * Prometheus's query log (`global.query_log_file`): one JSON line per query it answered, written when the
 * query was done (`ts`, ms), with its text and evaluation time (`params.end`, ms). A query asked twice for
 * one evaluation time (a retry) keeps its first answer.
 */
export class QueryAnswers {
  private readonly answered = new Map<string, number>();

  add(line: string): void {
    let entry: { params?: { query?: unknown; end?: unknown }; ts?: unknown };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      return; // a line cut short as Prometheus stopped
    }
    const { query, end } = entry.params ?? {};
    const at = typeof entry.ts === 'string' ? Date.parse(entry.ts) : NaN;
    if (typeof query !== 'string' || typeof end !== 'string' || !Number.isFinite(at)) return;
    const key = QueryAnswers.key(query, Date.parse(end));
    if (!this.answered.has(key)) this.answered.set(key, at);
  }

  /** When `query` evaluated at `evaluatedAt` (ms) was answered, or undefined. */
  at(query: string, evaluatedAt: number): number | undefined {
    return this.answered.get(QueryAnswers.key(query, evaluatedAt));
  }

  private static key(query: string, evaluatedAt: number): string {
    return `${evaluatedAt}\n${query}`;
  }
}
