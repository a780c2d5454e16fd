// What one Flagger peer run measures (the same figures as bench/scale's), and their text for reading.
import type { RequestTally } from '../../audit-tally.js';

export interface PeerOptions {
  /** Canaries, each with its own three Services. */
  n: number;
  /** The idle window after every Canary Succeeded (the is 60 s). */
  idleMs: number;
  /** analysis.interval in seconds; default 10. */
  intervalSeconds?: number;
  /** Flagger's -kubeconfig-qps and -kubeconfig-burst; default its own (100, 250). */
  qps?: number;
  burst?: number;
  /** Give up waiting for all Succeeded after this long; default 10 min + 100 ms per Canary. */
  timeoutMs?: number;
}

/** A process's CPU over a window, in ms, and the share of one core it was. */
export interface CpuFigure {
  cpuMs: number;
  percentOfCore: number;
}

export interface PeerFigures {
  peer: 'flagger';
  version: string;
  n: number;
  intervalSeconds: number;
  /** Flagger's command line (paths shortened), as it ran. */
  flags: string[];
  /** Where it ran: a private network namespace (its HTTP server listens on every interface of it). */
  network: 'private network namespace' | 'host network';
  times: {
    /** The Canaries created to every one Initialized (Flagger's first pass, before any run). */
    initializeMs: number;
    /** The first selector change to every Canary Succeeded. */
    allSucceededMs: number;
    /** Each Canary's own time from its selector change to Succeeded. */
    runP50Ms: number;
    runMaxMs: number;
    /** From the Services' creation to the idle window: the span its requests and CPU are counted over. */
    windowMs: number;
  };
  /** Requests of Flagger's user agent (the audit log), in each window, totals over all N. */
  requests: {
    /** From the Services' creation to the first selector change (Flagger's first pass over each Canary). */
    initialize: RequestTally;
    /** From the first selector change to the idle window. */
    run: RequestTally;
    idle: RequestTally;
  };
  perRun: {
    /** API writes per Canary run (create, update, patch, delete), by "verb resource". */
    writes: number;
    writesByVerbResource: Record<string, number>;
    /** GET and LIST outside watches, per Canary run. */
    readsOutsideWatches: number;
    /** Flagger's CPU over the run window divided by N. */
    cpuMs: number;
    /** The same for initialising (Flagger's first pass over a new Canary). */
    initializeWrites: number;
    initializeReads: number;
    initializeCpuMs: number;
  };
  memory: {
    /** Resident memory of the running Flagger before any Canary existed. */
    idleProcessBytes: number;
    /** Its high-water mark (VmHWM) at the end of the runs. */
    peakBytes: number;
    /** Resident memory once every run had Succeeded (and the settle time passed). */
    afterRunsBytes: number;
    /** Resident memory after all runs, above the idle process, per Canary. */
    perCanaryBytes: number;
  };
  idle: {
    windowMs: number;
    cpu: CpuFigure;
    requests: number;
  };
  /**
   * The API server, etcd and Prometheus share the machine: their CPU from the Services' creation until the
   * idle window (Flagger's first pass and its runs), as bench/scale's run window.
   */
  sandboxCpuMs: { apiServer: number; etcd: number; prometheus: number };
}

const ms = (v: number) => (v >= 10_000 ? `${(v / 1000).toFixed(1)} s` : `${v.toFixed(0)} ms`);
const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
const kib = (b: number) => `${(b / 1024).toFixed(0)} KiB`;

/** The figures as "name: value" lines, for the CLI and progress output. */
export function formatFigures(f: PeerFigures): string[] {
  const writes = Object.entries(f.perRun.writesByVerbResource)
    .sort(([, a], [, b]) => b - a)
    .map(([k, v]) => `${v.toFixed(2)} ${k}`)
    .join(', ');
  return [
    `Flagger ${f.version}, N = ${f.n}, analysis.interval ${f.intervalSeconds}s, headless Services, ${f.network}`,
    `  flags: ${f.flags.join(' ')}`,
    `  user agent (audit log): ${f.requests.run.userAgents.join(', ')}`,
    `time, Canaries created to all Initialized: ${ms(f.times.initializeMs)}`,
    `time, selector changes to all Succeeded:   ${ms(f.times.allSucceededMs)} (one run p50 ${ms(f.times.runP50Ms)}, max ${ms(f.times.runMaxMs)})`,
    `API writes per run:                        ${f.perRun.writes.toFixed(2)} (${writes})`,
    `API reads outside watches per run:         ${f.perRun.readsOutsideWatches.toFixed(2)}`,
    `controller CPU per run:                    ${f.perRun.cpuMs.toFixed(1)} ms`,
    `initialising, per Canary:                  ${f.perRun.initializeWrites.toFixed(2)} writes, ${f.perRun.initializeReads.toFixed(2)} reads, ${f.perRun.initializeCpuMs.toFixed(1)} ms CPU`,
    `resident memory: idle process ${mib(f.memory.idleProcessBytes)}, peak ${mib(f.memory.peakBytes)}, ${kib(f.memory.perCanaryBytes)} per Canary above idle`,
    `idle ${ms(f.idle.windowMs)} after all finished: ${f.idle.cpu.percentOfCore.toFixed(2)} % of a core, ${f.idle.requests} requests`,
    `API server / etcd / Prometheus CPU, Services created to idle: ${ms(f.sandboxCpuMs.apiServer)} / ${ms(f.sandboxCpuMs.etcd)} / ${ms(f.sandboxCpuMs.prometheus)}`,
  ];
}
