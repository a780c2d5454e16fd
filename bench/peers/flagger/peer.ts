// The Flagger peer as bench/scale calls it: builds what is missing, then runs the whole sandbox and
// Flagger in a private network namespace, since Flagger's HTTP server has no bind address (":<port>").
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { prepareBinaries } from '../../../src/sandbox/control-plane/index.js';
import { prepareFlagger } from './build.js';
import type { PeerFigures, PeerOptions } from './figures.js';
import { measureFlagger } from './measure.js';

export type { PeerFigures, PeerOptions } from './figures.js';
export { formatFigures } from './figures.js';

export interface RunPeerOptions extends PeerOptions {
  /** Progress lines (builds, phases); default none. */
  progress?: (line: string) => void;
  /**
   * 'private' (default): a network namespace of its own, where loopback is the only interface.
   * 'host': this machine's network, where Flagger's HTTP server listens on every interface.
   */
  network?: 'private' | 'host';
}

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));
const IP = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'].find((p) => existsSync(p));
const WORKER = join(dirname(fileURLToPath(import.meta.url)), 'worker.js');

/** Checks the options, naming the field and the fix. */
export function checkPeerOptions(o: PeerOptions): void {
  if (!Number.isInteger(o.n) || o.n < 1)
    throw new RangeError(`n: ${o.n} must be a whole number of Canaries >= 1`);
  if (!Number.isFinite(o.idleMs) || o.idleMs < 0) throw new RangeError(`idleMs: ${o.idleMs} must be >= 0 ms`);
  const interval = o.intervalSeconds ?? 10;
  if (!Number.isInteger(interval) || interval < 1)
    throw new RangeError(`intervalSeconds: ${interval} must be a whole number of seconds >= 1`);
  for (const k of ['qps', 'burst'] as const) {
    const v = o[k];
    if (v !== undefined && (!Number.isInteger(v) || v < 1))
      throw new RangeError(`${k}: ${v} must be a whole number >= 1`);
  }
}

/** Runs N Canaries through the real Flagger on a fresh sandbox and returns what they cost. */
export async function runFlaggerPeer(opts: RunPeerOptions): Promise<PeerFigures> {
  checkPeerOptions(opts);
  const progress = opts.progress ?? (() => {});
  // Builds need the network, which the namespace has not: everything is built before entering it.
  await prepareBinaries(progress);
  await prepareFlagger(progress);
  const { progress: _p, network, ...peer } = opts;
  if (network === 'host') return measureFlagger(peer, 'host network', progress);
  const unshare = unshareArgs();
  const prefix = SETPRIV ? [SETPRIV, '--pdeathsig', 'KILL', '--'] : [];
  const argv = [
    ...prefix,
    ...unshare,
    'sh',
    '-c',
    `${IP} link set lo up && exec "$@"`,
    'sh',
    process.execPath,
    WORKER,
    JSON.stringify(peer),
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    const tail: string[] = [];
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    createInterface(child.stderr).on('line', (line) => {
      tail.push(line);
      if (tail.length > 40) tail.shift();
      progress(line);
    });
    child.once('error', reject);
    child.once('close', (code, signal) => {
      const last = out.trim().split('\n').pop() ?? '';
      if (code === 0 && last.startsWith('{')) return resolve(JSON.parse(last) as PeerFigures);
      reject(new Error(`the Flagger peer (pid ${child.pid}) exited ${code ?? signal}:\n${tail.join('\n')}`));
    });
  });
}

/** `unshare` with a new network namespace (as root; else with a user namespace too), or a clear error. */
function unshareArgs(): string[] {
  if (!IP) throw new Error(hostNetworkHint('no `ip` command (iproute2) to bring loopback up in it'));
  for (const args of [
    ['unshare', '--net', '--'],
    ['unshare', '--map-root-user', '--net', '--'],
  ]) {
    if (spawnSync(args[0]!, [...args.slice(1), 'true'], { stdio: 'ignore' }).status === 0) return args;
  }
  throw new Error(hostNetworkHint('`unshare --net` is not permitted here (needs root or user namespaces)'));
}

function hostNetworkHint(why: string): string {
  return (
    `The Flagger peer runs in a private network namespace, since Flagger's HTTP server listens on every ` +
    `interface; ${why}. Install util-linux and iproute2 and run as root, or pass network: 'host' ` +
    '(--host-network) to accept that listener on this machine.'
  );
}
