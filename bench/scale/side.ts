// One side of the scale benchmark: a fresh sandbox (audit log on), a real Prometheus scraping an OSM-shaped
// target, `perch controller` of a given build as a child process, the workload at N, and what it all cost.
import {
  CoreV1Api,
  CustomObjectsApi,
  setHeaderMiddleware,
  type ConfigurationOptions,
  type KubeConfig,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PrometheusClient } from '../../src/analysis/prometheus-client.js';
import type { Rollout } from '../../src/api/v1alpha1.js';
import { configureClient } from '../../src/k8s/client-config.js';
import { Informer } from '../../src/k8s/informer.js';
import { startOsmMetricsTarget } from '../../src/sandbox/apps/osm-metrics-target.js';
import { startControlPlane, type ControlPlane } from '../../src/sandbox/control-plane/index.js';
import { startPrometheus } from '../../src/sandbox/prometheus/launcher.js';
import { waitFor } from '../../src/sandbox/wait.js';
import { startController, type ControllerProcess } from '../../test/support/controller-process.js';
import { AuditTally, readAuditLog, type ClientFilter } from '../audit-tally.js';
import { cpuMsOf, pidOfProgram, procUsage } from '../proc-usage.js';
import type { SideResult } from './report.js';
import { QueryAnswers, rollbackTimes, StableAloneWrites } from './rollback.js';
import { traceRecorder } from './trace.js';
import {
  expectedPhase,
  FAULTY,
  HEALTHY,
  INTERVAL,
  members,
  NAMESPACE,
  rolloutBody,
  SCRAPE_INTERVAL,
  serviceBody,
  SUCCESS_RATE,
  TERMINAL,
  type Member,
} from './workload.js';

/** The harness's own requests carry this, so the audit log tells them from the controller's. */
export const BENCH_USER_AGENT = 'perch-bench/scale';
const CONTROLLER_USER_AGENT = 'perch-controller/';
/** Requests in flight while the harness creates objects. */
const CREATE_CONCURRENCY = 32;
/** After the last Rollout ended: its trailing Event and status writes still belong to the run. */
const SETTLE_MS = 5_000;
const ROLLOUT = { group: 'perch.dev', version: 'v1alpha1', plural: 'rollouts' } as const;

export interface SideOptions {
  n: number;
  /** Shown in the figures: "before (HEAD 1a2b3c4d)". */
  label: string;
  /** The perch CLI to run; default this build's. */
  cli?: string;
  /** How long to watch the finished controller idle. */
  idleMs: number;
  /** Give up waiting for every Rollout to end after this long (the figures then say so). */
  timeoutMs: number;
  progress(line: string): void;
  /**
   * PERCH_BENCH_SCALE_TRACE: a file that gets every version of the first two Rollouts (one healthy, one
   * faulty) as the harness's watch saw them, and the controller's audited requests about them: what a run writes.
   */
  traceFile?: string;
  /** PERCH_BENCH_SCALE_NODE_ARGS: node flags for the controller (profiling: --cpu-prof, --heapsnapshot-signal). */
  nodeArgs?: string[];
}

/** Whether an audit event is the controller's: its user agent, or, for a build older than that, the admin's that is not the harness's. */
export function controllerRequest(adminUser: string): ClientFilter {
  return (e) => {
    const ua = e.userAgent ?? '';
    if (ua.startsWith(CONTROLLER_USER_AGENT)) return true;
    return e.user?.username === adminUser && !ua.startsWith(BENCH_USER_AGENT);
  };
}

/** Runs `fn` over `items` with at most `limit` in flight. */
async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** client-node opens a TLS connection per request; the harness's creates share keep-alive ones instead. */
function keepAlive(caPem: string): { options: ConfigurationOptions; agent: Agent } {
  const agent = new Agent({ keepAlive: true, ca: caPem, maxSockets: CREATE_CONCURRENCY });
  const header = setHeaderMiddleware('User-Agent', BENCH_USER_AGENT);
  return {
    agent,
    options: {
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
    },
  };
}

async function scrape(url: string): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  return res.text();
}

/** The sum of every sample of `metric` whose labels contain `labelPart` (all when it is ''). */
export function sumSamples(text: string, metric: string, labelPart = ''): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${metric}{`) && !line.startsWith(`${metric} `)) continue;
    const space = line.lastIndexOf(' ');
    if (labelPart && !line.slice(0, space).includes(labelPart)) continue;
    const v = Number(line.slice(space + 1));
    if (Number.isFinite(v)) total += v;
  }
  return total;
}

const prometheusQueries = async (prometheusUrl: string) =>
  sumSamples(
    await scrape(`${prometheusUrl}/metrics`),
    'prometheus_http_requests_total',
    'handler="/api/v1/query"',
  );

/** The sandbox's kube-apiserver and etcd, by the program each of its PIDs runs. */
function sandboxPids(cp: ControlPlane): { apiServer: number; etcd: number } {
  const pids = cp.pids();
  return { apiServer: pidOfProgram(pids, 'kube-apiserver'), etcd: pidOfProgram(pids, 'etcd') };
}

const rssKiB = (pid: number) => procUsage(pid).rssBytes / 1024;
const cpuSeconds = (pid: number) => procUsage(pid).cpuMs / 1000;

/** Resolves when every member has ended, or after `timeoutMs` with however many had. */
function untilAllEnded(
  informer: Informer<Rollout & KubernetesObject>,
  all: Member[],
  timeoutMs: number,
): Promise<{ at: number | undefined }> {
  const names = new Set(all.map((m) => m.name));
  const ended = new Set<string>();
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ at: undefined }), timeoutMs);
    const seen = (r: Rollout) => {
      const name = r.metadata?.name ?? '';
      if (!names.has(name) || !TERMINAL.has(r.status?.phase ?? '')) return;
      ended.add(name);
      if (ended.size === names.size) {
        clearTimeout(timer);
        resolve({ at: Date.now() });
      }
    };
    informer.onAdd(seen).onUpdate(seen);
  });
}

async function readyController(address: string): Promise<void> {
  await waitFor(
    async () => {
      const res = await fetch(`http://${address}/readyz`, { signal: AbortSignal.timeout(2000) }).catch(
        () => undefined,
      );
      await res?.arrayBuffer();
      return res?.status === 200 ? true : undefined;
    },
    { what: `perch controller /readyz at ${address}`, timeoutMs: 60_000, intervalMs: 200 },
  );
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runSide(o: SideOptions): Promise<SideResult> {
  const all = members(o.n);
  const dir = mkdtempSync(join(tmpdir(), 'perch-bench-scale-'));
  const auditLog = join(dir, 'audit.log');
  const cleanups: (() => Promise<void> | void)[] = [() => rmSync(dir, { recursive: true, force: true })];
  const step = (line: string) => o.progress(`N=${o.n} ${o.label}: ${line}`);
  try {
    const cp = await startControlPlane({ auditLog });
    cleanups.push(() => cp.stop());
    const target = await startOsmMetricsTarget({ durations: false });
    cleanups.push(() => target.close());
    for (const m of all) target.set(NAMESPACE, m.canary, m.faulty ? FAULTY : HEALTHY);
    const prometheus = await startPrometheus({
      jobs: [{ name: 'mesh', targets: [target.target] }],
      scrapeInterval: SCRAPE_INTERVAL,
      queryLog: true,
    });
    cleanups.push(() => prometheus.stop());

    const kc: KubeConfig = configureClient(cp.kubeConfig(), { userAgent: BENCH_USER_AGENT });
    const core = kc.makeApiClient(CoreV1Api);
    const api = kc.makeApiClient(CustomObjectsApi);
    await core.createNamespace({ body: { metadata: { name: NAMESPACE } } });

    // Every canary's rate must be answerable before the first check, 10 s after its first weight.
    const promClient = new PrometheusClient({ address: prometheus.url });
    const last = all[all.length - 1]!;
    const q = successRateOf(last.canary);
    await waitFor(
      async () => {
        const r = await promClient.query(q);
        return r.ok && r.data.resultType === 'vector' && r.data.result[0]?.value[1] !== undefined
          ? true
          : undefined;
      },
      { what: `Prometheus data for ${last.canary}`, timeoutMs: 120_000, intervalMs: 250 },
    );

    step('starting the controller');
    const ctl: ControllerProcess = await startController(cp.kubeconfig, prometheus.url, [], {
      cli: o.cli,
      nodeArgs: o.nodeArgs,
    });
    cleanups.push(() => ctl.stop());
    // Its log outlives the run's folder: what it said about watches, relists and errors at this N.
    const logFile = join(tmpdir(), `perch-bench-scale-${o.n}-${o.label.split(' ')[0]}.controller.log`);
    cleanups.push(() => {
      writeFileSync(logFile, ctl.logs.map((l) => JSON.stringify(l)).join('\n'));
      step(`the controller's log: ${logFile}`);
    });
    await readyController(ctl.metricsAddress);
    await pause(3_000);
    const idleRssKiB = rssKiB(ctl.pid);

    const informer = new Informer<Rollout & KubernetesObject>(kc, {
      apiVersion: 'perch.dev/v1alpha1',
      kind: 'Rollout',
      plural: 'rollouts',
      namespace: NAMESPACE,
    });
    cleanups.push(() => informer.stop());
    const ended = untilAllEnded(informer, all, o.timeoutMs);
    // The due time of each faulty Rollout's rounds, as its status said over the run (the final status has moved on).
    const faulty = new Set(all.filter((m) => m.faulty).map((m) => m.name));
    const dues = new Map<string, Set<number>>();
    const recordDue = (r: Rollout) => {
      const name = r.metadata?.name ?? '';
      const next = Date.parse(r.status?.analysis?.nextCheckAt ?? '');
      if (!faulty.has(name) || !Number.isFinite(next)) return;
      dues.set(name, (dues.get(name) ?? new Set()).add(next));
    };
    informer.onAdd(recordDue).onUpdate(recordDue);
    const trace = o.traceFile ? traceRecorder(o.traceFile, ['app-0', 'app-1']) : undefined;
    if (trace) informer.onAdd(trace.version).onUpdate(trace.version);
    await informer.start();

    const { apiServer, etcd } = sandboxPids(cp);
    const pids = { controller: ctl.pid, apiServer, etcd, prometheus: prometheus.pid() };
    const runFrom = Date.now();
    const cpu0 = cpuMsOf(pids);
    const queries0 = await prometheusQueries(prometheus.url);

    const { options, agent } = keepAlive(cp.caPem);
    cleanups.push(() => agent.destroy());
    step(`creating ${all.length * 3} Services`);
    await pool(
      all.flatMap((m) => [m.service, m.stable, m.canary]),
      CREATE_CONCURRENCY,
      (name) => core.createNamespacedService({ namespace: NAMESPACE, body: serviceBody(name) }, options),
    );
    step(`creating ${all.length} Rollouts`);
    const firstCreate = Date.now();
    await pool(all, CREATE_CONCURRENCY, (m) =>
      api.createNamespacedCustomObject({ ...ROLLOUT, namespace: NAMESPACE, body: rolloutBody(m) }, options),
    );
    const createMs = Date.now() - firstCreate;
    step(`created in ${(createMs / 1000).toFixed(1)} s; waiting for every Rollout to end`);
    // A controller that dies mid-run is the run's result, said with its last words, not a timeout.
    const died = ctl.exited.then(({ code, signal }) => {
      throw new Error(
        `perch controller exited (${code ?? signal}) during the run: ${JSON.stringify(ctl.logs.slice(-5))}`,
      );
    });
    void died.catch(() => undefined); // once the run is over, its stop at the end is no failure
    const { at: allEndedAt } = await Promise.race([ended, died]);
    step(allEndedAt ? `all ended after ${((allEndedAt - firstCreate) / 1000).toFixed(1)} s` : 'timed out');

    await pause(SETTLE_MS);
    const runTo = Date.now();
    const cpu1 = cpuMsOf(pids);
    const endRssKiB = rssKiB(ctl.pid);
    const queries1 = await prometheusQueries(prometheus.url);
    const ctlMetrics = await scrape(`http://${ctl.metricsAddress}/metrics`);
    const rounds = sumSamples(ctlMetrics, 'perch_analysis_checks_total');
    const reconciles = sumSamples(ctlMetrics, 'perch_reconcile_duration_seconds_count');
    // prom-client's event-loop delay histogram, since the controller's start: nothing else scrapes it.
    const lagMs = (name: string) =>
      ctlMetrics.includes(`\n${name} `) ? sumSamples(ctlMetrics, name) * 1000 : undefined;
    const eventLoopDelayMs = {
      p99: lagMs('nodejs_eventloop_lag_p99_seconds'),
      max: lagMs('nodejs_eventloop_lag_max_seconds'),
    };

    step(`idle for ${o.idleMs / 1000} s`);
    const idleFrom = Date.now();
    const idleCpu0 = cpuSeconds(ctl.pid);
    await pause(o.idleMs);
    const idleCpuSeconds = cpuSeconds(ctl.pid) - idleCpu0;
    const idleTo = Date.now();
    const hwmKiB = procUsage(ctl.pid).peakRssBytes / 1024;

    // The final status of each Rollout, before anything stops.
    const finals = new Map(all.map((m) => [m.name, informer.get(m.name, NAMESPACE)]));
    informer.stop();
    await ctl.stop();

    step('reading the audit log');
    const stableOf = new Map(all.map((m) => [m.name, m.stable]));
    const isController = controllerRequest(adminUserOf(cp));
    const tally = new AuditTally(isController, {
      run: { from: runFrom, to: runTo },
      idle: { from: idleFrom, to: idleTo },
    });
    const rollbackWrites = new StableAloneWrites(isController, (split) => stableOf.get(split));
    await readAuditLog(auditLog, (e) => {
      tally.add(e);
      rollbackWrites.add(e);
      if (trace && isController(e)) trace.request(e);
    });
    const { run, idle } = tally.windows;

    let finished = 0;
    let unexpected = 0;
    const rollbackMs: number[] = [];
    const rollbackFromDueMs: number[] = [];
    const rollbackEngineMs: number[] = [];
    const answers = new QueryAnswers();
    for (const line of readFileSync(prometheus.queryLogFile!, 'utf8').split('\n')) answers.add(line);
    for (const m of all) {
      const final = finals.get(m.name);
      const phase = final?.status?.phase ?? '';
      if (!TERMINAL.has(phase)) continue;
      finished++;
      if (phase !== expectedPhase(m)) unexpected++;
      if (!m.faulty) continue;
      const t = rollbackTimes(
        final,
        dues.get(m.name) ?? [],
        (since) => rollbackWrites.after(m.name, since),
        (evaluatedAt) => answers.at(successRateOf(m.canary), evaluatedAt),
      );
      if (t?.writtenAt === undefined) continue;
      rollbackMs.push(t.writtenAt - t.knownAt);
      if (t.dueAt !== undefined) rollbackFromDueMs.push(t.writtenAt - t.dueAt);
      if (t.answeredAt !== undefined) rollbackEngineMs.push(t.writtenAt - t.answeredAt);
    }
    if (tally.clientEvents === 0) throw new Error('the audit log holds no request of the controller');

    return {
      label: o.label,
      n: o.n,
      allFinishedMs: allEndedAt === undefined ? undefined : allEndedAt - firstCreate,
      finished,
      unexpected,
      createMs,
      requests: run.byVerbResource,
      writes: run.writes,
      reads: run.reads,
      watches: run.watches,
      controllerCpuSeconds: (cpu1.controller - cpu0.controller) / 1000,
      idleRssKiB,
      endRssKiB,
      hwmKiB,
      idleMs: idleTo - idleFrom,
      idleCpuSeconds,
      idleRequests: idle.total,
      rollbackMs,
      rollbackFromDueMs,
      rollbackEngineMs,
      faulty: all.filter((m) => m.faulty).length,
      prometheusQueries: queries1 - queries0,
      rounds,
      reconciles,
      eventLoopDelayMs,
      apiServerCpuSeconds: (cpu1.apiServer - cpu0.apiServer) / 1000,
      etcdCpuSeconds: (cpu1.etcd - cpu0.etcd) / 1000,
      prometheusCpuSeconds: (cpu1.prometheus - cpu0.prometheus) / 1000,
      runMs: runTo - runFrom,
    };
  } finally {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch (err) {
        o.progress(`cleanup failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }
}

/** The admin user the sandbox's kubeconfig authenticates as (the controller runs with it too). */
function adminUserOf(cp: ControlPlane): string {
  const name = cp.kubeConfig().getCurrentUser()?.name;
  if (!name) throw new Error(`the sandbox's kubeconfig ${cp.kubeconfig} names no user`);
  return name;
}

/** The success-rate query of one canary, as the controller renders the template. */
function successRateOf(canary: string): string {
  return SUCCESS_RATE.replaceAll('{{ namespace }}', NAMESPACE)
    .replaceAll('{{ canary }}', canary)
    .replaceAll('{{ interval }}', INTERVAL);
}
