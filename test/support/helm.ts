// Finds or builds the real Helm at the version tools/helm/go.mod pins, cached in ~/.cache/perch/helm/
// after a first `go build` (a few minutes on 2 cores), and runs it for the chart tests.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cacheBase, lookupGo, type Progress } from '../../src/sandbox/control-plane/binaries.js';
import {
  buildGoCommand,
  executable,
  manifestCacheId,
  pinnedModuleVersion,
  requiredVersion,
} from '../../src/sandbox/go-build.js';
import type { KubectlResult } from '../../src/sandbox/kubectl.js';
import { repoRoot } from '../../src/sandbox/repo.js';
import { runProcess } from '../../src/sandbox/run-process.js';

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

/** The Helm version pinned in tools/helm/go.mod (the one place it is written). */
export function pinnedHelmVersion(manifestDir = helmManifestDir): string {
  return pinnedModuleVersion(manifestDir, MODULE);
}

/** A folder per manifest: a new go.mod, go.sum or tools.go gets a new folder, so never a stale build. */
export function helmCacheDir(manifestDir = helmManifestDir): string {
  const id = manifestCacheId(pinnedHelmVersion(manifestDir), manifestDir, ['go.mod', 'go.sum', 'tools.go']);
  return join(cacheBase(), 'helm', id);
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
  return runProcess(bin, args, { env });
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
  progress(`building Helm ${version} with ${go.version} (first run only; takes a few minutes)`);
  progress('resolving Go modules (downloads them on a first run)');
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
  await buildGoCommand({
    go,
    manifestDir,
    packages: [COMMAND],
    ldflags,
    version,
    dir,
    into: 'replace',
    label: 'compiling Helm',
    step: 10,
    progress,
  });
  progress(`built Helm ${version} into ${dir}`);
}
