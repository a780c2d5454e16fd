// Temporary data folders for the sandbox's processes, owned by the launcher's PID.
// A launcher killed with SIGKILL cannot remove its folder; the next launcher of the same kind does.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pidAlive } from './child-process.js';

const OWNER_FILE = 'launcher.pid';

/** Removes `prefix` folders whose launcher is gone, then makes a new one owned by this process. */
export function makeDataDir(prefix: string): string {
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith(prefix)) continue;
    const dir = join(tmpdir(), name);
    try {
      const pid = Number(readFileSync(join(dir, OWNER_FILE), 'utf8'));
      if (pid > 0 && !pidAlive(pid)) rmSync(dir, { recursive: true, force: true });
    } catch {
      // Not ours to judge (no owner file yet, or not readable): leave it.
    }
  }
  const dir = mkdtempSync(join(tmpdir(), prefix));
  writeFileSync(join(dir, OWNER_FILE), String(process.pid));
  return dir;
}
