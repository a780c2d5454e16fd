// Runs a command to its end and collects what it printed: kubectl for the demo, helm and the built CLIs
// in the tests. For a long-lived child the sandbox stops later, see child-process.ts.
import { spawn } from 'node:child_process';

export interface ProcessResult {
  /** The exit code; -1 when a signal ended it. */
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunProcessOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Written to its stdin, which is then closed (at once without it). */
  input?: string;
}

/** Resolves once it has exited and its output is read, whatever the code; rejects when it cannot start. */
export function runProcess(
  command: string,
  args: string[],
  opts: RunProcessOptions = {},
): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const proc = spawn(command, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.once('error', reject);
    proc.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    // One that exits without reading all its input is no error here: its code and stderr tell.
    proc.stdin.on('error', () => {});
    proc.stdin.end(opts.input ?? '');
  });
}
