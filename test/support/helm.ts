// Finds or builds the real Helm at the version tools/helm/go.mod pins, cached in ~/.cache/perch/helm/
// after a first `go build` (a few minutes on 2 cores), and runs it for the chart tests.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  accessSync,
  constants,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { cacheBase, lookupGo, type Progress } from '../../src/sandbox/control-plane/binaries.js';
import type { KubectlResult } from '../../src/sandbox/kubectl.js';
import { repoRoot } from '../../src/sandbox/repo.js';

export const helmManifestDir = join(repoRoot, 'tools', 'helm');
export const chartDir = join(repoRoot, 'charts', 'perch');
const MODULE = 'helm.sh/helm/v3';
const COMMAND = `${MODULE}/cmd/helm`;

export interface HelmBuild {
  /** The pinned version, e.g. v3.22.0. */
  version: string;
  /** The executable. */
  binary: string;
  source: 'cache' | 'built';
}

function requiredVersion(goMod: string, module: string): string | undefined {
  const escaped = module.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  return new RegExp(`^\\s*(?:require\\s+)?${escaped}\\s+(v\\d+\\.\\d+\\.\\d+)\\b`, 'm').exec(goMod)?.[1];
}

/** The Helm version pinned in tools/helm/go.mod (the one place it is written). */
export function pinnedHelmVersion(manifestDir = helmManifestDir): string {
  const version = requiredVersion(readFileSync(join(manifestDir, 'go.mod'), 'utf8'), MODULE);
  if (!version) throw new Error(`no ${MODULE} version in ${manifestDir}/go.mod`);
  return version;
}

/** A folder per manifest: a new go.mod, go.sum or tools.go gets a new folder, so never a stale build. */
export function helmCacheDir(manifestDir = helmManifestDir): string {
  const hash = createHash('sha256');
  for (const f of ['go.mod', 'go.sum', 'tools.go']) hash.update(readFileSync(join(manifestDir, f)));
  const id = `${pinnedHelmVersion(manifestDir)}-${process.platform}-${process.arch}-${hash.digest('hex').slice(0, 12)}`;
  return join(cacheBase(), 'helm', id);
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Returns the cached helm, building it with Go on a first run. */
export async function prepareHelm(
  progress: Progress = () => {},
  manifestDir = helmManifestDir,
): Promise<HelmBuild> {
  const version = pinnedHelmVersion(manifestDir);
  const dir = helmCacheDir(manifestDir);
  const binary = join(dir, 'helm');
  if (executable(binary)) return { version, binary, source: 'cache' };
  await build(dir, version, manifestDir, progress);
  return { version, binary, source: 'built' };
}

let shared: Promise<HelmBuild> | undefined;

/** The suite's helm, built once per run at most (progress on stderr). */
export function helmBinary(): Promise<string> {
  shared ??= prepareHelm((line) => process.stderr.write(`  [helm] ${line}\n`));
  return shared.then((h) => h.binary);
}

let home: string | undefined;

/** Runs helm against a kubeconfig, with its cache, config and data in a folder of this run's own. */
export async function helm(kubeconfig: string, args: string[]): Promise<KubectlResult> {
  const bin = await helmBinary();
  home ??= mkdtempSync(join(tmpdir(), 'perch-helm-home-'));
  const env = {
    ...process.env,
    KUBECONFIG: kubeconfig,
    HELM_CACHE_HOME: join(home, 'cache'),
    HELM_CONFIG_HOME: join(home, 'config'),
    HELM_DATA_HOME: join(home, 'data'),
  };
  return new Promise((resolve, reject) => {
    const proc = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.once('error', reject);
    proc.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** helm that must succeed: its stdout, or an error carrying its stderr. */
export async function helmOk(kubeconfig: string, args: string[]): Promise<string> {
  const r = await helm(kubeconfig, args);
  if (r.code !== 0) throw new Error(`helm ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/** Removes the folder helm() kept its cache and config in (the root hook's job at the end of a run). */
export function removeHelmHome(): void {
  if (home) rmSync(home, { recursive: true, force: true });
  home = undefined;
}

async function build(dir: string, version: string, manifestDir: string, progress: Progress): Promise<void> {
  const go = lookupGo();
  if (!go) {
    throw new Error(
      `Helm ${version} (pinned in tools/helm/go.mod) is not built yet (${dir}) and Go is not installed ` +
        'to build it.\nInstall Go 1.26 or newer (https://go.dev/doc/install) and run the tests again; ' +
        'the first build takes a few minutes on 2 cores.',
    );
  }
  const env = { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-mod=mod', CGO_ENABLED: '0' };
  progress(`building Helm ${version} with ${go.version} (first run only; takes a few minutes)`);
  progress('resolving Go modules (downloads them on a first run)');
  let total = 0;
  await runGo(go.path, ['list', '-deps', COMMAND], manifestDir, env, (_l, stream) => {
    if (stream === 'stdout') total++;
  });
  // As Helm's Makefile does: its default capabilities (what `helm template` and `helm lint` assume the
  // cluster serves) follow the client-go it was built with, not the 1.20 written in its source.
  const clientGo = requiredVersion(readFileSync(join(manifestDir, 'go.mod'), 'utf8'), 'k8s.io/client-go');
  const [, minor] = clientGo?.slice(1).split('.') ?? [];
  const k8s = minor
    ? [
        `-X ${MODULE}/pkg/lint/rules.k8sVersionMajor=1`,
        `-X ${MODULE}/pkg/lint/rules.k8sVersionMinor=${minor}`,
        `-X ${MODULE}/pkg/chartutil.k8sVersionMajor=1`,
        `-X ${MODULE}/pkg/chartutil.k8sVersionMinor=${minor}`,
      ]
    : [];
  const ldflags = ['-s', '-w', `-X ${MODULE}/internal/version.version=${version}`, ...k8s].join(' ');
  // Build into a private folder, then move into place: a killed build never leaves half a cache.
  const staging = `${dir}.partial-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  let compiled = 0;
  let lastShown = 0;
  await runGo(
    go.path,
    ['build', '-v', '-trimpath', '-ldflags', ldflags, '-o', join(staging, 'helm'), COMMAND],
    manifestDir,
    env,
    () => {
      const pct = Math.min(99, Math.floor((++compiled / Math.max(total, 1)) * 100));
      if (pct >= lastShown + 10) {
        lastShown = pct;
        progress(`compiling Helm: ${pct}% (${compiled}/${total} packages)`);
      }
    },
  );
  writeFileSync(join(staging, 'VERSION'), `${version}\n`);
  mkdirSync(join(dir, '..'), { recursive: true });
  rmSync(dir, { recursive: true, force: true });
  renameSync(staging, dir);
  progress(`built Helm ${version} into ${dir}`);
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
