// One Flagger peer run on a fresh sandbox in this process's network: control plane with an audit log,
// a real Prometheus over an OSM metrics target, Flagger out of cluster, N Canaries run and timed.
import {
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { PrometheusClient } from '../../../src/analysis/prometheus-client.js';
import { Informer } from '../../../src/k8s/informer.js';
import { startOsmMetricsTarget } from '../../../src/sandbox/apps/osm-metrics-target.js';
import { logTail, startChild, untilReady, type Child } from '../../../src/sandbox/child-process.js';
import { installCrds, startControlPlane } from '../../../src/sandbox/control-plane/index.js';
import { makeDataDir } from '../../../src/sandbox/data-dir.js';
import { freePort, LOOPBACK } from '../../../src/sandbox/free-port.js';
import { startPrometheus } from '../../../src/sandbox/prometheus/launcher.js';
import { waitFor } from '../../../src/sandbox/wait.js';
import { tallyAuditFile, userAgentOf, type RequestTally } from '../../audit-tally.js';
import { cpuMsOf, pidOfProgram, procUsage, type ProcUsage } from '../../proc-usage.js';
import { percentile } from '../../scale/report.js';
import { HEALTHY, SCRAPE_INTERVAL } from '../../scale/workload.js';
import { prepareFlagger } from './build.js';
import type { PeerFigures, PeerOptions } from './figures.js';
import {
  CANARY,
  canary,
  METRIC_TEMPLATE,
  metricTemplate,
  servicesOf,
  targetName,
  triggerPatch,
  type WorkloadOptions,
} from './workload.js';

const NAMESPACE = 'flagger-peer';
/** After the last Succeeded, Flagger still writes that run's Event: counted in the run, not idle. */
const SETTLE_MS = 2000;
/** Requests in flight while creating objects: enough to keep the API server busy, not a flood. */
const CREATE_CONCURRENCY = 16;

type CanaryObject = KubernetesObject & {
  status?: { phase?: string; conditions?: { message?: string }[] };
};

type Progress = (line: string) => void;

/** Runs the peer here (the caller picks the network namespace) and returns its figures. */
export async function measureFlagger(
  opts: PeerOptions,
  network: PeerFigures['network'],
  progress: Progress = () => {},
): Promise<PeerFigures> {
  const n = opts.n;
  const w: WorkloadOptions = { intervalSeconds: opts.intervalSeconds ?? 10 };
  const build = await prepareFlagger(progress);
  const dir = makeDataDir('perch-flagger-peer-');
  const auditLog = join(dir, 'audit.log');
  const stops: (() => Promise<void>)[] = [];
  let failed = true;
  try {
    const cp = await startControlPlane({ auditLog, gatewayApi: false, progress });
    stops.push(() => cp.stop());
    const kc = cp.kubeConfig();
    await installCrds(kc, build.crds);
    const target = await startOsmMetricsTarget({ durations: false });
    stops.push(() => target.close());
    const prometheus = await startPrometheus({
      jobs: [{ name: 'mesh', targets: [target.target] }],
      scrapeInterval: SCRAPE_INTERVAL,
    });
    stops.push(() => prometheus.stop());
    const core = kc.makeApiClient(CoreV1Api);
    const api = kc.makeApiClient(CustomObjectsApi);
    await core.createNamespace({ body: { metadata: { name: NAMESPACE } } });

    const port = await freePort();
    const flags = [
      `-kubeconfig=${cp.kubeconfig}`,
      '-mesh-provider=osm',
      `-metrics-server=${prometheus.url}`,
      `-port=${port}`,
      '-log-level=info',
      ...(opts.qps === undefined ? [] : [`-kubeconfig-qps=${opts.qps}`]),
      ...(opts.burst === undefined ? [] : [`-kubeconfig-burst=${opts.burst}`]),
    ];
    const flagger: Child = startChild({
      name: 'flagger',
      command: build.binary,
      args: flags,
      logFile: join(dir, 'flagger.log'),
    });
    stops.push(() => flagger.stop());
    // Its HTTP server starts once the informers have synced: then Flagger sees every Canary made after.
    await untilReady(
      flagger,
      waitFor(async () => ((await fetch(`http://${LOOPBACK}:${port}/healthz`)).ok ? true : undefined), {
        what: `Flagger's /healthz on port ${port}`,
        timeoutMs: 60_000,
        intervalMs: 200,
      }),
    );
    const idleProcess = procUsage(flagger.pid);
    progress(`Flagger ${build.version} running (pid ${flagger.pid}); creating the Services of ${n} runs`);
    const sandboxPids = {
      apiServer: pidOfProgram(cp.pids(), 'kube-apiserver'),
      etcd: pidOfProgram(cp.pids(), 'etcd'),
      prometheus: prometheus.pid(),
    };
    const servicesFrom = Date.now();
    const sandboxBefore = cpuMsOf(sandboxPids);

    await inParallel(n, async (i) => {
      for (const body of servicesOf(i)) await core.createNamespacedService({ namespace: NAMESPACE, body });
      target.set(NAMESPACE, targetName(i), HEALTHY);
    });
    await api.createNamespacedCustomObject({
      ...METRIC_TEMPLATE,
      namespace: NAMESPACE,
      body: metricTemplate(prometheus.url),
    });
    await prometheusAnswersFor(prometheus.url, n, w.intervalSeconds);

    const phases = new Map<string, string>();
    const succeededAt = new Map<string, number>();
    const changed: (() => void)[] = [];
    const canaries = new Informer<CanaryObject>(kc, {
      apiVersion: `${CANARY.group}/${CANARY.version}`,
      kind: 'Canary',
      plural: CANARY.plural,
      namespace: NAMESPACE,
    });
    const seen = (c: CanaryObject) => {
      const name = c.metadata?.name ?? '';
      const phase = c.status?.phase ?? '';
      phases.set(name, phase);
      if (phase === 'Succeeded' && !succeededAt.has(name)) succeededAt.set(name, Date.now());
      for (const f of changed.splice(0)) f();
    };
    canaries.onAdd(seen).onUpdate(seen);
    await canaries.start();
    stops.push(async () => canaries.stop());
    const allIn = (phase: string, timeoutMs: number) =>
      untilReady(
        flagger,
        untilAll(phases, changed, n, phase, timeoutMs, () => flaggerFailure(phases, canaries, flagger)),
      );

    progress(`creating ${n} Canaries`);
    const created = Date.now();
    await inParallel(n, (i) =>
      api.createNamespacedCustomObject({ ...CANARY, namespace: NAMESPACE, body: canary(i, w) }),
    );
    const timeoutMs = opts.timeoutMs ?? 600_000 + 100 * n;
    await allIn('Initialized', timeoutMs);
    const initialized = Date.now();
    const atTrigger = procUsage(flagger.pid);
    progress(
      `all ${n} Initialized after ${((initialized - created) / 1000).toFixed(1)} s; changing the selectors`,
    );

    const triggered = Date.now();
    const triggeredAt = new Map<string, number>();
    await inParallel(n, async (i) => {
      triggeredAt.set(targetName(i), Date.now());
      await core.patchNamespacedService(
        { namespace: NAMESPACE, name: targetName(i), body: triggerPatch(i) },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    });
    await allIn('Succeeded', timeoutMs);
    const allSucceeded = Date.now();
    progress(
      `all ${n} Succeeded after ${((allSucceeded - triggered) / 1000).toFixed(1)} s; idle ${opts.idleMs / 1000} s`,
    );
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const idleFrom = Date.now();
    const afterRuns = procUsage(flagger.pid);
    const sandboxAfter = cpuMsOf(sandboxPids);
    await new Promise((r) => setTimeout(r, opts.idleMs));
    const idleTo = Date.now();
    const afterIdle = procUsage(flagger.pid);
    // Stopped first, so the audit log holds every request it made.
    await flagger.stop();
    const tallies = await tallyAuditFile(auditLog, userAgentOf(basename(build.binary)), {
      initialize: { from: servicesFrom, to: triggered },
      run: { from: triggered, to: idleFrom },
      idle: { from: idleFrom, to: idleTo },
    });
    const runs = [...triggeredAt].map(([name, t]) => (succeededAt.get(name) ?? NaN) - t);
    failed = false;
    return figures({
      build,
      n,
      w,
      network,
      flags: flags.map((f) => f.replace(cp.kubeconfig, basename(cp.kubeconfig))),
      times: {
        initializeMs: initialized - created,
        allSucceededMs: allSucceeded - triggered,
        runP50Ms: percentile(runs, 50),
        runMaxMs: percentile(runs, 100),
        windowMs: idleFrom - servicesFrom,
      },
      tallies,
      usage: { idleProcess, atTrigger, afterRuns, afterIdle },
      idleMs: idleTo - idleFrom,
      sandbox: {
        apiServer: sandboxAfter.apiServer - sandboxBefore.apiServer,
        etcd: sandboxAfter.etcd - sandboxBefore.etcd,
        prometheus: sandboxAfter.prometheus - sandboxBefore.prometheus,
      },
      initializeCpuMs: atTrigger.cpuMs - idleProcess.cpuMs,
    });
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    // After a failure the audit log and Flagger's log stay for a look.
    if (failed) progress(`kept the audit log and Flagger's log in ${dir} (until the next run)`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

interface Measured {
  build: { version: string };
  n: number;
  w: WorkloadOptions;
  network: PeerFigures['network'];
  flags: string[];
  times: PeerFigures['times'];
  tallies: Record<'initialize' | 'run' | 'idle', RequestTally>;
  usage: { idleProcess: ProcUsage; atTrigger: ProcUsage; afterRuns: ProcUsage; afterIdle: ProcUsage };
  idleMs: number;
  sandbox: PeerFigures['sandboxCpuMs'];
  initializeCpuMs: number;
}

function figures(m: Measured): PeerFigures {
  const { n, tallies, usage } = m;
  const writes = Object.fromEntries(
    Object.entries(tallies.run.byVerbResource)
      .filter(([k]) => /^(create|update|patch|delete|deletecollection) /.test(k))
      .map(([k, v]) => [k, v / n]),
  );
  const idleCpuMs = usage.afterIdle.cpuMs - usage.afterRuns.cpuMs;
  return {
    peer: 'flagger',
    version: m.build.version,
    n,
    intervalSeconds: m.w.intervalSeconds,
    flags: m.flags,
    network: m.network,
    times: m.times,
    requests: tallies,
    perRun: {
      writes: tallies.run.writes / n,
      writesByVerbResource: writes,
      readsOutsideWatches: tallies.run.reads / n,
      cpuMs: (usage.afterRuns.cpuMs - usage.atTrigger.cpuMs) / n,
      initializeWrites: tallies.initialize.writes / n,
      initializeReads: tallies.initialize.reads / n,
      initializeCpuMs: m.initializeCpuMs / n,
    },
    memory: {
      idleProcessBytes: usage.idleProcess.rssBytes,
      peakBytes: usage.afterIdle.peakRssBytes,
      afterRunsBytes: usage.afterRuns.rssBytes,
      perCanaryBytes: (usage.afterRuns.rssBytes - usage.idleProcess.rssBytes) / n,
    },
    idle: {
      windowMs: m.idleMs,
      cpu: { cpuMs: idleCpuMs, percentOfCore: (idleCpuMs / m.idleMs) * 100 },
      requests: tallies.idle.total,
    },
    sandboxCpuMs: m.sandbox,
  };
}

/** Calls fn(0..n-1) with at most CREATE_CONCURRENCY in flight; rejects with the first failure. */
async function inParallel(n: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < n) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.min(n, CREATE_CONCURRENCY) }, lane));
}

/** Resolves once `n` Canaries are in `phase`; rejects at once when one Failed, or on timeout. */
function untilAll(
  phases: Map<string, string>,
  changed: (() => void)[],
  n: number,
  phase: string,
  timeoutMs: number,
  failure: () => string,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${n} Canaries ${phase}: ${failure()}`)),
      timeoutMs,
    );
    const check = () => {
      const values = [...phases.values()];
      if (values.includes('Failed')) {
        clearTimeout(timer);
        reject(new Error(`a Canary Failed while waiting for ${phase}: ${failure()}`));
      } else if (values.filter((p) => p === phase).length >= n) {
        clearTimeout(timer);
        resolve();
      } else changed.push(check);
    };
    check();
  });
}

/** What went wrong, for an error: phases counted, a failed Canary's message, Flagger's last log lines. */
function flaggerFailure(
  phases: Map<string, string>,
  canaries: Informer<CanaryObject>,
  flagger: Child,
): string {
  const counts = new Map<string, number>();
  for (const p of phases.values()) counts.set(p || '(none)', (counts.get(p || '(none)') ?? 0) + 1);
  const failed = canaries.list().find((c) => c.status?.phase === 'Failed');
  return [
    `phases ${[...counts].map(([p, c]) => `${p}=${c}`).join(' ')}`,
    failed ? `${failed.metadata?.name}: ${failed.status?.conditions?.[0]?.message ?? ''}` : '',
    `Flagger's log ends:\n${logTail(flagger.logFile, 15)}`,
  ]
    .filter(Boolean)
    .join('; ');
}

/** Waits until Prometheus has a request rate over the check's window for every target, so no first check finds no data. */
async function prometheusAnswersFor(url: string, n: number, intervalSeconds: number): Promise<void> {
  const client = new PrometheusClient({ address: url });
  const query = `count(sum by (destination_name) (rate(osm_request_total{destination_namespace="${NAMESPACE}"}[${intervalSeconds}s])) > 0)`;
  await waitFor(
    async () => {
      const r = await client.query(query);
      const value = r.ok && r.data.resultType === 'vector' ? Number(r.data.result[0]?.value[1]) : 0;
      return value >= n ? true : undefined;
    },
    { what: `Prometheus to have traffic for all ${n} targets`, timeoutMs: 60_000, intervalMs: 250 },
  );
}
