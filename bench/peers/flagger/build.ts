// Finds or builds the real Flagger at the version tools/flagger/go.mod pins, with its official CRDs
// (artifacts/flagger/crd.yaml of the same module), cached in ~/.cache/perch/flagger/ after a first build.
import type { V1CustomResourceDefinition } from '@kubernetes/client-node';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cacheBase, lookupGo, type Progress } from '../../../src/sandbox/control-plane/binaries.js';
import { readCrds } from '../../../src/sandbox/control-plane/crds.js';
import {
  buildGoCommand,
  executable,
  goBuildEnv,
  manifestCacheId,
  pinnedModuleVersion,
  runGo,
} from '../../../src/sandbox/go-build.js';
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
  return pinnedModuleVersion(manifestDir, MODULE);
}

/** A folder per manifest: a new go.mod, go.sum or tools.go gets a new folder, so never a stale build. */
export function flaggerCacheDir(manifestDir = flaggerManifestDir): string {
  const id = manifestCacheId(pinnedFlaggerVersion(manifestDir), manifestDir, [
    'go.mod',
    'go.sum',
    'tools.go',
  ]);
  return join(cacheBase(), 'flagger', id);
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
  progress(`building Flagger ${version} with ${go.version} (first run only; takes several minutes)`);
  // The version comes from go.mod and the checksum from go.sum: no version is named here.
  let moduleJson = '';
  await runGo(go.path, ['mod', 'download', '-json', MODULE], manifestDir, goBuildEnv(), (l, stream) => {
    if (stream === 'stdout') moduleJson += l;
  });
  const download = JSON.parse(moduleJson) as ModuleDownload;
  if (download.Error || !download.Dir || download.Version !== version) {
    throw new Error(
      `go mod download ${MODULE} gave ${download.Version ?? 'no version'} (want ${version}): ${download.Error ?? ''}`,
    );
  }
  const crdSource = join(download.Dir, 'artifacts', 'flagger', 'crd.yaml');
  await buildGoCommand({
    go,
    manifestDir,
    packages: [COMMAND],
    ldflags: `-s -w -X ${MODULE}/pkg/version.VERSION=${version.slice(1)}`,
    version,
    dir,
    into: 'replace',
    label: 'compiling Flagger',
    step: 10,
    progress,
    // Written anew rather than copied: the module cache's files are read-only.
    extraFiles: (staging) => writeFileSync(join(staging, 'crd.yaml'), readFileSync(crdSource)),
  });
  progress(`built Flagger ${version} into ${dir}`);
}
