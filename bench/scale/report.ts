// The scale benchmark's figures: what one side (a controller build, or a peer) measured at one N, and
// the rows of BENCHMARKS.md that set the sides side by side, every figure with its ratio.
import type { Figure } from '../run.js';

/**
 * What one controller measured on one run of the workload at one N. An optional field left out is a
 * figure that side did not measure (a peer without the faulty subset, say): its rows say "not measured".
 */
export interface SideResult {
  /** "before (perch-bench-baseline 1a2b3c4)", "after (working tree)", "Flagger v1.36.1". */
  label: string;
  n: number;
  /** From the first Rollout create until every Rollout had ended; undefined when the run timed out. */
  allFinishedMs: number | undefined;
  /** How many had ended (Succeeded, Failed, Aborted), and how many of those in a phase other than expected. */
  finished: number;
  unexpected: number;
  /** Client side: creating all N Rollouts. */
  createMs?: number;
  /** The controller's requests in the run window, by "verb resource". */
  requests: Record<string, number>;
  writes: number;
  /** GETs and LISTs, watches not counted. */
  reads: number;
  watches: number;
  controllerCpuSeconds: number;
  idleRssKiB: number;
  endRssKiB: number;
  hwmKiB: number;
  idleMs: number;
  idleCpuSeconds: number;
  idleRequests: number;
  /** One per faulty Rollout whose rollback was found, in ms, from its failing round's start (see the description). */
  rollbackMs?: number[];
  /** The same from the time the failing round was due (status.analysis.nextCheckAt). */
  rollbackFromDueMs?: number[];
  /** The engine's own part: from Prometheus answering the failing round's query (its query log) to the write. */
  rollbackEngineMs?: number[];
  faulty: number;
  /** Queries Prometheus answered on /api/v1/query over the run, and the check rounds the controller made. */
  prometheusQueries?: number;
  rounds?: number;
  /** Reconciles the controller ran, from its start to the run's end (perch_reconcile_duration_seconds_count). */
  reconciles?: number;
  /** The controller's event-loop delay from its start to the run's end (prom-client's nodejs_eventloop_lag_*). */
  eventLoopDelayMs?: { p99: number | undefined; max: number | undefined };
  /** CPU seconds over the run window. */
  apiServerCpuSeconds: number;
  etcdCpuSeconds: number;
  prometheusCpuSeconds: number;
  /** The run window: from before the Services were created until a settle time after all had ended. */
  runMs: number;
}

/** A peer that was asked for and did not run to the end: its error stands where its figures would. */
export interface PeerFailure {
  label: string;
  error: string;
}

/** The sides measured at one N: the build before the change, the build after it, and the peer when there is one. */
export interface Comparison {
  n: number;
  before?: SideResult;
  after: SideResult;
  peer?: SideResult;
  peerFailure?: PeerFailure;
  /** The build before the change failed at this N (its controller exited, say): its error in its place. */
  beforeFailure?: PeerFailure;
}

/** Nearest-rank percentile; NaN for no values. */
export function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? NaN;
}

/** "×0.31"; "–" when either side is missing or the base is 0. */
export function ratio(after: number | undefined, before: number | undefined): string {
  if (after === undefined || before === undefined || !Number.isFinite(after) || !Number.isFinite(before))
    return '–';
  if (before === 0) return after === 0 ? '×1' : '–';
  const r = after / before;
  return `×${r >= 10 ? r.toFixed(0) : r >= 1 ? r.toFixed(2) : r.toPrecision(2)}`;
}

type Format = (v: number) => string;
const dp =
  (digits: number, unit = ''): Format =>
  (v) =>
    Number.isFinite(v) ? `${v.toFixed(digits)}${unit}` : 'n/a';
const sec: Format = (v) => (Number.isFinite(v) ? `${(v / 1000).toFixed(1)} s` : 'n/a');
const ms: Format = (v) => (Number.isFinite(v) ? `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ms` : 'n/a');
const mib: Format = (kib) => (Number.isFinite(kib) ? `${(kib / 1024).toFixed(0)} MiB` : 'n/a');
const kib: Format = (v) => (Number.isFinite(v) ? `${v.toFixed(0)} KiB` : 'n/a');

/** A value a side left out: the row's figure was not measured there. */
export const NOT_MEASURED = 'not measured';

interface Row {
  name: string;
  note?: string;
  /** The figure of a side; undefined when it has none (timed out, no data); NOT_MEASURED when that side does not measure it. */
  get(r: SideResult): number | undefined | typeof NOT_MEASURED;
  format: Format;
}

/** One value per side, `before → after (ratio)`, then the peer with Perch/peer where it measured the same. */
export function compare(c: Comparison, get: Row['get'], format: Format): string {
  const show = (v: number | undefined | typeof NOT_MEASURED) =>
    v === NOT_MEASURED ? v : v === undefined ? 'n/a' : format(v);
  const num = (v: number | undefined | typeof NOT_MEASURED) => (v === NOT_MEASURED ? undefined : v);
  const after = get(c.after);
  let text = show(after);
  if (c.before) {
    const before = get(c.before);
    text = `${show(before)} → ${show(after)} (${ratio(num(after), num(before))})`;
  }
  if (c.peer) {
    const peer = get(c.peer);
    text += `; ${c.peer.label} ${show(peer)}`;
    if (peer !== NOT_MEASURED) text += ` (Perch/${c.peer.label.split(' ')[0]} ${ratio(num(after), peer)})`;
  }
  return text;
}

/** The p50 and p99 rows of one latency, NOT_MEASURED for a side that has no list of them at all. */
function latencyRows(name: string, note: string, values: (r: SideResult) => number[] | undefined): Row[] {
  return [50, 99].map((p, i) => ({
    name: `${name} p${p}`,
    ...(i === 0 ? { note } : {}),
    get: (r: SideResult) => {
      const v = values(r);
      return v ? percentile(v, p) : NOT_MEASURED;
    },
    format: ms,
  }));
}

const perRun = (r: SideResult, v: number) => v / r.n;

function rows(c: Comparison): Row[] {
  const keys = new Set<string>();
  for (const side of [c.before, c.after, c.peer])
    for (const k of Object.keys(side?.requests ?? {})) keys.add(k);
  const writeKeys = [...keys]
    .filter((k) => /^(create|update|patch|delete|deletecollection) /.test(k))
    .sort((a, b) => (c.after.requests[b] ?? 0) - (c.after.requests[a] ?? 0) || a.localeCompare(b));
  const readKeys = [...keys].filter((k) => /^(get|list) /.test(k)).sort();
  const idleS = (c.after.idleMs / 1000).toFixed(0);
  return [
    {
      name: 'time until all finished',
      note: 'from the first Rollout create until every healthy one Succeeded and every faulty one Failed',
      get: (r) => r.allFinishedMs,
      format: sec,
    },
    {
      name: 'API writes per run',
      note: "the controller's, Events included",
      get: (r) => perRun(r, r.writes),
      format: dp(2),
    },
    ...writeKeys.map((k) => ({
      name: `  ${k} per run`,
      get: (r: SideResult) => perRun(r, r.requests[k] ?? 0),
      format: dp(2),
    })),
    {
      name: 'reads outside watches per run',
      note: readKeys.length ? readKeys.map((k) => `${k}: ${c.after.requests[k] ?? 0}`).join(', ') : 'none',
      get: (r) => perRun(r, r.reads),
      format: dp(3),
    },
    { name: 'watches opened during the run', get: (r) => r.watches, format: dp(0) },
    {
      name: 'controller CPU per run',
      note: 'utime+stime over the run window ÷ N',
      get: (r) => (r.controllerCpuSeconds * 1000) / r.n,
      format: ms,
    },
    { name: 'controller RSS, idle before any Rollout', get: (r) => r.idleRssKiB, format: mib },
    { name: 'controller RSS, all finished', get: (r) => r.endRssKiB, format: mib },
    { name: 'controller RSS peak (VmHWM)', get: (r) => r.hwmKiB, format: mib },
    {
      name: 'RSS per Rollout above idle',
      note: '(RSS all finished − RSS idle) ÷ N',
      get: (r) => (r.endRssKiB - r.idleRssKiB) / r.n,
      format: kib,
    },
    {
      name: `idle CPU, ${idleS} s after all finished`,
      note: 'of one core',
      get: (r) => (r.idleCpuSeconds / (r.idleMs / 1000)) * 100,
      format: dp(2, ' %'),
    },
    { name: `idle requests, ${idleS} s after all finished`, get: (r) => r.idleRequests, format: dp(0) },
    ...latencyRows(
      'rollback latency',
      `from the failing round's start; over ${c.after.rollbackMs?.length ?? 0} of ${c.after.faulty} faulty Rollouts`,
      (r) => r.rollbackMs,
    ),
    ...latencyRows(
      'rollback latency from the round due,',
      `from the failing round's due time; over ${c.after.rollbackFromDueMs?.length ?? 0} of ${c.after.faulty}`,
      (r) => r.rollbackFromDueMs,
    ),
    ...latencyRows(
      "rollback, the engine's own part,",
      `from Prometheus answering the failing query (its query log) to the write; over ${c.after.rollbackEngineMs?.length ?? 0} of ${c.after.faulty}`,
      (r) => r.rollbackEngineMs,
    ),
    {
      name: 'Prometheus queries per check round',
      note: `${c.after.prometheusQueries ?? 0} queries, ${c.after.rounds ?? 0} rounds`,
      get: (r) =>
        r.prometheusQueries === undefined || r.rounds === undefined
          ? NOT_MEASURED
          : r.rounds > 0
            ? r.prometheusQueries / r.rounds
            : undefined,
      format: dp(2),
    },
    {
      name: 'reconciles per run',
      note: 'perch_reconcile_duration_seconds_count ÷ N: each write brings its watch event back, and with it a look',
      get: (r) => (r.reconciles === undefined ? NOT_MEASURED : perRun(r, r.reconciles)),
      format: dp(1),
    },
    {
      name: 'controller event-loop delay p99',
      note: "from its start to the run's end (nodejs_eventloop_lag_p99_seconds): how long a ready answer can wait",
      get: (r) => (r.eventLoopDelayMs ? r.eventLoopDelayMs.p99 : NOT_MEASURED),
      format: ms,
    },
    {
      name: 'controller event-loop delay max',
      get: (r) => (r.eventLoopDelayMs ? r.eventLoopDelayMs.max : NOT_MEASURED),
      format: ms,
    },
    {
      name: 'kube-apiserver CPU per run',
      get: (r) => (r.apiServerCpuSeconds * 1000) / r.n,
      format: ms,
    },
    { name: 'etcd CPU per run', get: (r) => (r.etcdCpuSeconds * 1000) / r.n, format: ms },
    { name: 'Prometheus CPU per run', get: (r) => (r.prometheusCpuSeconds * 1000) / r.n, format: ms },
    {
      name: 'creating the N Rollouts (client side)',
      get: (r) => r.createMs ?? NOT_MEASURED,
      format: sec,
    },
  ];
}

/** The rows of one N, each named "N = 1000: …". */
export function comparisonFigures(c: Comparison): Figure[] {
  const figures: Figure[] = rows(c).map((row) => ({
    name: `N = ${c.n}: ${row.name}`,
    value: compare(c, row.get, row.format),
    ...(row.note ? { note: row.note } : {}),
  }));
  for (const side of [c.before, c.after, c.peer]) {
    if (side && (side.allFinishedMs === undefined || side.unexpected > 0)) {
      figures.push({
        name: `N = ${c.n}: ${side.label} did not finish as expected`,
        value: `${side.finished} of ${side.n} ended, ${side.unexpected} in an unexpected phase`,
      });
    }
  }
  if (c.beforeFailure) {
    figures.push({
      name: `N = ${c.n}: ${c.beforeFailure.label} not measured`,
      value: c.beforeFailure.error,
      note: 'the build before the change failed; the figures after stand without it',
    });
  }
  if (c.peerFailure) {
    figures.push({
      name: `N = ${c.n}: ${c.peerFailure.label} not measured`,
      value: c.peerFailure.error,
      note: 'the peer failed; the other figures stand without it',
    });
  }
  return figures;
}
