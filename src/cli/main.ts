// Runs a command's async entry point: usage errors exit 2 with their message, other errors exit 1.
import { UsageError } from './usage-error.js';

export function runMain(program: string, main: () => Promise<number>): void {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      const message = err instanceof Error ? err.message : String(err);
      process.stderr.write(`${program}: ${message}\n`);
      if (!(err instanceof UsageError) && process.env.PERCH_DEBUG && err instanceof Error) {
        process.stderr.write(`${err.stack}\n`);
      }
      process.exitCode = err instanceof UsageError ? 2 : 1;
    },
  );
}
