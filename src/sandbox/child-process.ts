// Starting and stopping the sandbox's child processes (etcd, kube-apiserver, prometheus, ...).
// Each child is tied to its launcher's life and is only ever stopped by its own PID.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';

/** util-linux's setpriv makes the kernel SIGKILL a child when its launcher dies, even by SIGKILL. */
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

export interface ChildOptions {
  /** Short name used in errors ("etcd", "kube-apiserver"). */
  name: string;
  command: string;
  args: string[];
  /** stdout and stderr are appended here, so a failed start can show the child's last words. */
  logFile: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface Child {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  /** Resolves with the exit code (or signal name) once the process has gone. */
  readonly exited: Promise<number | string>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process has gone. */
  stop(graceMs?: number): Promise<void>;
  isRunning(): boolean;
}

export function startChild(opts: ChildOptions): Child {
  const log = createWriteStream(opts.logFile, { flags: 'a' });
  const [command, args] = SETPRIV
    ? [SETPRIV, ['--pdeathsig', 'KILL', '--', opts.command, ...opts.args]]
    : [opts.command, opts.args];
  const proc: ChildProcess = spawn(command, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout?.pipe(log, { end: false });
  proc.stderr?.pipe(log, { end: false });
  let running = proc.pid !== undefined;
  const exited = new Promise<number | string>((resolve) => {
    proc.once('error', (err) => {
      running = false;
      log.end(`\n[perch] could not start ${opts.command}: ${err.message}\n`);
      resolve('spawn-error');
    });
    proc.once('exit', (code, signal) => {
      running = false;
      resolve(code ?? signal ?? 'unknown');
    });
    // 'close' comes after both pipes drained, so the log is complete before it is closed.
    proc.once('close', () => log.end());
  });
  return {
    name: opts.name,
    pid: proc.pid ?? -1,
    logFile: opts.logFile,
    exited,
    isRunning: () => running,
    async stop(graceMs = 5000) {
      if (!running || proc.pid === undefined) return;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => running && proc.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** The last `lines` lines of a child's log, for error messages. */
export function logTail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Rejects with the child's log tail if it exits before `ready` settles. */
export async function untilReady<T>(child: Child, ready: Promise<T>): Promise<T> {
  const died = child.exited.then((code) => {
    throw new Error(`${child.name} exited (${code}) before it was ready:\n${logTail(child.logFile)}`);
  });
  return Promise.race([ready, died]);
}

/** True when a process with this PID exists (signal 0 checks without touching it). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
