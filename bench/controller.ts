// What the controller costs with many Rollouts: the time to walk 500 of them to a pause, then its
// memory, CPU and API requests while they wait (read from its own /metrics), on the sandbox.
import { CoreV1Api, CustomObjectsApi, type KubernetesObject } from '@kubernetes/client-node';
import { Informer } from '../src/k8s/informer.js';
import { startControlPlane } from '../src/sandbox/control-plane/index.js';
import { startController } from '../test/support/controller-process.js';
import type { Benchmark, BenchmarkReport } from './run.js';

const ROLLOUTS = 500;
const IDLE_MS = 30_000;
const NAMESPACE = 'bench-rollouts';

type Scrape = Map<string, number>;

async function scrape(address: string): Promise<Scrape> {
  const text = await (await fetch(`http://${address}/metrics`)).text();
  const values: Scrape = new Map();
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m) values.set(m[1]!, Number(m[2]));
  }
  return values;
}

const sum = (s: Scrape, prefix: string) =>
  [...s].filter(([k]) => k.startsWith(prefix)).reduce((a, [, v]) => a + v, 0);

export const controllerBenchmark: Benchmark = {
  file: 'controller.ts',
  title: 'Controller at scale (500 Rollouts)',
  async run(progress): Promise<BenchmarkReport> {
    const cp = await startControlPlane();
    const ctl = await startController(cp.kubeconfig, 'http://127.0.0.1:9'); // no analysis: Prometheus unused
    try {
      const kc = cp.kubeConfig();
      const core = kc.makeApiClient(CoreV1Api);
      const api = kc.makeApiClient(CustomObjectsApi);
      await core.createNamespace({ body: { metadata: { name: NAMESPACE } } });
      for (const name of ['web', 'web-v1', 'web-v2']) {
        await core.createNamespacedService({
          namespace: NAMESPACE,
          body: { metadata: { name }, spec: { ports: [{ port: 80 }] } },
        });
      }
      const paused = new Set<string>();
      let allPaused: () => void = () => {};
      const done = new Promise<void>((resolve) => (allPaused = resolve));
      const watch = new Informer<KubernetesObject & { status?: { pauseReason?: string } }>(kc, {
        apiVersion: 'perch.dev/v1alpha1',
        kind: 'Rollout',
        plural: 'rollouts',
        namespace: NAMESPACE,
      });
      const seen = (r: KubernetesObject & { status?: { pauseReason?: string } }) => {
        if (r.status?.pauseReason === 'PauseStep') paused.add(r.metadata?.name ?? '');
        if (paused.size === ROLLOUTS) allPaused();
      };
      watch.onAdd(seen).onUpdate(seen);
      await watch.start();
      progress(`creating ${ROLLOUTS} Rollouts`);
      const started = performance.now();
      for (let i = 0; i < ROLLOUTS; i++) {
        await api.createNamespacedCustomObject({
          group: 'perch.dev',
          version: 'v1alpha1',
          namespace: NAMESPACE,
          plural: 'rollouts',
          body: {
            apiVersion: 'perch.dev/v1alpha1',
            kind: 'Rollout',
            metadata: { name: `r-${i}` },
            spec: {
              service: 'web',
              stableService: 'web-v1',
              canaryService: 'web-v2',
              trafficRouting: { smi: { trafficSplitName: `r-${i}` } },
              steps: [{ setWeight: 10 }, { pause: {} }],
            },
          },
        });
      }
      const created = performance.now();
      await done;
      const walked = performance.now();
      watch.stop();
      progress(`all ${ROLLOUTS} at their pause step; idling ${IDLE_MS / 1000} s`);
      const before = await scrape(ctl.metricsAddress);
      await new Promise((r) => setTimeout(r, IDLE_MS));
      const after = await scrape(ctl.metricsAddress);
      const requests = (s: Scrape) => sum(s, 'perch_kube_requests_total');
      const cpu = (s: Scrape) => s.get('process_cpu_seconds_total') ?? NaN;
      const reconciles = sum(before, 'perch_reconcile_duration_seconds_count');
      const reconcileSeconds = sum(before, 'perch_reconcile_duration_seconds_sum');
      return {
        description:
          `${ROLLOUTS} Rollouts with steps [setWeight 10, pause {}] and no analysis, created one after another in one ` +
          'namespace of the sandbox; `perch controller` runs as a child process (4 workers). Each Rollout takes ' +
          "a finalizer, a TrafficSplit at stable 100, then 90/10, then its pause. Figures from the controller's own " +
          '/metrics; the idle window is with every Rollout paused.',
        figures: [
          {
            name: `create ${ROLLOUTS} Rollouts (client side)`,
            value: `${((created - started) / 1000).toFixed(1)} s`,
          },
          {
            name: `all ${ROLLOUTS} at their pause step`,
            value: `${((walked - started) / 1000).toFixed(1)} s`,
            note: 'from the first create',
          },
          {
            name: 'reconciles until then',
            value: String(reconciles),
            note: `mean ${((reconcileSeconds / Math.max(1, reconciles)) * 1000).toFixed(2)} ms each`,
          },
          {
            name: 'API requests until then',
            value: String(requests(before)),
            note: `${(requests(before) / ROLLOUTS).toFixed(1)} per Rollout`,
          },
          {
            name: 'resident memory, all paused',
            value: `${((after.get('process_resident_memory_bytes') ?? NaN) / 2 ** 20).toFixed(0)} MiB`,
          },
          {
            name: `CPU while idle (${IDLE_MS / 1000} s)`,
            value: `${(((cpu(after) - cpu(before)) / (IDLE_MS / 1000)) * 100).toFixed(2)} %`,
            note: 'of one core',
          },
          {
            name: `API requests while idle (${IDLE_MS / 1000} s)`,
            value: String(requests(after) - requests(before)),
          },
        ],
      };
    } finally {
      await ctl.stop();
      await cp.stop();
    }
  },
};
