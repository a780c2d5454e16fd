// The sandbox control plane's speed as Perch's tests and controller meet it: start-up time,
// TrafficSplit merge patches per second, and how long a patch takes to reach two watchers.
import {
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderMiddleware,
  setHeaderOptions,
  Watch,
  type KubeConfig,
} from '@kubernetes/client-node';
import { Agent } from 'node:https';
import { pinnedKubernetesVersion, startControlPlane } from '../src/sandbox/control-plane/index.js';
import type { Benchmark, BenchmarkReport, Figure } from './run.js';

const STARTS = 3;
const PATCHES = 500;
const IN_FLIGHT = 8;
const WARM_UP = 20;
const WATCHERS = 2;
const WATCHED_PATCHES = 200;

const NAMESPACE = 'bench';
const SPLIT = 'bench';
const TS = { group: 'split.smi-spec.io', version: 'v1alpha2', plural: 'trafficsplits' } as const;
const SENT_AT = 'bench.perch.dev/sent-at';
const SEQ = 'bench.perch.dev/seq';

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
type PatchOptions = typeof mergePatch;

/**
 * client-node 1.4 gives every request a new https.Agent without keep-alive, so each one opens a new
 * TLS connection. These options reuse connections instead, to show what that costs.
 */
function keepAliveMergePatch(caPem: string): { options: PatchOptions; agent: Agent } {
  const agent = new Agent({ keepAlive: true, ca: caPem });
  const header = setHeaderMiddleware('Content-Type', PatchStrategy.MergePatch);
  const options: PatchOptions = {
    middleware: [
      {
        pre: (ctx) => {
          ctx.setAgent(agent);
          return header.pre(ctx);
        },
        post: (rsp) => header.post(rsp),
      },
    ],
    middlewareMergeStrategy: 'append',
  };
  return { options, agent };
}

/** Nearest-rank percentile of already sorted numbers. */
function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

function sortedCopy(values: number[]): number[] {
  return [...values].sort((a, b) => a - b);
}

const ms = (v: number) => `${v.toFixed(v < 10 ? 2 : 1)} ms`;
const seconds = (v: number) => `${(v / 1000).toFixed(2)} s`;
const perSecond = (count: number, elapsedMs: number) => `${((count * 1000) / elapsedMs).toFixed(0)} /s`;

function latencyNote(latencies: number[]): string {
  const s = sortedCopy(latencies);
  return `per patch p50 ${ms(percentile(s, 50))}, p95 ${ms(percentile(s, 95))}, max ${ms(percentile(s, 100))}`;
}

/** A merge patch that changes the weights, so every request is a real write (no no-op short cut). */
function weightsPatch(i: number): object {
  const canary = i % 101;
  return {
    spec: {
      backends: [
        { service: 'bench-stable', weight: 100 - canary },
        { service: 'bench-canary', weight: canary },
      ],
    },
  };
}

async function measureStarts(progress: (line: string) => void): Promise<Figure[]> {
  const starts: number[] = [];
  const stops: number[] = [];
  for (let i = 0; i < STARTS; i++) {
    const t0 = performance.now();
    const cp = await startControlPlane();
    starts.push(performance.now() - t0);
    const t1 = performance.now();
    await cp.stop();
    stops.push(performance.now() - t1);
    progress(`start ${i + 1}/${STARTS}: ready in ${seconds(starts[i] ?? NaN)}`);
  }
  const s = sortedCopy(starts);
  return [
    {
      name: `start to ready, median of ${STARTS}`,
      value: seconds(percentile(s, 50)),
      note: `startControlPlane() until it resolves (etcd, kube-apiserver ready, CRDs established, kube-controller-manager started); min ${seconds(s[0] ?? NaN)}, max ${seconds(s[s.length - 1] ?? NaN)}`,
    },
    {
      name: `stop, median of ${STARTS}`,
      value: seconds(percentile(sortedCopy(stops), 50)),
      note: 'stop() until every process has exited and the data folder is gone',
    },
  ];
}

async function patchLoop(
  api: CustomObjectsApi,
  count: number,
  inFlight: number,
  options: PatchOptions,
  connections: string,
): Promise<Figure> {
  const latencies: number[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const t0 = performance.now();
      await api.patchNamespacedCustomObject(
        { ...TS, namespace: NAMESPACE, name: SPLIT, body: weightsPatch(i) },
        options,
      );
      latencies.push(performance.now() - t0);
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: inFlight }, worker));
  const elapsed = performance.now() - t0;
  return {
    name: `merge patches, ${inFlight === 1 ? 'sequential' : `${inFlight} in flight`}, ${connections} (${count})`,
    value: perSecond(count, elapsed),
    note: `one client, one TrafficSplit; ${latencyNote(latencies)}`,
  };
}

interface Watcher {
  /** Receive time minus send time of each watched patch, by sequence number. */
  latencies: Map<number, number>;
  /** Resolves when every watched patch has been seen. */
  complete: Promise<void>;
  abort(): void;
}

async function startWatcher(kc: KubeConfig, resourceVersion: string): Promise<Watcher> {
  const latencies = new Map<number, number>();
  let finish: () => void = () => {};
  let fail: (err: unknown) => void = () => {};
  const complete = new Promise<void>((resolve, reject) => {
    finish = resolve;
    fail = reject;
  });
  let stopping = false;
  const controller = await new Watch(kc).watch(
    `/apis/${TS.group}/${TS.version}/namespaces/${NAMESPACE}/trafficsplits`,
    { resourceVersion, allowWatchBookmarks: false },
    (type, obj: { metadata?: { annotations?: Record<string, string> } }) => {
      const received = performance.now();
      const annotations = obj.metadata?.annotations ?? {};
      if (type !== 'MODIFIED' || annotations[SEQ] === undefined) return;
      const seq = Number(annotations[SEQ]);
      if (!latencies.has(seq)) latencies.set(seq, received - Number(annotations[SENT_AT]));
      if (latencies.size === WATCHED_PATCHES) finish();
    },
    (err: unknown) => {
      if (!stopping)
        fail(new Error(`watch ended early: ${err instanceof Error ? err.message : String(err)}`));
    },
  );
  return {
    latencies,
    complete,
    abort: () => {
      stopping = true;
      controller.abort();
    },
  };
}

async function measureWatchLatency(cpKubeConfig: () => KubeConfig, api: CustomObjectsApi): Promise<Figure[]> {
  const list = (await api.listNamespacedCustomObject({ ...TS, namespace: NAMESPACE })) as {
    metadata: { resourceVersion: string };
  };
  // Each watcher gets its own KubeConfig, Watch and connection, as two controllers would.
  const watchers = await Promise.all(
    Array.from({ length: WATCHERS }, () => startWatcher(cpKubeConfig(), list.metadata.resourceVersion)),
  );
  const patchTimes: number[] = [];
  try {
    for (let seq = 0; seq < WATCHED_PATCHES; seq++) {
      const sent = performance.now();
      const body = { metadata: { annotations: { [SENT_AT]: String(sent), [SEQ]: String(seq) } } };
      await api.patchNamespacedCustomObject({ ...TS, namespace: NAMESPACE, name: SPLIT, body }, mergePatch);
      patchTimes.push(performance.now() - sent);
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('watchers did not see every patch within 30 s')), 30_000);
    });
    await Promise.race([Promise.all(watchers.map((w) => w.complete)), timeout]).finally(() =>
      clearTimeout(timer),
    );
  } finally {
    for (const w of watchers) w.abort();
  }
  return [
    ...watchers.map((w, i) => {
      const s = sortedCopy([...w.latencies.values()]);
      return {
        name: `watch latency, watcher ${i + 1} of ${WATCHERS}`,
        value: `p50 ${ms(percentile(s, 50))}, p95 ${ms(percentile(s, 95))}, max ${ms(percentile(s, 100))}`,
        note: `over ${s.length} events`,
      };
    }),
    {
      name: 'patch round trip while watched',
      value: (() => {
        const s = sortedCopy(patchTimes);
        return `p50 ${ms(percentile(s, 50))}, p95 ${ms(percentile(s, 95))}, max ${ms(percentile(s, 100))}`;
      })(),
      note: 'the same patches, from request start to response; for comparison with the watch latency',
    },
  ];
}

export const sandboxBenchmark: Benchmark = {
  file: 'sandbox.ts',
  title: 'Sandbox control plane',
  async run(progress): Promise<BenchmarkReport> {
    const figures: Figure[] = await measureStarts(progress);

    const cp = await startControlPlane();
    try {
      const kc = cp.kubeConfig();
      const api = kc.makeApiClient(CustomObjectsApi);
      await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: NAMESPACE } } });
      await api.createNamespacedCustomObject({
        ...TS,
        namespace: NAMESPACE,
        body: {
          apiVersion: `${TS.group}/${TS.version}`,
          kind: 'TrafficSplit',
          metadata: { name: SPLIT },
          spec: { service: 'bench', ...(weightsPatch(0) as { spec: object }).spec },
        },
      });
      for (let i = 0; i < WARM_UP; i++) {
        await api.patchNamespacedCustomObject(
          { ...TS, namespace: NAMESPACE, name: SPLIT, body: weightsPatch(i + 1) },
          mergePatch,
        );
      }
      const fresh = 'new connection each (client-node default)';
      progress(`patching: ${PATCHES} sequential`);
      figures.push(await patchLoop(api, PATCHES, 1, mergePatch, fresh));
      progress(`patching: ${PATCHES} with ${IN_FLIGHT} in flight`);
      figures.push(await patchLoop(api, PATCHES, IN_FLIGHT, mergePatch, fresh));
      const keepAlive = keepAliveMergePatch(cp.caPem);
      try {
        progress(`patching: ${PATCHES} sequential, keep-alive`);
        figures.push(await patchLoop(api, PATCHES, 1, keepAlive.options, 'keep-alive agent'));
        progress(`patching: ${PATCHES} with ${IN_FLIGHT} in flight, keep-alive`);
        figures.push(await patchLoop(api, PATCHES, IN_FLIGHT, keepAlive.options, 'keep-alive agent'));
      } finally {
        keepAlive.agent.destroy();
      }
      progress(`watch latency: ${WATCHERS} watchers, ${WATCHED_PATCHES} patches`);
      figures.push(...(await measureWatchLatency(() => cp.kubeConfig(), api)));
    } finally {
      await cp.stop();
    }

    return {
      description: [
        `The local control plane of \`perch sandbox\` (official kube-apiserver, etcd and`,
        `kube-controller-manager ${pinnedKubernetesVersion()}, all on 127.0.0.1), driven through`,
        `\`@kubernetes/client-node\` from this one Node process. Patches are JSON merge patches`,
        `(\`application/merge-patch+json\`) to one \`split.smi-spec.io/v1alpha2\` TrafficSplit,`,
        `after ${WARM_UP} warm-up patches, each changing the weights so that none is a no-op. client-node`,
        `1.4 opens a new TLS connection for every request (a fresh \`https.Agent\` without keep-alive);`,
        `the keep-alive rows pass one keep-alive \`https.Agent\` through a request middleware instead.`,
        `The watch-latency patches use client-node's default. Watch latency: ${WATCHERS} independent watch streams on the`,
        `namespace's TrafficSplits, then ${WATCHED_PATCHES} sequential patches each carrying its send`,
        `time in an annotation; latency is the time a watcher receives the event minus the time the`,
        `patch request was started (so it includes the patch's own round trip).`,
      ].join('\n'),
      figures,
    };
  },
};
