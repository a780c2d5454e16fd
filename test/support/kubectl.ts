// Runs the real kubectl against a kubeconfig, as a person would.
import { spawn } from 'node:child_process';
import { prepareBinaries } from '../../src/sandbox/control-plane/binaries.js';

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

let command: Promise<string> | undefined;

/** The kubectl `perch sandbox prepare` picked: envtest's, else PATH's, else the one it built. */
export function kubectlCommand(): Promise<string> {
  command ??= prepareBinaries().then((b) => b.kubectl);
  return command;
}

export async function kubectl(kubeconfig: string, args: string[], input?: string): Promise<KubectlResult> {
  const bin = await kubectlCommand();
  return new Promise((resolve, reject) => {
    const proc = spawn(bin, args, {
      env: { ...process.env, KUBECONFIG: kubeconfig },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.once('error', reject);
    proc.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    proc.stdin.end(input ?? '');
  });
}

/** kubectl that must succeed; throws with its stderr otherwise. */
export async function kubectlOk(kubeconfig: string, args: string[], input?: string): Promise<string> {
  const r = await kubectl(kubeconfig, args, input);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}
