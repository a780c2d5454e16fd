// podman as the image tests run it: rootful, in a storage of its own (vfs, removed afterwards), runc, no
// systemd; and containers this code started, stopped and removed by the name it gave them, never by a pattern.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { EventLog } from './events.js';

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[]): Promise<CommandResult> {
  return new Promise((resolve) => {
    execFile(command, args, { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr: err && !stderr ? err.message : stderr });
    });
  });
}

/**
 * Why containers cannot run here, or undefined when they can: the namespaces runc makes for a container
 * with the host's network (mount, PID, IPC, UTS), asked of the kernel directly.
 */
export async function namespacesRefused(): Promise<string | undefined> {
  const r = await run('unshare', ['--mount', '--pid', '--ipc', '--uts', '--fork', 'true']);
  return r.code === 0
    ? undefined
    : `unshare --mount --pid --ipc --uts: ${r.stderr.trim() || `exit ${r.code}`}`;
}

/** One resource limit of this process, from /proc/self/limits ("Max open files", "Max processes"). */
function hardLimit(name: string): number {
  const line = readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(name));
  const hard = line?.slice(name.length).trim().split(/\s+/)[1];
  return hard === undefined || hard === 'unlimited' ? Infinity : Number(hard);
}

/**
 * --ulimit flags no higher than this process's own: rootful podman asks for 1048576 open files and
 * 4194304 processes, which a runtime without CAP_SYS_RESOURCE (as in a CI sandbox) may not raise to.
 * Processes count per user ID across the host, and the controller runs a dozen threads.
 */
export function ulimitFlags(): string[] {
  const nofile = Math.min(hardLimit('Max open files'), 1_048_576);
  const nproc = Math.min(hardLimit('Max processes'), 4096);
  return ['--ulimit', `nofile=${nofile}:${nofile}`, '--ulimit', `nproc=${nproc}:${nproc}`];
}

const running = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;

function exitsWithin(child: ChildProcess, ms: number): Promise<boolean> {
  if (!running(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** A container in the foreground of a `podman run` child: its stderr lines, its exit. */
export interface RunningContainer {
  name: string;
  /** The `podman run` client's PID (the container's own processes are conmon's children). */
  pid: number;
  lines: EventLog<string>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export class Podman {
  private readonly containers = new Map<string, ChildProcess>();

  private constructor(readonly dir: string) {}

  /** podman with a fresh storage under the system's temporary folder. */
  static create(): Podman {
    return new Podman(mkdtempSync(join(tmpdir(), 'perch-podman-')));
  }

  /** Every state podman keeps lives under this.dir; runc, because Debian 12's crun refuses hybrid cgroups. */
  private globals(): string[] {
    return [
      '--root',
      join(this.dir, 'storage'),
      '--runroot',
      join(this.dir, 'run'),
      '--tmpdir',
      join(this.dir, 'tmp'),
      '--storage-driver',
      'vfs',
      '--runtime',
      'runc',
      '--cgroup-manager',
      'cgroupfs',
      '--events-backend',
      'none',
    ];
  }

  exec(args: string[]): Promise<CommandResult> {
    return run('podman', [...this.globals(), ...args]);
  }

  /** podman that must succeed: its stdout, else an error with its stderr. */
  async ok(args: string[]): Promise<string> {
    const r = await this.exec(args);
    if (r.code !== 0) throw new Error(`podman ${args.join(' ')} (exit ${r.code}): ${r.stderr.trim()}`);
    return r.stdout;
  }

  /** Loads an OCI archive; the image's name as podman reports it. */
  async load(archive: string): Promise<string> {
    const out = await this.ok(['load', '--quiet', '--input', archive]);
    const name = /Loaded image(?:\(s\))?: *(\S+)/.exec(out)?.[1];
    if (!name) throw new Error(`podman load ${archive}: no image name in ${JSON.stringify(out)}`);
    return name;
  }

  /** `podman run --rm --name NAME ...runArgs IMAGE ...command` in the foreground; stderr read by line. */
  start(name: string, runArgs: string[], image: string, command: string[]): RunningContainer {
    const child = spawn(
      'podman',
      [...this.globals(), 'run', '--rm', '--name', name, ...runArgs, image, ...command],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    this.containers.set(name, child);
    const lines = new EventLog<string>();
    createInterface(child.stderr!).on('line', lines.push);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    return { name, pid: child.pid!, lines, exited };
  }

  /**
   * Removes what this object started (each container by its name, its `podman run` client by PID), then
   * the storage, unless something is still mounted under it (then it stays, and says so).
   */
  async close(): Promise<void> {
    for (const [name, child] of this.containers) {
      if (!running(child)) continue;
      await this.exec(['rm', '--force', '--time', '0', name]);
      // The client ends with its container; a client that does not is stopped by its own PID.
      if (!(await exitsWithin(child, 10_000))) child.kill('SIGKILL');
    }
    this.containers.clear();
    const mounted = readFileSync('/proc/self/mounts', 'utf8')
      .split('\n')
      .filter((l) => l.split(' ')[1]?.startsWith(`${this.dir}/`));
    if (mounted.length > 0) {
      process.stderr.write(`  [podman] ${this.dir} left in place: still mounted: ${mounted.join('; ')}\n`);
      return;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
