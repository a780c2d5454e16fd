// Finds or builds the real Flagger at the version tools/flagger/go.mod pins, with its official CRDs
// (artifacts/flagger/crd.yaml of the same module), cached in ~/.cache/perch/flagger/ after a first build.
import type { V1CustomResourceDefinition } from '@kubernetes/client-node';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { cacheBase, lookupGo, type Progress } from '../../../src/sandbox/control-plane/binaries.js';
import { readCrds } from '../../../src/sandbox/control-plane/crds.js';
import { repoRoot } from '../../../src/sandbox/repo.js';

export const flaggerManifestDir = join(repoRoot, 'tools', 'flagger');
const MODULE = 'github.com/fluxcd/flagger';
const COMMAND = `${MODULE}/cmd/flagger`;
/** The CRDs Flagger lists at start-up (cmd/flagger/main.go verifyCRDs); it exits without them. */
export const FLAGGER_CRDS = [
  'canaries.flagger.app',
  'metrictemplates.flagger.app',
  'alertproviders.flagger.app',
] as const;

export interface FlaggerBuild {
  /** The pinned version, e.g. v1.36.1. */
  version: string;
  /** The executable. */
  binary: string;
  /** The module's artifacts/flagger/crd.yaml, as copied into the cache. */
  crdFile: string;
  crds: V1CustomResourceDefinition[];
  dir: string;
  source: 'cache' | 'built';
  /** Wall time of the build (module download included) when this call built it. */
  buildMs?: number;
}

/** The Flagger version pinned in tools/flagger/go.mod (the one place it is written). */
export function pinnedFlaggerVersion(manifestDir = flaggerManifestDir): string {
  const goMod = readFileSync(join(manifestDir, 'go.mod'), 'utf8');
  const match = /^\s*(?:require\s+)?github\.com\/fluxcd\/flagger\s+(v\d+\.\d+\.\d+)\s*$/m.exec(goMod);
  if (!match?.[1]) throw new Error(`no ${MODULE} version in ${manifestDir}/go.mod`);
  return match[1];
}

/** A folder per manifest: a new go.mod, go.sum or tools.go gets a new folder, so never a stale build. */
export function flaggerCacheDir(manifestDir = flaggerManifestDir): string {
  const hash = createHash('sha256');
  for (const f of ['go.mod', 'go.sum', 'tools.go']) hash.update(readFileSync(join(manifestDir, f)));
  const id = `${pinnedFlaggerVersion(manifestDir)}-${process.platform}-${process.arch}-${hash.digest('hex').slice(0, 12)}`;
  return join(cacheBase(), 'flagger', id);
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Returns the cached Flagger, building it with Go on a first run (several minutes on 2 cores). */
export async function prepareFlagger(
  progress: Progress = () => {},
  manifestDir = flaggerManifestDir,
): Promise<FlaggerBuild> {
  const version = pinnedFlaggerVersion(manifestDir);
  const dir = flaggerCacheDir(manifestDir);
  const binary = join(dir, 'flagger');
  const crdFile = join(dir, 'crd.yaml');
  let source: FlaggerBuild['source'] = 'cache';
  let buildMs: number | undefined;
  if (!executable(binary) || !existsSync(crdFile)) {
    const started = performance.now();
    await build(dir, version, manifestDir, progress);
    buildMs = performance.now() - started;
    source = 'built';
  }
  const crds = readCrds(crdFile);
  const names = new Set(crds.map((c) => c.metadata?.name));
  const missing = FLAGGER_CRDS.filter((n) => !names.has(n));
  if (missing.length > 0) {
    throw new Error(
      `${crdFile} lacks the CRDs ${missing.join(', ')} Flagger ${version} needs. ` +
        'Remove that folder and run again to copy artifacts/flagger/crd.yaml from the module anew.',
    );
  }
  return { version, binary, crdFile, crds, dir, source, ...(buildMs === undefined ? {} : { buildMs }) };
}

interface ModuleDownload {
  Version?: string;
  Dir?: string;
  Error?: string;
}

async function build(dir: string, version: string, manifestDir: string, progress: Progress): Promise<void> {
  const go = lookupGo();
  if (!go) {
    throw new Error(
      `Flagger ${version} (pinned in tools/flagger/go.mod) is not built yet (${dir}) and Go is not installed ` +
        'to build it.\nInstall Go 1.26 or newer (https://go.dev/doc/install) and run the benchmark again; ' +
        'the first build takes about 5 minutes on 2 cores.',
    );
  }
  const env = { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-mod=mod', CGO_ENABLED: '0' };
  progress(`building Flagger ${version} with ${go.version} (first run only; takes several minutes)`);
  // The version comes from go.mod and the checksum from go.sum: no version is named here.
  let moduleJson = '';
  await runGo(go.path, ['mod', 'download', '-json', MODULE], manifestDir, env, (l, stream) => {
    if (stream === 'stdout') moduleJson += l;
  });
  const download = JSON.parse(moduleJson) as ModuleDownload;
  if (download.Error || !download.Dir || download.Version !== version) {
    throw new Error(
      `go mod download ${MODULE} gave ${download.Version ?? 'no version'} (want ${version}): ${download.Error ?? ''}`,
    );
  }
  let total = 0;
  await runGo(go.path, ['list', '-deps', COMMAND], manifestDir, env, (_l, stream) => {
    if (stream === 'stdout') total++;
  });
  // Build into a private folder, then move into place: a killed build never leaves half a cache.
  const staging = `${dir}.partial-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  let compiled = 0;
  let lastShown = 0;
  const ldflags = `-s -w -X ${MODULE}/pkg/version.VERSION=${version.slice(1)}`;
  await runGo(
    go.path,
    ['build', '-v', '-trimpath', '-ldflags', ldflags, '-o', join(staging, 'flagger'), COMMAND],
    manifestDir,
    env,
    () => {
      const pct = Math.min(99, Math.floor((++compiled / Math.max(total, 1)) * 100));
      if (pct >= lastShown + 10) {
        lastShown = pct;
        progress(`compiling Flagger: ${pct}% (${compiled}/${total} packages)`);
      }
    },
  );
  // Written anew rather than copied: the module cache's files are read-only.
  writeFileSync(
    join(staging, 'crd.yaml'),
    readFileSync(join(download.Dir, 'artifacts', 'flagger', 'crd.yaml')),
  );
  writeFileSync(join(staging, 'VERSION'), `${version}\n`);
  mkdirSync(join(dir, '..'), { recursive: true });
  rmSync(dir, { recursive: true, force: true });
  renameSync(staging, dir);
  progress(`built Flagger ${version} into ${dir}`);
}

/** Runs go in `cwd`; calls onLine for each line of its output but downloads; rejects with its tail. */
function runGo(
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
