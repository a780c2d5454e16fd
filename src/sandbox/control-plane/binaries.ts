// Finds or builds the official control-plane binaries (kube-apiserver, etcd, kube-controller-manager).
// Order: $KUBEBUILDER_ASSETS, then our cache, then a one-time `go build` from tools/control-plane/go.mod.
import { spawnSync } from 'node:child_process';
import { homedir } from 'node:os';
import { join } from 'node:path';
import {
  buildGoCommand,
  executable,
  manifestCacheId,
  pinnedModuleVersion,
  type GoToolchain,
  type Progress,
} from '../go-build.js';
import { controlPlaneManifestDir } from '../repo.js';

export type { Progress };

export const BINARY_NAMES = ['kube-apiserver', 'etcd', 'kube-controller-manager'] as const;
export type BinaryName = (typeof BINARY_NAMES)[number];
/** kubectl is built too, but only on a machine that has none on PATH. */
type Buildable = BinaryName | 'kubectl';

export interface Binaries {
  kubeApiserver: string;
  etcd: string;
  kubeControllerManager: string;
  /** kubectl from the assets folder, else the one on PATH, else the one built into the cache. */
  kubectl: string;
  /** Where each binary came from, for `perch sandbox prepare` to report. */
  source: 'KUBEBUILDER_ASSETS' | 'cache' | 'built';
  dir: string;
}

const GO_PACKAGES: Record<Buildable, string> = {
  'kube-apiserver': 'k8s.io/kubernetes/cmd/kube-apiserver',
  kubectl: 'k8s.io/kubernetes/cmd/kubectl',
  'kube-controller-manager': 'k8s.io/kubernetes/cmd/kube-controller-manager',
  etcd: './etcd',
};

/** The Kubernetes version pinned in tools/control-plane/go.mod (the one place it is written). */
export function pinnedKubernetesVersion(manifestDir = controlPlaneManifestDir): string {
  return pinnedModuleVersion(manifestDir, 'k8s.io/kubernetes');
}

/** Perch's cache: $PERCH_CACHE_DIR, else $XDG_CACHE_HOME/perch, else ~/.cache/perch. */
export function cacheBase(): string {
  return (
    process.env.PERCH_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'perch')
  );
}

/** The cache folder for this manifest: a new go.mod or go.sum gets a new folder, so never a stale build. */
export function cacheDir(manifestDir = controlPlaneManifestDir): string {
  const files = ['go.mod', 'go.sum', 'etcd/main.go'];
  return join(
    cacheBase(),
    'control-plane',
    manifestCacheId(pinnedKubernetesVersion(manifestDir), manifestDir, files),
  );
}

function complete(dir: string, names: readonly string[]): boolean {
  return names.every((n) => executable(join(dir, n)));
}

function kubectlOnPath(): boolean {
  return spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status === 0;
}

/** kubectl: the assets folder's when it has one, else the one on PATH, else the one built into our cache. */
function pickKubectl(assets: string | undefined, cache: string): string {
  if (assets && executable(join(assets, 'kubectl'))) return join(assets, 'kubectl');
  return kubectlOnPath() ? 'kubectl' : join(cache, 'kubectl');
}

function binaries(source: Binaries['source'], dir: string, kcmDir: string, kubectl: string): Binaries {
  return {
    kubeApiserver: join(dir, 'kube-apiserver'),
    etcd: join(dir, 'etcd'),
    kubeControllerManager: join(kcmDir, 'kube-controller-manager'),
    kubectl,
    source,
    dir,
  };
}

/**
 * Returns the binaries, building what is missing. setup-envtest's folders have no
 * kube-controller-manager; that one then comes from our cache or build.
 */
export async function prepareBinaries(progress: Progress = () => {}): Promise<Binaries> {
  const assets = process.env.KUBEBUILDER_ASSETS;
  const cache = cacheDir();
  if (assets) {
    if (!complete(assets, ['kube-apiserver', 'etcd'])) {
      throw new Error(
        `KUBEBUILDER_ASSETS=${assets} has no executable kube-apiserver and etcd. ` +
          'Point it at a folder made by `setup-envtest use -p path`, or unset it to build them with Go.',
      );
    }
    const kcmDir = complete(assets, ['kube-controller-manager'])
      ? assets
      : (await ensureBuilt(cache, ['kube-controller-manager'], progress), cache);
    return binaries('KUBEBUILDER_ASSETS', assets, kcmDir, pickKubectl(assets, cache));
  }
  const wanted: Buildable[] = kubectlOnPath() ? [...BINARY_NAMES] : [...BINARY_NAMES, 'kubectl'];
  const built = await ensureBuilt(cache, wanted, progress);
  return binaries(built ? 'built' : 'cache', cache, cache, pickKubectl(undefined, cache));
}

/** Builds `names` into `dir` unless they are there. Returns whether it built anything. */
async function ensureBuilt(dir: string, names: readonly Buildable[], progress: Progress): Promise<boolean> {
  const missing = names.filter((n) => !executable(join(dir, n)));
  if (missing.length === 0) return false;
  const go = findGo();
  const version = pinnedKubernetesVersion();
  progress(
    `building ${missing.join(', ')} ${version} with ${go.version} (first run only; takes several minutes)`,
  );
  progress('resolving Go modules (downloads them on a first run)');
  const ldflags = [
    '-s',
    '-w',
    `-X k8s.io/component-base/version.gitVersion=${version}`,
    `-X k8s.io/component-base/version.gitMajor=${version.split('.')[0]?.slice(1)}`,
    `-X k8s.io/component-base/version.gitMinor=${version.split('.')[1]}`,
    '-X k8s.io/component-base/version.gitTreeState=clean',
    `-X k8s.io/client-go/pkg/version.gitVersion=${version}`,
  ].join(' ');
  await buildGoCommand({
    go,
    manifestDir: controlPlaneManifestDir,
    packages: missing.map((n) => GO_PACKAGES[n]),
    ldflags,
    version,
    dir,
    // The cache may hold the others already (setup-envtest's folders lack only kube-controller-manager).
    into: 'add',
    label: 'compiling',
    step: 5,
    progress,
  });
  progress(`built into ${dir}`);
  return true;
}

/**
 * The Go toolchain: $GO when set (and then only that one), else `go` on PATH, else the official
 * tarball's /usr/local/go/bin/go (often missing from a service's PATH). Undefined when none runs.
 */
export function lookupGo(): GoToolchain | undefined {
  const candidates = process.env.GO ? [process.env.GO] : ['go', '/usr/local/go/bin/go'];
  for (const path of candidates) {
    const out = spawnSync(path, ['env', 'GOVERSION'], { encoding: 'utf8' });
    if (out.status === 0) return { path, version: out.stdout.trim() };
  }
  return undefined;
}

function findGo(): GoToolchain {
  const go = lookupGo();
  if (go) return go;
  throw new Error(
    'The control-plane binaries are not built yet and Go is not installed to build them.\n' +
      'Either install Go 1.24 or newer (https://go.dev/doc/install) and run `perch sandbox prepare`,\n' +
      'or fetch prebuilt envtest binaries and point KUBEBUILDER_ASSETS at them:\n' +
      '  go run sigs.k8s.io/controller-runtime/tools/setup-envtest@latest use 1.33.x -p path\n' +
      '  export KUBEBUILDER_ASSETS=<the printed folder>',
  );
}
