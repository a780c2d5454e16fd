// `npm run bench:flagger -- --n 20 [--idle 10] [--interval 10] [--qps Q --burst B]
// [--timeout SECONDS] [--host-network] [--json]`: one Flagger peer run, its figures printed.
import { parseArgs } from 'node:util';
import { formatFigures, runFlaggerPeer, type RunPeerOptions } from './peer.js';

const USAGE =
  'usage: node dist/bench/peers/flagger/run.js --n N [--idle SECONDS] [--interval SECONDS] ' +
  '[--qps Q] [--burst B] [--timeout SECONDS] [--host-network] [--json]';

function num(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n))
    throw new RangeError(`--${name}: "${v}" is not a number\n${USAGE}`);
  return n;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      n: { type: 'string' },
      idle: { type: 'string', default: '60' },
      interval: { type: 'string' },
      qps: { type: 'string' },
      burst: { type: 'string' },
      timeout: { type: 'string' },
      'host-network': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
  });
  if (values.n === undefined) throw new RangeError(`--n is required\n${USAGE}`);
  const opts: RunPeerOptions = {
    n: num('n', values.n)!,
    idleMs: num('idle', values.idle)! * 1000,
    network: values['host-network'] ? 'host' : 'private',
    progress: (line) => process.stderr.write(`[flagger peer] ${line}\n`),
  };
  const interval = num('interval', values.interval);
  if (interval !== undefined) opts.intervalSeconds = interval;
  const qps = num('qps', values.qps);
  if (qps !== undefined) opts.qps = qps;
  const burst = num('burst', values.burst);
  if (burst !== undefined) opts.burst = burst;
  const timeout = num('timeout', values.timeout);
  if (timeout !== undefined) opts.timeoutMs = timeout * 1000;
  const figures = await runFlaggerPeer(opts);
  process.stdout.write(
    values.json ? `${JSON.stringify(figures, null, 2)}\n` : `${formatFigures(figures).join('\n')}\n`,
  );
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
