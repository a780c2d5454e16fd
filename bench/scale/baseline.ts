// The "before" controller of the scale benchmark: a git revision exported into a temp folder (git archive,
// this checkout's node_modules linked in) and compiled with tsc; `remove` deletes the folder again.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../../src/sandbox/repo.js';

/** The tag a maintainer sets on the commit the figures compare against. */
export const BASELINE_TAG = 'perch-bench-baseline';

export interface BaselineBuild {
  /** What was asked for ("perch-bench-baseline", "HEAD", a hash) and the commit it is. */
  rev: string;
  commit: string;
  /** dist/src/cli/perch.js of the build. */
  cli: string;
  remove(): void;
}

function git(args: string[]): string {
  return execFileSync('git', args, { cwd: repoRoot, encoding: 'utf8' }).trim();
}

/** The commit of `rev`, or undefined when there is no such revision. */
export function resolveCommit(rev: string): string | undefined {
  try {
    return git(['rev-parse', '--verify', '--quiet', `${rev}^{commit}`]);
  } catch {
    return undefined;
  }
}

/** `requested` when given (it must exist), else the tag when it exists, else HEAD. */
export function chooseRevision(requested: string | undefined): { rev: string; commit: string } {
  if (requested) {
    const commit = resolveCommit(requested);
    if (!commit)
      throw new Error(
        `PERCH_BENCH_SCALE_BASELINE=${requested}: no such git revision; give a tag, branch or commit`,
      );
    return { rev: requested, commit };
  }
  const tagged = resolveCommit(BASELINE_TAG);
  if (tagged) return { rev: BASELINE_TAG, commit: tagged };
  const head = resolveCommit('HEAD');
  if (!head) throw new Error(`${repoRoot} has no HEAD commit to measure as the baseline`);
  return { rev: 'HEAD', commit: head };
}

function run(command: string, args: string[], cwd: string, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`${what} failed (exit ${code}): ${stderr.slice(-2000)}`)),
    );
  });
}

/** Exports and compiles the revision; the caller must call remove() (also when it throws, nothing is left). */
export async function buildBaseline(
  requested: string | undefined,
  progress: (line: string) => void,
): Promise<BaselineBuild> {
  const { rev, commit } = chooseRevision(requested);
  const dir = mkdtempSync(join(tmpdir(), 'perch-bench-baseline-'));
  const remove = () => rmSync(dir, { recursive: true, force: true });
  try {
    progress(`building the baseline ${rev} (${commit.slice(0, 10)}) in ${dir}`);
    const archive = join(dir, 'src.tar');
    await run('git', ['archive', '--format=tar', `--output=${archive}`, commit], repoRoot, 'git archive');
    await run('tar', ['-xf', archive], dir, 'tar');
    rmSync(archive);
    symlinkSync(realpathSync(join(repoRoot, 'node_modules')), join(dir, 'node_modules'), 'dir');
    const tsc = join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc');
    await run(process.execPath, [tsc, '-p', 'tsconfig.json'], dir, `tsc of ${rev}`);
    const cli = join(dir, 'dist', 'src', 'cli', 'perch.js');
    if (!existsSync(cli)) throw new Error(`the build of ${rev} has no dist/src/cli/perch.js`);
    return { rev, commit, cli, remove };
  } catch (err) {
    remove();
    throw err;
  }
}
