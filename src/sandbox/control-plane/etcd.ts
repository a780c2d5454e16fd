// etcd for the sandbox: one member on loopback ports, its data in the sandbox's folder.
import { join } from 'node:path';
import { startChild, untilReady, type Child } from '../child-process.js';
import { freePort, LOOPBACK } from '../free-port.js';
import { waitFor } from '../wait.js';

export interface Etcd {
  child: Child;
  url: string;
}

export async function startEtcd(binary: string, dir: string): Promise<Etcd> {
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const url = `http://${LOOPBACK}:${clientPort}`;
  const peer = `http://${LOOPBACK}:${peerPort}`;
  const child = startChild({
    name: 'etcd',
    command: binary,
    args: [
      '--name=perch',
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=${url}`,
      `--advertise-client-urls=${url}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=perch=${peer}`,
      '--listen-metrics-urls=',
      // A throwaway store: durability buys nothing here and fsync costs the tests seconds.
      '--unsafe-no-fsync',
      // Every Service create rewrites the cluster-IP allocation bitmap, kept in etcd's history until
      // kube-apiserver compacts it (every 5 min): with a /12 range, 30,000 Services filled the default
      // 2 GiB quota ("mvcc: database space exceeded"). 8 GiB is etcd's suggested maximum.
      '--quota-backend-bytes=8589934592',
      '--log-level=warn',
    ],
    logFile: join(dir, 'etcd.log'),
  });
  await untilReady(
    child,
    waitFor(
      async () => {
        const res = await fetch(`${url}/health`);
        const body = (await res.json()) as { health?: string };
        return body.health === 'true' ? true : undefined;
      },
      { what: `etcd health at ${url}` },
    ),
  );
  return { child, url };
}
