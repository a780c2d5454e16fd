// Runs the real kubectl against a kubeconfig, as a person would.
import { prepareBinaries } from '../../src/sandbox/control-plane/binaries.js';
import { runKubectl, runKubectlOk, type KubectlResult } from '../../src/sandbox/kubectl.js';

export type { KubectlResult } from '../../src/sandbox/kubectl.js';

let command: Promise<string> | undefined;

/** The kubectl `perch sandbox prepare` picked: envtest's, else PATH's, else the one it built. */
export function kubectlCommand(): Promise<string> {
  command ??= prepareBinaries().then((b) => b.kubectl);
  return command;
}

export async function kubectl(kubeconfig: string, args: string[], input?: string): Promise<KubectlResult> {
  return runKubectl(await kubectlCommand(), kubeconfig, args, input);
}

/** kubectl that must succeed; throws with its stderr otherwise. */
export async function kubectlOk(kubeconfig: string, args: string[], input?: string): Promise<string> {
  return runKubectlOk(await kubectlCommand(), kubeconfig, args, input);
}
