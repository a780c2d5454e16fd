// Building a pinned Go command from its tools/<name>/go.mod into a cache folder: the version read from
// go.mod, go's output as lines, progress in percent of packages, and a staging folder moved into place;
// and downloading a pinned module for the files it ships (CRDs).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  accessSync,
  constants,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { runProcess } from './run-process.js';

export type Progress = (line: string) => void;

export interface GoToolchain {
  path: string;
  /** `go env GOVERSION`, e.g. go1.26.0. */
  version: string;
}

/** The module's version in a go.mod's require lines; undefined when it is not required there. */
export function requiredVersion(goMod: string, module: string): string | undefined {
  const escaped = module.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  return new RegExp(`^\\s*(?:require\\s+)?${escaped}\\s+(v\\d+\\.\\d+\\.\\d+)\\b`, 'm').exec(goMod)?.[1];
}

/** The version `manifestDir`/go.mod pins `module` at (the one place it is written). */
export function pinnedModuleVersion(manifestDir: string, module: string): string {
  const version = requiredVersion(readFileSync(join(manifestDir, 'go.mod'), 'utf8'), module);
  if (!version) throw new Error(`no ${module} version in ${manifestDir}/go.mod`);
  return version;
}

/**
 * `go mod download` of `module` at the version `manifestDir`/go.mod pins (go.sum holds its checksum), for
 * files the module ships that are not Go code (CRDs). Returns the module's read-only folder in Go's cache.
 */
export async function downloadModule(go: GoToolchain, manifestDir: string, module: string): Promise<string> {
  const version = pinnedModuleVersion(manifestDir, module);
  const r = await runProcess(go.path, ['mod', 'download', '-json', module], {
    cwd: manifestDir,
    env: { ...process.env, GOTOOLCHAIN: 'local' },
  });
  let download: { Version?: string; Dir?: string; Error?: string } = {};
  try {
    download = JSON.parse(r.stdout) as typeof download;
  } catch {
    // Said below, with what go printed.
  }
  if (r.code !== 0 && !download.Error) {
    const said = [r.stderr, r.stdout].filter(Boolean).join('\n').trim();
    throw new Error(`go mod download ${module} failed in ${manifestDir}:\n${said}`);
  }
  if (download.Error || !download.Dir || download.Version !== version) {
    throw new Error(
      `go mod download ${module} gave ${download.Version ?? 'no version'} (want ${version}): ${download.Error ?? ''}`,
    );
  }
  return download.Dir;
}

/** A cache folder's name per manifest: a change to any of `files` gets a new folder, so never a stale build. */
export function manifestCacheId(version: string, manifestDir: string, files: readonly string[]): string {
  const hash = createHash('sha256');
  for (const f of files) hash.update(readFileSync(join(manifestDir, f)));
  return `${version}-${process.platform}-${process.arch}-${hash.digest('hex').slice(0, 12)}`;
}

export function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The toolchain as installed (no download), modules as go.mod and go.sum say, static binaries. */
export function goBuildEnv(): NodeJS.ProcessEnv {
  return { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-mod=mod', CGO_ENABLED: '0' };
}

/** Runs go in `cwd`; calls onLine for each line of its output but downloads; rejects with its tail. */
export function runGo(
  go: string,
  args: string[],
  cwd: string,
  env: NodeJS.ProcessEnv,
  onLine: (line: string, stream: 'stdout' | 'stderr') => void,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const proc = spawn(go, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const tail: string[] = [];
    const take = (stream: 'stdout' | 'stderr') => (line: string) => {
      tail.push(line);
      if (tail.length > 30) tail.shift();
      if (!line.startsWith('go: downloading')) onLine(line, stream);
    };
    createInterface(proc.stdout).on('line', take('stdout'));
    createInterface(proc.stderr).on('line', take('stderr'));
    proc.once('error', reject);
    proc.once('close', (code) =>
      code === 0
        ? resolve()
        : reject(new Error(`go ${args.join(' ')} failed (exit ${code}):\n${tail.join('\n')}`)),
    );
  });
}

export interface GoCommandBuild {
  go: GoToolchain;
  /** The folder of the go.mod that pins the packages: go runs there. */
  manifestDir: string;
  /** The main packages; each becomes an executable named as its last path element. */
  packages: string[];
  ldflags: string;
  /** Written to VERSION beside the executables. */
  version: string;
  /** The cache folder. */
  dir: string;
  /**
   * 'replace': `dir` is this build's own folder, swapped in whole; 'add': what is built joins what
   * `dir` already holds (one file at a time).
   */
  into: 'replace' | 'add';
  /** Starts each progress line, e.g. 'compiling Helm'. */
  label: string;
  /** Percent between progress lines. */
  step: number;
  progress: Progress;
  /** Writes more files into the staging folder before it is moved into place. */
  extraFiles?: (staging: string) => void;
}

/**
 * Compiles the packages into `dir` with `go build -v`, telling progress each `step` percent of the
 * packages `go list -deps` counts.
 */
export async function buildGoCommand(b: GoCommandBuild): Promise<void> {
  const env = goBuildEnv();
  let total = 0;
  await runGo(b.go.path, ['list', '-deps', ...b.packages], b.manifestDir, env, (_l, stream) => {
    if (stream === 'stdout') total++;
  });
  total = Math.max(total, 1);
  // Build into a private folder, then move into place: a killed build never leaves half a cache.
  const staging = `${b.dir}.partial-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  let compiled = 0;
  let lastShown = 0;
  await runGo(
    b.go.path,
    ['build', '-v', '-trimpath', '-ldflags', b.ldflags, '-o', `${staging}/`, ...b.packages],
    b.manifestDir,
    env,
    () => {
      const pct = Math.min(99, Math.floor((++compiled / total) * 100));
      if (pct >= lastShown + b.step) {
        lastShown = pct;
        b.progress(`${b.label}: ${pct}% (${compiled}/${total} packages)`);
      }
    },
  );
  b.extraFiles?.(staging);
  writeFileSync(join(staging, 'VERSION'), `${b.version}\n`);
  if (b.into === 'replace') {
    mkdirSync(join(b.dir, '..'), { recursive: true });
    rmSync(b.dir, { recursive: true, force: true });
    renameSync(staging, b.dir);
  } else {
    mkdirSync(b.dir, { recursive: true });
    for (const f of readdirSync(staging)) renameSync(join(staging, f), join(b.dir, f));
    rmSync(staging, { recursive: true, force: true });
  }
}
