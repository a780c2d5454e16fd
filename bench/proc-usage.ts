// What a process has cost so far, from /proc by its PID: CPU time (utime + stime of /proc/<pid>/stat, every
// thread) and resident memory now and at its peak (VmRSS and VmHWM of /proc/<pid>/status).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface ProcUsage {
  /** User plus system CPU time since the process started, in milliseconds. */
  cpuMs: number;
  rssBytes: number;
  /** The high-water mark of resident memory. */
  peakRssBytes: number;
}

/**
 * utime + stime, in clock ticks, of a /proc/<pid>/stat line. The command name (field 2) is in
 * parentheses and may hold spaces or parentheses itself, so fields are counted from the last ')'.
 */
export function cpuTicksOfStat(stat: string): number {
  const close = stat.lastIndexOf(')');
  if (close < 0) throw new Error(`not a /proc/<pid>/stat line: ${stat.slice(0, 80)}`);
  // After ") " come field 3 (state) onwards: utime is field 14, stime field 15.
  const fields = stat
    .slice(close + 2)
    .trim()
    .split(/\s+/);
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) {
    throw new Error(`no utime and stime in /proc/<pid>/stat: ${stat.slice(0, 120)}`);
  }
  return utime + stime;
}

/** A "Name:   1234 kB" field of /proc/<pid>/status, in bytes. */
export function bytesOfStatus(status: string, field: string): number {
  const m = new RegExp(`^${field}:\\s*(\\d+)\\s*kB\\s*$`, 'm').exec(status);
  if (!m?.[1]) throw new Error(`no ${field} in /proc/<pid>/status`);
  return Number(m[1]) * 1024;
}

let ticksPerSecond: number | undefined;

/** The kernel's USER_HZ (`getconf CLK_TCK`), almost always 100. */
export function clockTicksPerSecond(): number {
  if (ticksPerSecond === undefined) {
    const out = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    const n = Number(out.stdout?.trim());
    ticksPerSecond = out.status === 0 && n > 0 ? n : 100;
  }
  return ticksPerSecond;
}

/** Reads the usage of a live process; throws when it is gone. */
export function procUsage(pid: number): ProcUsage {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return {
    cpuMs: (cpuTicksOfStat(stat) * 1000) / clockTicksPerSecond(),
    rssBytes: bytesOfStatus(status, 'VmRSS'),
    peakRssBytes: bytesOfStatus(status, 'VmHWM'),
  };
}

/** The program name of a process (/proc/<pid>/comm, at most 15 characters), undefined when gone. */
export function commOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** The one of `pids` that runs `program` (its comm), e.g. the sandbox's etcd; throws naming what runs. */
export function pidOfProgram(pids: readonly number[], program: string): number {
  const pid = pids.find((p) => commOf(p) === program);
  if (pid === undefined) {
    const running = pids.map((p) => `${p} ${commOf(p) ?? '(gone)'}`).join(', ');
    throw new Error(`no process runs ${program} among ${running || 'no PIDs'}`);
  }
  return pid;
}

/** CPU milliseconds of several live processes at one moment, by a name the caller gives each. */
export function cpuMsOf<K extends string>(pids: Record<K, number>): Record<K, number> {
  return Object.fromEntries(
    Object.entries<number>(pids).map(([name, pid]) => [name, procUsage(pid).cpuMs]),
  ) as Record<K, number>;
}
