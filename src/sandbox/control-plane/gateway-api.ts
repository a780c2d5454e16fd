// Finds the official Gateway API CRDs (standard channel) at the version tools/gateway-api/go.mod pins.
// Order: $PERCH_GATEWAY_API_CRDS, then our cache, then a one-time `go mod download` of the module.
import type { V1CustomResourceDefinition } from '@kubernetes/client-node';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gatewayApiManifestDir } from '../repo.js';
import { cacheBase, lookupGo, type Progress } from './binaries.js';
import { readCrds } from './crds.js';
import { downloadModule, pinnedModuleVersion } from '../go-build.js';

export const GATEWAY_API_CRDS_ENV = 'PERCH_GATEWAY_API_CRDS';
const MODULE = 'sigs.k8s.io/gateway-api';
const BUNDLE_VERSION = 'gateway.networking.k8s.io/bundle-version';
const CHANNEL = 'gateway.networking.k8s.io/channel';
const HTTPROUTES = 'httproutes.gateway.networking.k8s.io';

export interface GatewayApiCrds {
  /** The pinned version, e.g. v1.6.3. */
  version: string;
  /** The folder they were read from. */
  dir: string;
  source: typeof GATEWAY_API_CRDS_ENV | 'cache' | 'go';
  /** Parsed and checked: each of the pinned bundle-version and the standard channel. */
  crds: V1CustomResourceDefinition[];
}

function goMod(manifestDir: string): string {
  return readFileSync(join(manifestDir, 'go.mod'), 'utf8');
}

/** The Gateway API version pinned in tools/gateway-api/go.mod (the one place it is written). */
export function pinnedGatewayApiVersion(manifestDir = gatewayApiManifestDir): string {
  return pinnedModuleVersion(manifestDir, MODULE);
}

/** Where the CRD files of `version` are cached: a folder per version, written once. */
export function gatewayApiCacheDir(version = pinnedGatewayApiVersion()): string {
  return join(cacheBase(), 'gateway-api', version);
}

/**
 * Returns the standard-channel CRDs of the pinned version, fetching them with Go into the cache on a
 * first run. Throws a message naming the fix when Go is missing, or a folder holds another version.
 */
export async function prepareGatewayApiCrds(
  progress: Progress = () => {},
  manifestDir = gatewayApiManifestDir,
): Promise<GatewayApiCrds> {
  const version = pinnedGatewayApiVersion(manifestDir);
  const given = process.env[GATEWAY_API_CRDS_ENV];
  if (given) {
    const fix =
      `Point it at the official standard-channel CRD files of Gateway API ${version} (config/crd/standard/ ` +
      `of the ${MODULE} module at ${version}, or that release's standard-install.yaml), or unset it.`;
    const crds = checkedCrds(given, version, `${GATEWAY_API_CRDS_ENV}=${given}`, fix);
    return { version, dir: given, source: GATEWAY_API_CRDS_ENV, crds };
  }
  const dir = gatewayApiCacheDir(version);
  let source: GatewayApiCrds['source'] = 'cache';
  if (!existsSync(dir)) {
    await fetchIntoCache(dir, version, manifestDir, progress);
    source = 'go';
  }
  const fix = 'Remove that folder and run `perch sandbox prepare` to fetch the official files again.';
  const crds = checkedCrds(dir, version, `the cache folder ${dir}`, fix);
  return { version, dir, source, crds };
}

/** Reads the CRDs of `dir` and refuses any not of `version`'s standard channel, or a set without HTTPRoute. */
function checkedCrds(dir: string, version: string, where: string, fix: string): V1CustomResourceDefinition[] {
  let crds: V1CustomResourceDefinition[];
  try {
    crds = readCrds(dir);
  } catch (err) {
    throw new Error(`${where}: cannot read it (${(err as Error).message}). ${fix}`, { cause: err });
  }
  for (const crd of crds) {
    const annotations = crd.metadata?.annotations ?? {};
    const found = annotations[BUNDLE_VERSION];
    if (found !== version) {
      throw new Error(
        `${where}: CRD ${crd.metadata?.name} is ` +
          (found
            ? `Gateway API ${found}`
            : `not an official Gateway API CRD (no ${BUNDLE_VERSION} annotation)`) +
          `, but this Perch pins ${version} (tools/gateway-api/go.mod). ${fix}`,
      );
    }
    if (annotations[CHANNEL] !== 'standard') {
      throw new Error(
        `${where}: CRD ${crd.metadata?.name} is of the ${annotations[CHANNEL] ?? 'unnamed'} channel, ` +
          `not the standard one. ${fix}`,
      );
    }
  }
  if (!crds.some((c) => c.metadata?.name === HTTPROUTES)) {
    throw new Error(`${where}: no CustomResourceDefinition ${HTTPROUTES} there. ${fix}`);
  }
  return crds;
}

/** `go mod download` of the pinned module, then its standard-channel CRD files copied into `dir`. */
async function fetchIntoCache(dir: string, version: string, manifestDir: string, progress: Progress) {
  const go = lookupGo();
  if (!go) {
    const goLine = /^go\s+(\S+)/m.exec(goMod(manifestDir))?.[1] ?? '';
    throw new Error(
      `The Gateway API CRDs ${version} (pinned in tools/gateway-api/go.mod) are not in the cache ` +
        `(${dir}) and Go is not installed to fetch them.\n` +
        `Either install Go ${goLine} or newer (https://go.dev/doc/install) and run \`perch sandbox prepare\`,\n` +
        `or point ${GATEWAY_API_CRDS_ENV} at a folder holding the official standard-channel CRD files of ` +
        `Gateway API ${version}\n(config/crd/standard/ of the ${MODULE} module at ${version}, or that ` +
        `release's standard-install.yaml).`,
    );
  }
  progress(`fetching the Gateway API CRDs ${version} (standard channel) with ${go.version} (first run only)`);
  const moduleDir = await downloadModule(go, manifestDir, MODULE);
  const standard = join(moduleDir, 'config', 'crd', 'standard');
  // Only the files that hold CRDs. The folder also has a ValidatingAdmissionPolicy (safe-upgrades) that
  // guards a long-lived cluster's later upgrades (no experimental over standard, no downgrade): the
  // sandbox starts empty every time and never upgrades, and a policy on every CRD write is start-up cost.
  const files = readdirSync(standard).filter(
    (f) =>
      /\.ya?ml$/.test(f) &&
      /^kind:\s*CustomResourceDefinition\s*$/m.test(readFileSync(join(standard, f), 'utf8')),
  );
  // Copy into a private folder, then move into place: a killed run never leaves half a cache.
  const staging = `${dir}.partial-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  // Written anew rather than copied: the module cache's files are read-only.
  for (const f of files) writeFileSync(join(staging, f), readFileSync(join(standard, f)));
  try {
    renameSync(staging, dir);
  } catch (err) {
    // Another run cached them first: theirs are the same files.
    rmSync(staging, { recursive: true, force: true });
    if (!existsSync(dir)) throw err;
  }
  progress(`cached ${files.length} CRD files in ${dir}`);
}
