// The Flagger peer as one side of bench/scale's table: its figures turned into a SideResult, each counted
// over the same span as Perch's run window, and the figures it does not measure left out ("not measured").
import { emptyTally, type RequestTally } from '../../audit-tally.js';
import type { SideResult } from '../../scale/report.js';
import { pinnedFlaggerVersion } from './build.js';
import type { PeerFigures } from './figures.js';
import { runFlaggerPeer } from './peer.js';

/** "Flagger v1.36.1": the peer's column, known before it runs (it may fail before any figure). */
export function flaggerLabel(): string {
  return `Flagger ${pinnedFlaggerVersion()}`;
}

/** Two windows' requests as one. */
function sum(a: RequestTally, b: RequestTally): RequestTally {
  const t = emptyTally();
  for (const k of ['total', 'writes', 'reads', 'watches', 'failed'] as const) t[k] = a[k] + b[k];
  for (const side of [a, b]) {
    for (const [key, count] of Object.entries(side.byVerbResource))
      t.byVerbResource[key] = (t.byVerbResource[key] ?? 0) + count;
  }
  t.userAgents = [...new Set([...a.userAgents, ...b.userAgents])];
  return t;
}

/**
 * Perch's run window holds each Rollout's whole life: from before its Services are created until it ended.
 * Flagger's runs start only at the selector change, after its first pass made every Canary Initialized, so
 * its requests and CPU are those of both windows; its time is from the selector changes to all Succeeded.
 * Left out, as Flagger's workload has no faulty subset and its checks are not counted per round: rollback
 * latency, Prometheus queries per round, and the harness's time creating the objects.
 */
export function sideResultOf(f: PeerFigures): SideResult {
  const requests = sum(f.requests.initialize, f.requests.run);
  return {
    label: `Flagger ${f.version}`,
    n: f.n,
    allFinishedMs: f.times.allSucceededMs,
    // The peer throws unless every Canary Succeeded.
    finished: f.n,
    unexpected: 0,
    requests: requests.byVerbResource,
    writes: requests.writes,
    reads: requests.reads,
    watches: requests.watches,
    controllerCpuSeconds: ((f.perRun.initializeCpuMs + f.perRun.cpuMs) * f.n) / 1000,
    idleRssKiB: f.memory.idleProcessBytes / 1024,
    endRssKiB: f.memory.afterRunsBytes / 1024,
    hwmKiB: f.memory.peakBytes / 1024,
    idleMs: f.idle.windowMs,
    idleCpuSeconds: f.idle.cpu.cpuMs / 1000,
    idleRequests: f.idle.requests,
    faulty: 0,
    apiServerCpuSeconds: f.sandboxCpuMs.apiServer / 1000,
    etcdCpuSeconds: f.sandboxCpuMs.etcd / 1000,
    prometheusCpuSeconds: f.sandboxCpuMs.prometheus / 1000,
    runMs: f.times.windowMs,
  };
}

/** One Flagger peer run at N, as bench/scale's side; throws what the peer throws (no Go, a Canary Failed). */
export async function runFlaggerSide(opts: {
  n: number;
  idleMs: number;
  progress: (line: string) => void;
}): Promise<SideResult> {
  return sideResultOf(await runFlaggerPeer(opts));
}
