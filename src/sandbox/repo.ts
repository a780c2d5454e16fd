// Where the repository's own files are (crds/, tools/control-plane/, tools/gateway-api/) when running
// from src or dist.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && JSON.parse(readFileSync(manifest, 'utf8')).name === 'perch') return dir;
    if (dirname(dir) === dir) throw new Error(`perch's package.json not found above ${start}`);
  }
}

export const repoRoot = findRoot(dirname(fileURLToPath(import.meta.url)));
export const crdsDir = join(repoRoot, 'crds');
export const controlPlaneManifestDir = join(repoRoot, 'tools', 'control-plane');
export const gatewayApiManifestDir = join(repoRoot, 'tools', 'gateway-api');
