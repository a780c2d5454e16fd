// The controller image for the tests: tools/image/build (a no-op when the archive already holds this
// checkout's build), its progress passed on to stderr, and the archive's own config as skopeo reads it.
import { execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { repoRoot } from '../../src/sandbox/repo.js';

export const IMAGE_ARCHIVE = join(repoRoot, 'dist-image', 'perch-controller.oci.tar');

/** Runs tools/image/build; the OCI archive's path. A cold build (no cached base) takes a minute or more. */
export function buildImage(archive = IMAGE_ARCHIVE): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(repoRoot, 'tools', 'image', 'build'), ['--output', archive], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const tail: string[] = [];
    createInterface(child.stderr).on('line', (line) => {
      tail.push(line);
      if (tail.length > 20) tail.shift();
      process.stderr.write(`  [image] ${line}\n`);
    });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (code === 0) resolve(stdout.trim().split('\n').at(-1)!);
      else reject(new Error(`tools/image/build failed (${code ?? signal}):\n${tail.join('\n')}`));
    });
  });
}

/** The parts of an OCI image config the tests read. */
export interface ImageConfig {
  User?: string;
  Entrypoint?: string[];
  Cmd?: string[];
  WorkingDir?: string;
  Env?: string[];
  Labels?: Record<string, string>;
}

/** `skopeo inspect --config` of the archive: the config as any runtime given the archive would read it. */
export function archiveConfig(archive = IMAGE_ARCHIVE): Promise<ImageConfig> {
  return new Promise((resolve, reject) => {
    execFile('skopeo', ['inspect', '--config', `oci-archive:${archive}`], (err, stdout, stderr) => {
      if (err) reject(new Error(`skopeo inspect --config oci-archive:${archive}: ${stderr || err.message}`));
      else resolve((JSON.parse(stdout) as { config: ImageConfig }).config);
    });
  });
}
