// The cost of many Rollouts on one controller (issue 16): the workload at each N, measured for the build
// before the change and this one, each on its own fresh sandbox, every figure with its ratio.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../src/sandbox/repo.js';
import { flaggerLabel, runFlaggerSide } from './peers/flagger/side.js';
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
  /** Whether the Flagger peer runs at each N (PERCH_BENCH_SCALE_PEER=flagger, the default, or none). */
  peer: boolean;
  /** Node flags for each side's controller (PERCH_BENCH_SCALE_NODE_ARGS, split at spaces). */
  nodeArgs: string[];
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
  const peerText = env.PERCH_BENCH_SCALE_PEER?.trim() || 'flagger';
  if (peerText !== 'flagger' && peerText !== 'none')
    throw new Error(`PERCH_BENCH_SCALE_PEER=${peerText}: give flagger (the default) or none`);
  const timeoutS = env.PERCH_BENCH_SCALE_TIMEOUT_S
    ? positiveInteger('PERCH_BENCH_SCALE_TIMEOUT_S', env.PERCH_BENCH_SCALE_TIMEOUT_S)
    : undefined;
  return {
    ns,
    idleMs,
    baseline,
    peer: peerText === 'flagger',
    nodeArgs: (env.PERCH_BENCH_SCALE_NODE_ARGS ?? '').split(' ').filter(Boolean),
    // Two 10 s checks take about 25 s alone; allow for a slow controller, then give up and say so.
    timeoutMs: (n) => (timeoutS ?? 120 + Math.ceil(n / 2)) * 1000,
  };
}

/** A peer measured at each N after Perch: its column's label and its run. */
export interface Peer {
  label: string;
  run(opts: { n: number; idleMs: number; progress: (line: string) => void }): Promise<SideResult>;
}

/**
 * The peer's side at N into `c`; when it fails (no Go to build Flagger, a Canary Failed), its error in
 * place of its figures, so Perch's stand without it.
 */
export async function measurePeer(
  peer: Peer,
  c: Comparison,
  idleMs: number,
  progress: (line: string) => void,
): Promise<void> {
  try {
    c.peer = await peer.run({ n: c.n, idleMs, progress });
  } catch (err) {
    const error = err instanceof Error ? err.message : String(err);
    progress(`N=${c.n} ${peer.label} failed: ${error}`);
    c.peerFailure = { label: peer.label, error };
  }
}

function description(s: ScaleSettings, base: BaselineBuild | undefined, peer: Peer | undefined): string {
  return [
    `N Rollouts (N = ${s.ns.join(', ')}) in one namespace of a fresh sandbox per side, each with its own three`,
    `headless Services (root, stable, canary), one Prometheus success-rate metric (SPEC §2's query, window = interval)`,
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
    "÷ the controller's perch_analysis_checks_total (one metric, so one check per round). Reconciles and the",
    "event-loop delay (p99, max) are the controller's own /metrics at the run's end, from its start.",
    base
      ? `Each value is before → after (after ÷ before): before = ${base.rev} (${base.commit.slice(0, 10)}), built by` +
        ' git archive + tsc into a temp folder; after = this working tree. The two sides run one after the other' +
        ' on the same machine, before first.'
      : 'No baseline was measured (PERCH_BENCH_SCALE_BASELINE=none).',
    peer
      ? `The peer, ${peer.label} (\`bench/peers/flagger\`), follows each value with Perch (after) ÷ peer: on a fresh` +
        ' sandbox of its own, out of cluster, the same N, query, traffic and scrape interval, Canaries over headless' +
        " Services with stepWeights [10, 50], each run started by a change of its Service's selector; its requests by" +
        " Flagger's user agent. Its requests and CPU count from its Services' creation, its first pass over each Canary" +
        " included, as Perch's run window; its time from the selector changes to all Succeeded. It has no faulty" +
        " subset and no per-round check count: rollback latency, queries per round and the harness's create time say" +
        ' "not measured".'
      : 'No peer was measured (PERCH_BENCH_SCALE_PEER=none).',
    'N = 10,000 runs only when asked: PERCH_BENCH_SCALE_N=10000 (a comma list of N; also',
    `PERCH_BENCH_SCALE_IDLE_MS, PERCH_BENCH_SCALE_BASELINE=<rev>|none, default the tag \`${BASELINE_TAG}\` else HEAD;`,
    'PERCH_BENCH_SCALE_PEER=flagger|none, default flagger; PERCH_BENCH_SCALE_NODE_ARGS: node flags for both',
    "sides' controllers, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` (written when it stops) or",
    '`--heapsnapshot-signal=SIGUSR2`, to profile them).',
  ]
    .filter(Boolean)
    .join('\n');
}

/** Where the time and memory went, written by hand from profiles (bench/scale/PROFILE.md), kept with the figures. */
function profileNotes(): string {
  const file = join(repoRoot, 'bench', 'scale', 'PROFILE.md');
  return existsSync(file) ? readFileSync(file, 'utf8').trim() : '';
}

export const scaleBenchmark: Benchmark = {
  file: 'scale.ts',
  title: 'Cost at scale: N Rollouts with analysis, before and after',
  async run(progress): Promise<BenchmarkReport> {
    const settings = scaleSettings(process.env);
    const peer: Peer | undefined = settings.peer ? { label: flaggerLabel(), run: runFlaggerSide } : undefined;
    const base = settings.baseline === null ? undefined : await buildBaseline(settings.baseline, progress);
    const figures: Figure[] = [];
    try {
      for (const n of settings.ns) {
        const common = {
          n,
          idleMs: settings.idleMs,
          timeoutMs: settings.timeoutMs(n),
          nodeArgs: settings.nodeArgs,
          progress,
        };
        const c: Comparison = { n } as Comparison;
        if (base) {
          try {
            c.before = await runSide({ ...common, label: 'before', cli: base.cli });
          } catch (err) {
            const error = err instanceof Error ? err.message : String(err);
            progress(`N=${n} before failed: ${error}`);
            c.beforeFailure = { label: 'before', error };
          }
        }
        const trace = process.env.PERCH_BENCH_SCALE_TRACE?.trim();
        c.after = await runSide({
          ...common,
          label: 'after',
          ...(trace ? { traceFile: `${trace}.${n}` } : {}),
        });
        if (peer) await measurePeer(peer, c, settings.idleMs, progress);
        figures.push(...comparisonFigures(c));
      }
    } finally {
      base?.remove();
    }
    return { description: description(settings, base, peer), figures, notes: profileNotes() || undefined };
  },
};
