// Reading the process table from /proc: which processes a launcher started, what they run, whether
// they are gone. The e2e tests use it to prove that nothing outlives what they started.
import { readdirSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';

export function procStatusField(pid: number, field: string): string | undefined {
  try {
    return new RegExp(`^${field}:\\s*(.*)$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}

/** PIDs of the processes whose parent is `ppid`. */
export function childPids(ppid: number): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .filter((pid) => procStatusField(pid, 'PPid') === String(ppid));
}

/** Every live descendant of `root` (children, their children, ...). */
export function descendants(root: number): number[] {
  const parentOf = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const ppid = Number(procStatusField(Number(name), 'PPid'));
    if (ppid > 0) parentOf.set(Number(name), ppid);
  }
  const out: number[] = [];
  const frontier = [root];
  while (frontier.length > 0) {
    const p = frontier.pop()!;
    for (const [pid, ppid] of parentOf) {
      if (ppid === p) {
        out.push(pid);
        frontier.push(pid);
      }
    }
  }
  return out;
}

export function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

/** The program an argv runs: setpriv execs it, but for a moment after spawn argv still names setpriv. */
export function programOfArgv(argv: string[]): string {
  const first = argv[0] ?? '';
  if (basename(first) === 'setpriv') return basename(argv[argv.indexOf('--') + 1] ?? '');
  return basename(first);
}

export const programOf = (pid: number): string => programOfArgv(cmdline(pid));

/** Dead means: no such process (ESRCH), or a zombie that only waits to be reaped. */
export function isDead(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
  try {
    // The state follows the parenthesised command name, which may itself contain spaces.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return true;
  }
}
