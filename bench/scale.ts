// The cost of many Rollouts on one controller (issue 16): the workload at each N, measured for the build
// before the change and this one, each on its own fresh sandbox, every figure with its ratio.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Benchmark, BenchmarkReport, Figure } from './run.js';
import { BASELINE_TAG, buildBaseline, type BaselineBuild } from './scale/baseline.js';
import { comparisonFigures, type Comparison, type SideResult } from './scale/report.js';
import { runSide } from './scale/side.js';
import { INTERVAL } from './scale/workload.js';

export const DEFAULT_NS = [100, 1000];
export const DEFAULT_IDLE_MS = 60_000;

export interface ScaleSettings {
  ns: number[];
  idleMs: number;
  /** The revision to compare against; undefined: the tag, else HEAD; null: no baseline at all. */
  baseline: string | undefined | null;
  /** How long to wait for all N Rollouts to end. */
  timeoutMs(n: number): number;
}

function positiveInteger(name: string, text: string): number {
  const v = Number(text.trim());
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name}=${text}: give a whole number, 1 or more`);
  return v;
}

/** The benchmark's settings from the environment; a bad value is an error naming the variable. */
export function scaleSettings(env: NodeJS.ProcessEnv): ScaleSettings {
  const nText = env.PERCH_BENCH_SCALE_N;
  const ns = nText ? nText.split(',').map((t) => positiveInteger('PERCH_BENCH_SCALE_N', t)) : DEFAULT_NS;
  const idleMs = env.PERCH_BENCH_SCALE_IDLE_MS
    ? positiveInteger('PERCH_BENCH_SCALE_IDLE_MS', env.PERCH_BENCH_SCALE_IDLE_MS)
    : DEFAULT_IDLE_MS;
  const baselineText = env.PERCH_BENCH_SCALE_BASELINE?.trim();
  const baseline = baselineText === 'none' ? null : baselineText || undefined;
  const timeoutS = env.PERCH_BENCH_SCALE_TIMEOUT_S
    ? positiveInteger('PERCH_BENCH_SCALE_TIMEOUT_S', env.PERCH_BENCH_SCALE_TIMEOUT_S)
    : undefined;
  return {
    ns,
    idleMs,
    baseline,
    // Two 10 s checks take about 25 s alone; allow for a slow controller, then give up and say so.
    timeoutMs: (n) => (timeoutS ?? 120 + Math.ceil(n / 2)) * 1000,
  };
}

/**
 * The peer's hook: a module bench/peers/flagger/index.ts exporting
 * `runFlaggerPeer({ n, idleMs, progress }): Promise<SideResult>` (its label e.g. "Flagger v1.36.1")
 * adds a peer to every N's figures once it exists. PERCH_BENCH_SCALE_PEER=none leaves it out.
 */
export type PeerRunner = (opts: {
  n: number;
  idleMs: number;
  progress: (line: string) => void;
}) => Promise<SideResult>;

async function loadPeer(env: NodeJS.ProcessEnv): Promise<PeerRunner | undefined> {
  if (env.PERCH_BENCH_SCALE_PEER === 'none') return undefined;
  const file = join(dirname(fileURLToPath(import.meta.url)), 'peers', 'flagger', 'index.js');
  if (!existsSync(file)) return undefined;
  const mod = (await import(pathToFileURL(file).href)) as { runFlaggerPeer?: unknown };
  if (typeof mod.runFlaggerPeer !== 'function') throw new Error(`${file} exports no runFlaggerPeer function`);
  return mod.runFlaggerPeer as PeerRunner;
}

function description(s: ScaleSettings, base: BaselineBuild | undefined, peer: boolean): string {
  return [
    `N Rollouts (N = ${s.ns.join(', ')}) in one namespace of a fresh sandbox per side, each with its own three`,
    `Services (root, stable, canary), one Prometheus success-rate metric (SPEC §2's query, window = interval)`,
    `checked every ${INTERVAL}, steps [setWeight 10, analysis {iterations: 1}, setWeight 50, analysis {iterations: 1},`,
    'setWeight 100], the Services then all Rollouts created at once (32 requests in flight). A real Prometheus',
    'scrapes an OSM-shaped metrics target every 2 s (2 requests/s per canary); every tenth canary answers only',
    "errors, so its run must roll back. `perch controller` runs as a child process with the sandbox's admin",
    "kubeconfig and default flags. Requests are the API server's audit log, the controller's told by its user agent",
    "`perch-controller/…` (for an older build without it: the admin user's requests that are not the harness's);",
    'per run = over the run window ÷ N. The run window runs from before the Services are created until 5 s after the',
    'last Rollout ended. CPU is utime+stime from /proc/<pid>/stat over that window, memory VmRSS/VmHWM from',
    "/proc/<pid>/status; the idle RSS is the controller's before any Service or Rollout exists. Idle: the",
    `${s.idleMs / 1000} s after the run window. **Rollback latency**: for each faulty Rollout, from its first`,
    "failing measurement's `at` (status.analysis.measurements: the moment its check round began, so the",
    "Prometheus query's own round trip is included but the wait for the check interval is not) to the API",
    "server's receive time (audit log) of the controller's TrafficSplit write that routes the stable Service",
    "alone at 100. The same **from the round due**: from the failing round's due time (the status.analysis.nextCheckAt",
    "it answered, as the harness's watch saw it), so a round started late by a busy queue counts too.",
    'Prometheus queries per check round: its own prometheus_http_requests_total for /api/v1/query over the run',
    "÷ the controller's perch_analysis_checks_total (one metric, so one check per round).",
    base
      ? `Each value is before → after (after ÷ before): before = ${base.rev} (${base.commit.slice(0, 10)}), built by` +
        ' git archive + tsc into a temp folder; after = this working tree. The two sides run one after the other' +
        ' on the same machine, before first.'
      : 'No baseline was measured (PERCH_BENCH_SCALE_BASELINE=none).',
    peer ? 'The peer follows each value, with Perch (after) ÷ peer.' : '',
    'N = 10,000 runs only when asked: PERCH_BENCH_SCALE_N=10000 (a comma list of N; also',
    `PERCH_BENCH_SCALE_IDLE_MS, PERCH_BENCH_SCALE_BASELINE=<rev>|none, default the tag \`${BASELINE_TAG}\` else HEAD).`,
  ]
    .filter(Boolean)
    .join('\n');
}

export const scaleBenchmark: Benchmark = {
  file: 'scale.ts',
  title: 'Cost at scale: N Rollouts with analysis, before and after',
  async run(progress): Promise<BenchmarkReport> {
    const settings = scaleSettings(process.env);
    const peer = await loadPeer(process.env);
    const base = settings.baseline === null ? undefined : await buildBaseline(settings.baseline, progress);
    const figures: Figure[] = [];
    try {
      for (const n of settings.ns) {
        const common = { n, idleMs: settings.idleMs, timeoutMs: settings.timeoutMs(n), progress };
        const c: Comparison = { n } as Comparison;
        if (base) c.before = await runSide({ ...common, label: 'before', cli: base.cli });
        c.after = await runSide({ ...common, label: 'after' });
        if (peer) c.peer = await peer({ n, idleMs: settings.idleMs, progress });
        figures.push(...comparisonFigures(c));
      }
    } finally {
      base?.remove();
    }
    return { description: description(settings, base, peer !== undefined), figures };
  },
};
