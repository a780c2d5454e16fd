// The child process runFlaggerPeer starts inside a private network namespace: runs the peer there and
// prints its figures as one JSON line on stdout (progress on stderr).
import type { PeerFigures, PeerOptions } from './figures.js';
import { measureFlagger } from './measure.js';

async function main(): Promise<number> {
  const opts = JSON.parse(process.argv[2] ?? '{}') as PeerOptions;
  const network = (process.argv[3] ?? 'private network namespace') as PeerFigures['network'];
  // Its children die with it (setpriv's parent-death signal), so a stop by PID leaves nothing running.
  process.once('SIGTERM', () => process.exit(143));
  const figures = await measureFlagger(opts, network, (line) => process.stderr.write(`${line}\n`));
  process.stdout.write(`${JSON.stringify(figures)}\n`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
