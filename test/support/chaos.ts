// The chaos run (issue 14): Rollouts, healthy and faulty, over SMI and HTTPRoute, driven by `perch controller`
// through the seeded fault proxy, the controller SIGKILLed at seeded moments and kube-apiserver restarted; verdicts.
import type { Rollout } from '../../src/api/v1alpha1.js';
import type { FaultRecord } from '../../src/sandbox/faults/proxy.js';
import { parseFaultSpec } from '../../src/sandbox/faults/spec.js';
import type { TrafficProfile } from '../../src/sandbox/apps/osm-metrics-target.js';
import { RouteRecorder, type RecordedRoute } from './chaos-recorder.js';
import { sharedControlPlane } from './control-plane.js';
import { startController, type ControllerProcess } from './controller-process.js';
import { proxyInFront, type ProxyInFront } from './fault-proxy.js';
import { waitFor } from '../../src/sandbox/wait.js';
import { analysis, canaryTraffic, HEALTHY, RolloutEnv, sharedPrometheus } from './rollout-env.js';
import {
  backendsOf,
  canaryShareOf,
  changeBeyondWeights,
  personsRoute,
  resourceOf,
  ROUTERS,
  versionProblem,
  type RouterKind,
} from './route-under-test.js';
import { routeWrites, unguardedWrite, type RouteWrite } from './route-writes.js';

export interface ChaosOptions {
  /** Namespace prefix. */
  prefix: string;
  rollouts: number;
  /** Share of the Rollouts whose canary fails its checks (0..1). */
  faultyShare: number;
  /** Share of the Rollouts over a person's Gateway API HTTPRoute, the rest over an SMI TrafficSplit (0..1). */
  httpRouteShare: number;
  seed: number;
  /** SIGKILLs of the controller, each followed by a fresh start. */
  kills: number;
  restartApiServer: boolean;
  /** The fault proxy's spec, as `perch sandbox --faults` takes it; default: issue 14's mix with `seed`. */
  faults?: string;
  /** How long all runs together may take to reach their final phase. */
  settleTimeoutMs: number;
  /** Progress lines (kills, restart); default: none. */
  progress?: (line: string) => void;
}

/** healthy: passes every check; early: fails from the start; late: turns bad once its route reaches 30. */
export type RunKind = 'healthy' | 'faulty-early' | 'faulty-late';

export interface PlannedRun {
  name: string;
  canary: string;
  kind: RunKind;
  /** Its routing object, named as the Rollout: a TrafficSplit Perch creates, or a person's HTTPRoute. */
  router: RouterKind;
}

export const STEPS = [
  { setWeight: 10 },
  { analysis: { iterations: 2 } },
  { setWeight: 30 },
  { pause: { duration: '2s' } },
  { setWeight: 60 },
  { analysis: { iterations: 2 } },
  { setWeight: 100 },
];
/** The canary weight of each version a healthy run writes: stable 100 (created, or taken over), each step, promoted. */
export const PLANNED = [0, 10, 30, 60, 100];
const LATE_TRIGGER = 30;
const FAULTY: TrafficProfile = { rps: 50, errorRate: 0.3, latencyMs: 20 };
const STABLE = 'web-v1';
const TERMINAL = new Set(['Succeeded', 'Failed', 'Aborted']);

export const issueFaults = (seed: number) => `seed=${seed},500=0.10,409=0.05,429=0.02,watch-cut=5s`;

export interface Kill {
  at: number;
  /** Routing object versions recorded when the kill landed. */
  versions: number;
  /** Runs with a routing object and no final phase at that moment. */
  inFlight: number;
  pid: number;
}

export interface RunOutcome extends PlannedRun {
  createdAt: number;
  settledAt: number | undefined;
  rollout: Rollout | undefined;
}

export interface ChaosOutcome {
  ns: string;
  seed: number;
  faults: string;
  runs: RunOutcome[];
  kills: Kill[];
  apiRestart: { at: number; inFlight: number; tookMs: number } | undefined;
  /** A controller started once every run had ended: how long until it had reconciled them all. */
  afterEnd: { tookMs: number; error?: string } | undefined;
  /** One per router of the plan. */
  recorders: RouteRecorder[];
  /** Where a recorder and etcd's history of the objects disagree (a missed version, or a harness bug). */
  crossCheck: string[];
  controllers: ControllerProcess[];
  durationMs: number;
  /** Everything that is wrong, one line each; empty when the run kept every promise. */
  problems: string[];
  /** What a failure needs to be diagnosed: per run with a problem, its status, versions, writes, Events, logs. */
  diagnostics: string;
}

/** A whole-number setting from the environment (seeds, counts), so a failing run can be replayed. */
export function fromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0)
    throw new Error(`${name}=${raw}: give a whole number (default ${fallback})`);
  return n;
}

/** mulberry32: a small seeded generator, so a seed names one plan (kinds, kill moments, delays). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Which runs are faulty and how, drawn from the seed (half the faulty ones fail late), and which go over an
 * HTTPRoute: the runs of each kind, in order, take turns, so both routers see every kind the plan has twice.
 */
export function planRuns(
  count: number,
  faultyShare: number,
  random: () => number,
  httpRouteShare = 0,
): PlannedRun[] {
  const order = Array.from({ length: count }, (_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const faulty = order.slice(0, Math.round(count * faultyShare));
  const runs = Array.from({ length: count }, (_, i) => {
    const at = faulty.indexOf(i);
    const kind: RunKind = at < 0 ? 'healthy' : at % 2 === 0 ? 'faulty-early' : 'faulty-late';
    return { name: `run-${i}`, canary: `canary-${i}`, kind, router: 'smi' as RouterKind };
  });
  const KINDS: RunKind[] = ['healthy', 'faulty-early', 'faulty-late'];
  const byKind = KINDS.flatMap((k) => runs.filter((r) => r.kind === k));
  byKind.forEach((r, i) => {
    if (Math.floor((i + 1) * httpRouteShare) > Math.floor(i * httpRouteShare)) r.router = 'gatewayapi';
  });
  return runs;
}

/** Versions the plan makes (late failures at their shortest, a person's route counted), to place the kills. */
function expectedVersions(runs: PlannedRun[]): number {
  const perch = { healthy: 5, 'faulty-early': 3, 'faulty-late': 4 };
  return runs.reduce((n, r) => n + perch[r.kind] + (r.router === 'gatewayapi' ? 1 : 0), 0);
}

export const canaryWeightOf = (v: RecordedRoute, canary: string) =>
  canaryShareOf(v.router, v.object, STABLE, canary);

/** What is wrong with one version Perch wrote: SPEC §3's rules for its router. */
export function invalidVersion(v: RecordedRoute, ns: string, canary: string): string | undefined {
  if (v.type === 'DELETED') return 'the object was deleted';
  return versionProblem(v.router, v.object, {
    root: `web.${ns}.svc.cluster.local`,
    stable: STABLE,
    canary,
  });
}

/** A version Perch wrote carries the canary weight it wrote; a person's version does not. */
const writtenByPerch = (v: RecordedRoute) =>
  v.object.metadata?.annotations?.['perch.dev/canary-weight'] !== undefined;

/**
 * A run's versions split into the person's (an HTTPRoute's first: the route handed to Perch) and Perch's
 * own; a problem when the first HTTPRoute version is Perch's or a later one is not.
 */
export function versionsOf(
  r: PlannedRun,
  history: RecordedRoute[],
): { perch: RecordedRoute[]; problem?: string } {
  if (r.router === 'smi') return { perch: history };
  const [persons, ...perch] = history;
  if (!persons) return { perch, problem: 'no version of the HTTPRoute was recorded' };
  if (writtenByPerch(persons))
    return { perch, problem: `the first HTTPRoute version (rv ${persons.rv}) is not the person's` };
  const foreign = perch.find((v) => !writtenByPerch(v));
  if (foreign)
    return { perch, problem: `HTTPRoute version rv ${foreign.rv} carries no perch.dev/canary-weight` };
  return { perch };
}

/** What is wrong with the canary weights of one run's versions written by Perch, given its kind. */
export function wrongSequence(kind: RunKind, weights: number[]): string | undefined {
  const show = `[${weights.join(', ')}]`;
  if (kind === 'healthy') {
    return weights.join() === PLANNED.join()
      ? undefined
      : `wrote ${show}; the plan is [${PLANNED.join(', ')}]`;
  }
  if (kind === 'faulty-early') {
    // Its first check fails, at the first step: 10 is written and taken back, or, when the check's verdict
    // comes before the write of 10 got through (a fault, a kill), never written at all.
    return ['0,10,0', '0'].includes(weights.join())
      ? undefined
      : `wrote ${show}; a run failing from the start writes [0, 10, 0] (or [0] if it fails before 10 is routed)`;
  }
  // Turned bad at 30: it fails at 30 or, if its checks lag, at the next step, and never promotes.
  const reached = weights.slice(0, -1);
  const upTo = PLANNED.indexOf(LATE_TRIGGER);
  const inOrder = reached.every((w, i) => w === PLANNED[i]);
  if (weights.at(-1) === 0 && inOrder && reached.length > upTo && reached.length < PLANNED.length)
    return undefined;
  return `wrote ${show}; a run failing from weight ${LATE_TRIGGER} writes [${PLANNED.slice(0, upTo + 1).join(', ')}, ...] in plan order without 100, then 0`;
}

export async function runChaos(opts: ChaosOptions): Promise<ChaosOutcome> {
  if (!(opts.httpRouteShare >= 0 && opts.httpRouteShare <= 1))
    throw new Error(`httpRouteShare ${opts.httpRouteShare}: give a share of the Rollouts from 0 to 1`);
  const started = Date.now();
  const progress = opts.progress ?? (() => undefined);
  const random = prng(opts.seed);
  const plan = planRuns(opts.rollouts, opts.faultyShare, random, opts.httpRouteShare);
  const faults = opts.faults ?? issueFaults(opts.seed);
  const cp = await sharedControlPlane();
  const { prometheus, target } = await sharedPrometheus();

  const env = await RolloutEnv.create(opts.prefix, ['web', STABLE, ...plan.map((r) => r.canary)]);
  const recorders = new Map<RouterKind, RouteRecorder>();
  for (const router of ROUTERS.filter((k) => plan.some((r) => r.router === k)))
    recorders.set(router, await RouteRecorder.start(cp.kubeConfig(), env.ns, router, cp.etcdUrl));
  const historyOf = (r: PlannedRun) => recorders.get(r.router)!.history(r.name);
  const onVersion = (handler: (v: RecordedRoute) => void) => {
    for (const rec of recorders.values()) rec.onVersion(handler);
  };
  let proxy: ProxyInFront | undefined;
  const controllers: ControllerProcess[] = [];
  const runs: RunOutcome[] = [];
  const kills: Kill[] = [];
  let apiRestart: ChaosOutcome['apiRestart'];
  let afterEnd: ChaosOutcome['afterEnd'];
  let crossCheck: string[] | undefined;
  try {
    await Promise.all(
      plan.map((r) => canaryTraffic(env, r.kind === 'faulty-early' ? FAULTY : HEALTHY, r.canary)),
    );
    const late = new Map(plan.filter((p) => p.kind === 'faulty-late').map((r) => [r.name, r.canary]));
    onVersion((v) => {
      const canary = late.get(v.name);
      if (canary === undefined || canaryWeightOf(v, canary) !== LATE_TRIGGER) return;
      late.delete(v.name);
      target.set(env.ns, canary, FAULTY);
    });
    proxy = await proxyInFront(cp, parseFaultSpec(faults));
    const start = async () => {
      const c = await startController(proxy!.kubeconfig, prometheus.url, ['--namespace', env.ns]);
      controllers.push(c);
      return c;
    };
    let controller = await start();

    for (const r of plan) {
      // Over the Gateway API, a person's HTTPRoute (rules, matches, filters of theirs) handed to Perch.
      if (r.router === 'gatewayapi') {
        const { group, version, plural } = resourceOf('gatewayapi');
        const body = personsRoute(r.name, r.name, [r.canary]);
        await env.api.createNamespacedCustomObject({ group, version, plural, namespace: env.ns, body });
      }
      await env.createRollout(r.name, {
        canaryService: r.canary,
        steps: STEPS,
        analysis: analysis(),
        ...(r.router === 'gatewayapi' ? { trafficRouting: { gatewayAPI: {} } } : {}),
      });
      runs.push({ ...r, createdAt: Date.now(), settledAt: undefined, rollout: undefined });
    }
    const phaseOf = (name: string) => lastRollout(env, name)?.status?.phase ?? '';
    const inFlight = () =>
      runs.filter((r) => historyOf(r).length > 0 && !TERMINAL.has(phaseOf(r.name))).length;

    let settled = false;
    const settle = Promise.all(
      runs.map(async (r) => {
        r.rollout = await env.until(
          r.name,
          (x) => TERMINAL.has(x.status?.phase ?? ''),
          'a final phase',
          opts.settleTimeoutMs,
        );
        r.settledAt = Date.now();
      }),
    ).finally(() => (settled = true));

    // Kill moments: seeded counts of versions written so far, each with a seeded delay after it.
    const total = expectedVersions(plan);
    const at = (lo: number, hi: number) => Math.floor(total * (lo + random() * (hi - lo)));
    const killPoints = Array.from({ length: opts.kills }, () => ({
      versions: at(0.1, 0.8),
      delayMs: random() * 1500,
    }));
    killPoints.sort((a, b) => a.versions - b.versions);
    const restartPoint = at(0.35, 0.55);
    const countVersions = () => [...recorders.values()].reduce((n, rec) => n + rec.versions.seen.length, 0);
    const waiting = new Set<{ n: number; resolve: () => void }>();
    onVersion(() => {
      for (const w of [...waiting]) {
        if (countVersions() < w.n) continue;
        waiting.delete(w);
        w.resolve();
      }
    });
    const versionsAtLeast = (n: number): Promise<unknown> =>
      countVersions() >= n
        ? Promise.resolve()
        : Promise.race([new Promise<void>((resolve) => waiting.add({ n, resolve })), settle.catch(() => 0)]);

    const restarting = opts.restartApiServer
      ? (async () => {
          await versionsAtLeast(restartPoint);
          if (settled) return;
          const t0 = Date.now();
          const flying = inFlight();
          progress(
            `restarting kube-apiserver at ${countVersions()} route versions, ${flying} runs in flight`,
          );
          await cp.restartApiServer();
          apiRestart = { at: t0, inFlight: flying, tookMs: Date.now() - t0 };
          progress(`kube-apiserver back after ${apiRestart.tookMs} ms`);
        })()
      : Promise.resolve();

    let previous = 0;
    for (const point of killPoints) {
      await versionsAtLeast(Math.max(point.versions, previous + 1));
      if (settled) break;
      await new Promise((r) => setTimeout(r, point.delayMs));
      if (settled) break;
      const kill: Kill = {
        at: Date.now(),
        versions: countVersions(),
        inFlight: inFlight(),
        pid: controller.pid,
      };
      previous = kill.versions;
      await controller.kill();
      kills.push(kill);
      progress(`SIGKILL ${kill.pid} at ${kill.versions} route versions, ${kill.inFlight} runs in flight`);
      controller = await start();
    }
    await settle.catch(() => undefined);
    await restarting;

    // A controller started after every run ended moves nothing: the live-version rule, across one more kill.
    await controller.kill();
    controller = await start();
    const t0 = Date.now();
    const c = controller;
    await waitFor(
      async () => {
        const phases = await rolloutPhases(c.metricsAddress, env.ns);
        return runs.every((r) => phases.get(r.name) === phaseOf(r.name)) ? true : undefined;
      },
      {
        what: 'the controller started after the end to reconcile every Rollout',
        timeoutMs: 60_000,
        intervalMs: 250,
      },
    ).then(
      () => (afterEnd = { tookMs: Date.now() - t0 }),
      (err: Error) => (afterEnd = { tookMs: Date.now() - t0, error: err.message }),
    );
    // A recorder must reach every object's current version; if it cannot, that is a finding, not a crash.
    crossCheck = [];
    for (const rec of recorders.values()) {
      const behind = await rec.caughtUp().then(
        () => [],
        (err: Error) => [err.message.slice(0, 300)],
      );
      const differs = await rec
        .crossCheck(cp.etcdUrl)
        .catch((err: Error) => [`etcd's history could not be read to check the recorder: ${err.message}`]);
      crossCheck.push(...[...behind, ...differs].map((p) => `${rec.router}: ${p}`));
    }
    for (const r of runs) r.rollout = await env.get(r.name);
  } finally {
    for (const rec of recorders.values()) rec.stop();
    env.close();
    for (const c of controllers) await c.stop();
    await proxy?.proxy.close();
  }

  const outcome: ChaosOutcome = {
    ns: env.ns,
    seed: opts.seed,
    faults,
    runs,
    kills,
    apiRestart,
    afterEnd,
    recorders: [...recorders.values()],
    crossCheck: crossCheck ?? ['the recorders were not checked against etcd'],
    controllers,
    durationMs: Date.now() - started,
    problems: [],
    diagnostics: '',
  };
  const writes = cp.auditLog ? routeWrites(cp.auditLog, env.ns) : undefined;
  outcome.problems = verdicts(outcome, opts, writes);
  outcome.diagnostics = await diagnose(outcome, env, proxy?.proxy.records() ?? [], writes ?? []);
  return outcome;
}

/** name → phase of the Rollouts of `ns` as a controller's perch_rollout_info reports them. */
async function rolloutPhases(metricsAddress: string, ns: string): Promise<Map<string, string>> {
  const text = await (await fetch(`http://${metricsAddress}/metrics`)).text();
  const phases = new Map<string, string>();
  for (const m of text.matchAll(/^perch_rollout_info\{([^}]*)\} 1$/gm)) {
    const labels = Object.fromEntries([...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    if (labels.namespace === ns && labels.name && labels.phase) phases.set(labels.name, labels.phase);
  }
  return phases;
}

function lastRollout(env: RolloutEnv, name: string): Rollout | undefined {
  for (let i = env.rollouts.seen.length - 1; i >= 0; i--)
    if (env.rollouts.seen[i]!.metadata?.name === name) return env.rollouts.seen[i];
  return undefined;
}

/** The recorded versions of a run's routing object. */
const historyIn = (o: ChaosOutcome, r: PlannedRun) =>
  o.recorders.find((rec) => rec.router === r.router)?.history(r.name) ?? [];

function verdicts(o: ChaosOutcome, opts: ChaosOptions, writes: RouteWrite[] | undefined): string[] {
  const problems: string[] = [];
  if (!writes) problems.push('the control plane keeps no audit log: write preconditions were not checked');
  for (const r of o.runs) {
    const want = r.kind === 'healthy' ? 'Succeeded' : 'Failed';
    const phase = r.rollout?.status?.phase;
    if (phase !== want) problems.push(`${r.name} (${r.kind}): phase ${phase ?? '(none)'}, expected ${want}`);
    const history = historyIn(o, r);
    const { perch, problem } = versionsOf(r, history);
    if (problem) problems.push(`${r.name}: ${problem}`);
    const kind = r.router === 'smi' ? 'split' : 'HTTPRoute';
    for (const v of perch) {
      const wrong = invalidVersion(v, o.ns, r.canary);
      if (wrong) problems.push(`${r.name}: invalid ${kind} at resourceVersion ${v.rv}: ${wrong}`);
    }
    const services = new Set([STABLE, r.canary]);
    for (const [i, v] of history.entries()) {
      const before = history[i - 1];
      if (!before || v.type === 'DELETED') continue;
      const changed = changeBeyondWeights(r.router, before.object, v.object, services);
      if (changed)
        problems.push(`${r.name}: ${kind} rv ${before.rv} -> ${v.rv} changed beyond the weights: ${changed}`);
    }
    const wrong = wrongSequence(
      r.kind,
      perch.map((v) => canaryWeightOf(v, r.canary)),
    );
    if (wrong) problems.push(`${r.name} (${r.kind}, ${r.router}): ${wrong}`);
    const written = (writes ?? []).filter((w) => w.router === r.router && w.name === r.name);
    for (const w of written) {
      const unguarded = unguardedWrite(w);
      if (unguarded) problems.push(`${r.name}: ${w.verb} of its ${kind} at ${w.at}: ${unguarded}`);
    }
    // Each version Perch made is a write it sent that may have landed: fewer in the log would go
    // unchecked. A 504 is the API server's own timeout, answered while the write can still commit (seen:
    // a version made by a patch the audit log records as 504), so it counts; a 4xx never landed.
    const landed = (code: number) => (code >= 200 && code < 300) || code === 504;
    const accepted = written.filter(
      (w) => w.userAgent.startsWith('perch-controller/') && landed(w.code ?? 0),
    );
    if (writes && accepted.length < perch.length)
      problems.push(
        `${r.name}: the audit log holds ${accepted.length} accepted writes of Perch's to its ${kind} for ${perch.length} versions it made`,
      );
  }
  if (o.kills.length !== opts.kills)
    problems.push(`${o.kills.length} kills landed, ${opts.kills} planned: the runs ended before the rest`);
  for (const k of o.kills)
    if (k.inFlight === 0)
      problems.push(`the kill of ${k.pid} at ${k.versions} versions found no run in flight`);
  if (opts.restartApiServer && !o.apiRestart)
    problems.push('kube-apiserver was not restarted: the runs ended first');
  if (o.apiRestart && o.apiRestart.inFlight === 0)
    problems.push('kube-apiserver restarted with no run in flight');
  if (!o.afterEnd || o.afterEnd.error)
    problems.push(`a controller started after the end did not report every Rollout: ${o.afterEnd?.error}`);
  for (const rec of o.recorders)
    for (const gap of rec.stats.gaps) problems.push(`the ${rec.router} recorder missed versions: ${gap}`);
  for (const p of o.crossCheck) problems.push(`the route recorder: ${p}`);
  return problems;
}

/** The summary of one run: counts, timings, what the recorders went through. */
export function summary(o: ChaosOutcome): string {
  const by = (kind: RunKind) => o.runs.filter((r) => r.kind === kind).length;
  const over = (router: RouterKind) => o.runs.filter((r) => r.router === router).length;
  const exposed = o.runs.filter((r) =>
    o.kills.some((k) => k.at > r.createdAt && k.at < (r.settledAt ?? Infinity)),
  ).length;
  const recorded = o.recorders.map((rec) => {
    const s = rec.stats;
    return `  ${rec.router} recorder: ${rec.versions.seen.length} versions, ${s.watches} watches, ${s.resumes} resumes, ${s.relists} relists, ${s.fromEtcd} versions read back from etcd, ${s.errors} connection errors`;
  });
  return [
    `chaos: seed ${o.seed}, faults "${o.faults}", namespace ${o.ns}, ${(o.durationMs / 1000).toFixed(1)} s`,
    `  runs: ${by('healthy')} healthy, ${by('faulty-early')} faulty from the start, ${by('faulty-late')} faulty from weight ${LATE_TRIGGER}; ${over('smi')} over SMI, ${over('gatewayapi')} over an HTTPRoute; ${exposed} killed under at least once`,
    `  kills: ${o.kills.map((k) => `${k.versions}v/${k.inFlight}f`).join(' ')} (route versions / runs in flight)`,
    `  controller started after the end: ${o.afterEnd ? `${o.afterEnd.tookMs} ms to report every Rollout` : 'none'}`,
    `  kube-apiserver restart: ${o.apiRestart ? `${o.apiRestart.tookMs} ms, ${o.apiRestart.inFlight} runs in flight` : 'none'}`,
    ...recorded,
    `  recorders ${o.crossCheck.length === 0 ? "match etcd's history" : "differ from etcd's history"}`,
  ].join('\n');
}

/** One audited write, short: when, what, the answer, who, and the start of its body. */
const showWrite = (w: RouteWrite) =>
  `${w.at} ${w.verb} ${w.code} ${w.userAgent.split(' ')[0]} ${JSON.stringify(w.body ?? null).slice(0, 240)}`;

/** One recorded version, short: the canary weight Perch wrote and the backends of the (first) rule to stable. */
const showVersion = (v: RecordedRoute, from: number) =>
  `rv ${v.rv} ${v.type} ${v.source} +${v.at - from}ms canary-weight=${v.object.metadata?.annotations?.['perch.dev/canary-weight'] ?? '-'} ${backendsOf(
    v.router,
    v.object,
    STABLE,
  )
    .map((b) => `${b.service}=${b.weight}`)
    .join(',')}`;

async function diagnose(
  o: ChaosOutcome,
  env: RolloutEnv,
  proxied: FaultRecord[],
  writes: RouteWrite[],
): Promise<string> {
  const bad = o.runs.filter((r) =>
    o.problems.some((p) => p.startsWith(`${r.name}:`) || p.startsWith(`${r.name} `)),
  );
  const out: string[] = [];
  for (const r of bad.slice(0, 5)) {
    const st = r.rollout?.status;
    const { plural } = resourceOf(r.router);
    out.push(`--- ${r.name} (${r.kind}, canary ${r.canary}, over ${plural})`);
    out.push(
      `status: ${JSON.stringify({ phase: st?.phase, message: st?.message, step: st?.currentStepIndex, canaryWeight: st?.canaryWeight, pauseReason: st?.pauseReason, observedGeneration: st?.observedGeneration, conditions: st?.conditions?.map((c) => `${c.type}=${c.status}/${c.reason}`) })}`,
    );
    out.push(`${plural} versions:`);
    for (const v of historyIn(o, r)) out.push(`  ${showVersion(v, o.runs[0]!.createdAt)}`);
    out.push(`${plural} writes the API server answered (audit log):`);
    for (const w of writes.filter((w) => w.router === r.router && w.name === r.name))
      out.push(`  ${showWrite(w)}`);
    const path = `/namespaces/${o.ns}/${plural}/${r.name}`;
    const faulted = proxied.filter((p) => p.path.includes(path) && p.method !== 'GET' && p.fault !== 'none');
    out.push(
      `${plural} writes the fault proxy answered itself: ${faulted.map((p) => `${p.method} #${p.index} ${p.fault}`).join(', ') || 'none'}`,
    );
    const events = await env.events(r.name).catch(() => []);
    out.push(`events: ${events.map((e) => `${e.reason}: ${e.message}`).join(' | ')}`);
    out.push('controller logs naming it:');
    for (const [i, c] of o.controllers.entries())
      for (const l of c.logs.filter((l) => JSON.stringify(l).includes(r.name)).slice(-8))
        out.push(`  [controller ${i}] ${JSON.stringify(l)}`);
  }
  if (bad.length > 5) out.push(`(${bad.length - 5} more runs with problems)`);
  const last = o.controllers[o.controllers.length - 1];
  if (last) {
    out.push('--- the last controller, its last log lines:');
    for (const l of last.logs.slice(-15)) out.push(`  ${JSON.stringify(l)}`);
  }
  return out.join('\n');
}
