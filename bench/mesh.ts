// The sandbox mesh's data plane as the demo and tests meet it: proxied requests per second and their
// latency, the canary's share at 90/10, and how soon a TrafficSplit patch is applied to routing.
import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { Agent, createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startControlPlane } from '../src/sandbox/control-plane/index.js';
import { LOOPBACK } from '../src/sandbox/free-port.js';
import { startMesh, type Route } from '../src/sandbox/mesh/index.js';
import type { Benchmark, BenchmarkReport, Figure } from './run.js';

const REQUESTS = 10_000;
const IN_FLIGHT = 32;
const PATCHES = 200;
const BOUND_MS = 100;
const NAMESPACE = 'bench-mesh';
const TS = { group: 'split.smi-spec.io', version: 'v1alpha2', plural: 'trafficsplits' } as const;
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/** Nearest-rank percentile of already sorted numbers. */
function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

const ms = (v: number) => `${v.toFixed(Math.abs(v) < 10 ? 2 : 1)} ms`;
const spread = (values: number[]) => {
  const s = [...values].sort((a, b) => a - b);
  return `p50 ${ms(percentile(s, 50))}, p95 ${ms(percentile(s, 95))}, max ${ms(percentile(s, 100))}`;
};

async function backend(name: string): Promise<{ port: number; close: () => Promise<void> }> {
  const server: Server = createServer((_req, res) => res.writeHead(200).end(name));
  await new Promise<void>((resolve) => server.listen(0, LOOPBACK, resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** REQUESTS GETs, IN_FLIGHT at a time over keep-alive: elapsed time, per-request latencies, answers. */
async function drive(url: string, host: string) {
  const agent = new Agent({ keepAlive: true, maxSockets: IN_FLIGHT });
  const latencies: number[] = [];
  const answers = new Map<string, number>();
  let next = 0;
  const one = () =>
    new Promise<string>((resolve, reject) => {
      const req = request(url, { headers: { host }, agent }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve(res.statusCode === 200 ? body : String(res.statusCode)));
      });
      req.on('error', reject);
      req.end();
    });
  const worker = async () => {
    while (next < REQUESTS) {
      next++;
      const t0 = performance.now();
      const who = await one();
      latencies.push(performance.now() - t0);
      answers.set(who, (answers.get(who) ?? 0) + 1);
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  const elapsed = performance.now() - t0;
  agent.destroy();
  return { elapsed, latencies, answers };
}

const canaryPercent = (route: Route | undefined) => {
  if (route?.kind !== 'TrafficSplit') return undefined;
  const total = route.backends.reduce((t, b) => t + b.weight, 0);
  const canary = route.backends.find((b) => b.service === 'canary')?.weight ?? 0;
  return total > 0 ? (100 * canary) / total : undefined;
};

const backends = (canary: number) =>
  [
    { service: 'stable', weight: 100 - canary },
    { service: 'canary', weight: canary },
  ].filter((b) => b.weight > 0);

export const meshBenchmark: Benchmark = {
  file: 'mesh.ts',
  title: 'Sandbox mesh data plane',
  async run(progress): Promise<BenchmarkReport> {
    const figures: Figure[] = [];
    const cp = await startControlPlane();
    const stable = await backend('stable');
    const canary = await backend('canary');
    try {
      const kc = cp.kubeConfig();
      const api = kc.makeApiClient(CustomObjectsApi);
      await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: NAMESPACE } } });
      const mesh = await startMesh(kc, { namespace: NAMESPACE });
      try {
        mesh.setBackend(NAMESPACE, 'stable', { port: stable.port });
        mesh.setBackend(NAMESPACE, 'canary', { port: canary.port });
        const root = await mesh.addRoot(NAMESPACE, 'root');
        const host = `root.${NAMESPACE}.svc.cluster.local`;
        await api.createNamespacedCustomObject({
          ...TS,
          namespace: NAMESPACE,
          body: {
            apiVersion: `${TS.group}/${TS.version}`,
            kind: 'TrafficSplit',
            metadata: { name: 'root' },
            spec: { service: host, backends: backends(10) },
          },
        });
        await mesh.waitForRoute(NAMESPACE, 'root', (r) => canaryPercent(r) === 10);

        progress(`${REQUESTS} requests straight to a backend`);
        const direct = await drive(`http://${LOOPBACK}:${stable.port}`, host);
        progress(`${REQUESTS} requests through the mesh at 90/10`);
        const meshed = await drive(root.url, host);
        const share = (100 * (meshed.answers.get('canary') ?? 0)) / REQUESTS;
        figures.push(
          {
            name: `requests through the mesh, ${IN_FLIGHT} in flight (${REQUESTS})`,
            value: `${((REQUESTS * 1000) / meshed.elapsed).toFixed(0)} /s`,
            note: `keep-alive client; per request ${spread(meshed.latencies)}`,
          },
          {
            name: `requests straight to a backend, ${IN_FLIGHT} in flight (${REQUESTS})`,
            value: `${((REQUESTS * 1000) / direct.elapsed).toFixed(0)} /s`,
            note: `for comparison; per request ${spread(direct.latencies)}`,
          },
          {
            name: `canary share at 90/10 (${REQUESTS} requests)`,
            value: `${share.toFixed(2)} %`,
            note: 'smooth weighted round-robin: exact over every 100 requests',
          },
        );

        progress(`${PATCHES} weight patches`);
        const afterResponse: number[] = [];
        const afterSend: number[] = [];
        for (let i = 0; i < PATCHES; i++) {
          // 1, 2, ..., 99, 1, ...: each differs from the one before (and the first from the initial 10),
          // so every patch is a real change the mesh must apply.
          const weight = 1 + (i % 99);
          const applied = mesh.waitForRoute(NAMESPACE, 'root', (r) => canaryPercent(r) === weight);
          const sent = performance.now();
          await api.patchNamespacedCustomObject(
            { ...TS, namespace: NAMESPACE, name: 'root', body: { spec: { backends: backends(weight) } } },
            mergePatch,
          );
          const answered = performance.now();
          const route = await applied;
          afterResponse.push(route!.appliedAt - answered);
          afterSend.push(route!.appliedAt - sent);
        }
        const within = afterResponse.filter((v) => v <= BOUND_MS).length;
        figures.push(
          {
            name: `weight change applied, after the patch's response (${PATCHES})`,
            value: spread(afterResponse),
            note: 'negative: the watch event reached the mesh before the patch response reached the client',
          },
          {
            name: `weight change applied, after the patch was sent (${PATCHES})`,
            value: spread(afterSend),
            note: 'includes the patch round trip and the watch delivery',
          },
          {
            name: `weight changes applied within ${BOUND_MS} ms of the response`,
            value: `${within} of ${PATCHES}`,
            note: 'the next request after the watch event already follows the new weights',
          },
        );
      } finally {
        await mesh.stop();
      }
    } finally {
      await Promise.all([stable.close(), canary.close()]);
      await cp.stop();
    }
    return {
      description: [
        'The demo data plane (`src/sandbox/mesh/`) in front of two tiny Node HTTP backends on 127.0.0.1,',
        'routing by a `split.smi-spec.io/v1alpha2` TrafficSplit on the local control plane (official',
        'kube-apiserver and etcd). Request figures: one Node client, keep-alive, the same process as the',
        'mesh and the backends. Weight changes: sequential JSON merge patches of the split, each to a new',
        'canary weight; "applied" is the moment the mesh\'s TrafficSplit watch handler has swapped the',
        'route (the next request picks by it).',
      ].join('\n'),
      figures,
    };
  },
};
