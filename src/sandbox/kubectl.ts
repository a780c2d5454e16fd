// Runs kubectl against a kubeconfig and collects what it printed: for the demo, and the tests' helper.
import { runProcess, type ProcessResult } from './run-process.js';

export type KubectlResult = ProcessResult;

export function runKubectl(
  bin: string,
  kubeconfig: string,
  args: string[],
  input?: string,
): Promise<KubectlResult> {
  return runProcess(bin, args, { env: { ...process.env, KUBECONFIG: kubeconfig }, input });
}

/** kubectl that must succeed: its stdout, or an error carrying its stderr. */
export async function runKubectlOk(
  bin: string,
  kubeconfig: string,
  args: string[],
  input?: string,
): Promise<string> {
  const r = await runKubectl(bin, kubeconfig, args, input);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}
