// What a process has cost, read from /proc by its PID: CPU time (utime + stime, every thread) and
// resident memory (VmRSS now, VmHWM its peak). Only PIDs the benchmark started are ever read.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** utime and stime in clock ticks, from the text of /proc/<pid>/stat. */
export function parseStat(text: string): { utime: number; stime: number } {
  // The command name is in parentheses and may hold spaces or ')': the fields start after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime))
    throw new Error(`not a /proc/<pid>/stat line: ${text}`);
  return { utime, stime };
}

/** A "kB" field of /proc/<pid>/status (VmRSS, VmHWM) in KiB, or undefined when it is absent. */
export function parseStatusKiB(text: string, field: string): number | undefined {
  const m = new RegExp(`^${field}:\\s*(\\d+)\\s*kB$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

let ticks: number | undefined;

/** The kernel's clock ticks per second (USER_HZ), 100 on every usual Linux. */
export function clockTicks(): number {
  if (ticks === undefined) {
    try {
      ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

/** CPU seconds the process has used so far, user and system, all its threads. */
export function cpuSeconds(pid: number): number {
  const { utime, stime } = parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  return (utime + stime) / clockTicks();
}

export interface Memory {
  /** Resident now. */
  rssKiB: number;
  /** The most it has been resident. */
  hwmKiB: number;
}

export function memory(pid: number): Memory {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  return { rssKiB: parseStatusKiB(text, 'VmRSS') ?? NaN, hwmKiB: parseStatusKiB(text, 'VmHWM') ?? NaN };
}

/** The program a PID runs (/proc/<pid>/comm), to tell the sandbox's own children apart. */
export function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** CPU seconds of several processes at one moment, by a name the caller gives each. */
export function cpuOf(pids: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuSeconds(pid)]));
}
