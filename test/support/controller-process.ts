// `perch controller` as a child process, as it runs in a cluster: a kubeconfig, a Prometheus URL,
// its metrics on a free port. Tests stop it with SIGTERM, kill it with SIGKILL or pause it, by its PID.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { EventLog } from './events.js';

const PERCH = fileURLToPath(new URL('../../src/cli/perch.js', import.meta.url));

export interface ControllerProcess {
  pid: number;
  /** host:port of /metrics, /healthz, /readyz. */
  metricsAddress: string;
  /** Every JSON log record so far. */
  logs: Record<string, unknown>[];
  /** The first log record (seen or to come) that matches. */
  waitForLog(
    match: (record: Record<string, unknown>) => boolean,
    timeoutMs?: number,
    what?: string,
  ): Promise<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(): Promise<void>;
  kill(): Promise<void>;
  /** SIGSTOP: the process is frozen, its sockets stay open. */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
}

export interface ControllerProcessOptions {
  /** Added to the environment (e.g. PERCH_TEST_CLOCK_OFFSET_MS to skew one replica). */
  env?: Record<string, string>;
  /** The perch CLI to run (a benchmark runs an older build's); default this build's dist/src/cli/perch.js. */
  cli?: string;
  /** Node's own flags before the script (a benchmark profiles with --cpu-prof or --heapsnapshot-signal). */
  nodeArgs?: string[];
}

export async function startController(
  kubeconfig: string,
  prometheusUrl: string,
  extra: string[] = [],
  opts: ControllerProcessOptions = {},
): Promise<ControllerProcess> {
  const proc: ChildProcess = spawn(
    process.execPath,
    [
      ...(opts.nodeArgs ?? []),
      opts.cli ?? PERCH,
      'controller',
      '--kubeconfig',
      kubeconfig,
      '--prometheus-url',
      prometheusUrl,
      '--metrics-addr',
      '127.0.0.1:0',
      '--log-format',
      'json',
      ...extra,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...opts.env } },
  );
  const log = new EventLog<Record<string, unknown>>();
  const logs = log.seen;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const metricsAddress = await new Promise<string>((resolve, reject) => {
    createInterface(proc.stderr!).on('line', (line) => {
      try {
        const rec = JSON.parse(line) as Record<string, unknown>;
        log.push(rec);
        if (rec.msg === 'serving metrics' && typeof rec.address === 'string') resolve(rec.address);
      } catch {
        log.push({ raw: line });
      }
    });
    void exited.then(({ code, signal }) =>
      reject(
        new Error(
          `perch controller exited (${code ?? signal}) before serving: ${JSON.stringify(logs.slice(-5))}`,
        ),
      ),
    );
  });
  const pid = proc.pid!;
  const running = () => proc.exitCode === null && proc.signalCode === null;
  return {
    pid,
    metricsAddress,
    logs,
    waitForLog: (match, timeoutMs = 30_000, what = 'a log record') => log.find(match, timeoutMs, what),
    exited,
    async stop() {
      // A paused process would not handle SIGTERM until continued.
      if (running()) proc.kill('SIGCONT');
      if (running()) proc.kill('SIGTERM');
      await exited;
    },
    async kill() {
      if (running()) proc.kill('SIGKILL');
      await exited;
    },
    pause() {
      if (running()) proc.kill('SIGSTOP');
    },
    resume() {
      if (running()) proc.kill('SIGCONT');
    },
  };
}
