// `perch demo [--fast] [--router smi|gatewayapi]`: the whole story on one machine. A healthy canary (v2) is
// promoted, then a faulty one (v3) rolled back, with live progress; exits 0 only when both end as expected.
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { Rollout } from '../api/v1alpha1.js';
import { Informer } from '../k8s/informer.js';
import { assertSandboxKubeconfigPath, prepareBinaries } from '../sandbox/control-plane/index.js';
import { DEMO_ROUTERS, startDemoStack, type DemoRouter, type DemoStack } from '../sandbox/demo/stack.js';
import { giveUpAfter } from '../sandbox/demo/budget.js';
import {
  heldByPerson,
  liveLine,
  loadLine,
  observe,
  Redrawer,
  RoutingLog,
  routingLine,
  summaryTable,
  TransitionLog,
  type RunState,
} from '../sandbox/demo/view.js';
import { findPrometheus } from '../sandbox/prometheus/launcher.js';
import { UsageError } from './usage-error.js';

export const DEFAULT_DEMO_KUBECONFIG = join(tmpdir(), 'perch-demo.kubeconfig');

export const DEMO_USAGE = `usage:
  perch demo [--fast] [--router smi|gatewayapi] [--stay] [--kubeconfig FILE]
      Starts the sandbox, the bookstore backends, a mesh, load, Prometheus and the controller on this
      machine, promotes a healthy canary (v2) and rolls back a faulty one (v3), showing the progress.
      --fast             short analysis intervals and 1 s scrapes (about a minute once the binaries are built)
      --router R         what Perch writes the weights to: smi (default; an SMI TrafficSplit, examples/bookstore)
                         or gatewayapi (a person's Gateway API HTTPRoute with a Service parent, handed to Perch
                         by perch.dev/managed-by: examples/gateway-api-mesh)
      --stay             keep everything running after the summary, for kubectl, until Ctrl-C
      --kubeconfig FILE  where to copy the sandbox's admin kubeconfig for kubectl, removed on exit
                         (default ${DEFAULT_DEMO_KUBECONFIG}); an existing kubeconfig of yours is never
                         overwritten, nor one of another demo still running (then it prints its own)
      Ctrl-C stops everything it started. Exits 0 only when v2 is Succeeded and v3 Failed. Time a person
      holds the rollout (perch.dev/paused=true) does not count against its time limit.`;

const TERMINAL = new Set(['Succeeded', 'Failed', 'Aborted']);

export interface DemoFlags {
  fast: boolean;
  stay: boolean;
  /** Given by hand; undefined: the default path. */
  kubeconfig?: string;
  router: DemoRouter;
  help: boolean;
}

const isRouter = (value: string): value is DemoRouter => (DEMO_ROUTERS as readonly string[]).includes(value);

/** The demo's flags; a flag it does not know, or a router it has not, is a UsageError naming it. */
export function parseDemoFlags(argv: string[]): DemoFlags {
  let values;
  try {
    values = parseArgs({
      args: argv,
      options: {
        fast: { type: 'boolean' },
        stay: { type: 'boolean' },
        kubeconfig: { type: 'string' },
        router: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n${DEMO_USAGE}`);
  }
  const router = values.router ?? 'smi';
  if (!isRouter(router)) {
    throw new UsageError(
      `--router ${JSON.stringify(router)}: not a router of the demo; use smi (an SMI TrafficSplit, the default) ` +
        'or gatewayapi (a Gateway API HTTPRoute)',
    );
  }
  return {
    fast: values.fast ?? false,
    stay: values.stay ?? false,
    ...(values.kubeconfig !== undefined ? { kubeconfig: values.kubeconfig } : {}),
    router,
    help: values.help ?? false,
  };
}

const progress = (line: string) => process.stderr.write(`perch demo: ${line}\n`);
const say = (line = '') => process.stdout.write(`${line}\n`);

class Interrupted extends Error {}

export async function demoCommand(argv: string[]): Promise<number> {
  const values = parseDemoFlags(argv);
  if (values.help) {
    say(DEMO_USAGE);
    return 0;
  }
  const fast = values.fast;
  const kubeconfig = resolve(values.kubeconfig ?? DEFAULT_DEMO_KUBECONFIG);
  // A path given by hand that would overwrite someone's kubeconfig is a mistake to say at once; the
  // default path is just skipped then (the demo prints the sandbox's own kubeconfig instead).
  if (values.kubeconfig) {
    try {
      assertSandboxKubeconfigPath(kubeconfig);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  // Fail before anything starts when Prometheus is missing; the message says how to install it.
  findPrometheus();
  // Before the clock starts: a first run builds the binaries, which takes minutes.
  await prepareBinaries((line) => {
    progress(`first run: building the Kubernetes control-plane binaries (once): ${line}`);
  });

  const timeoutMs = fast ? 120_000 : 300_000;
  const abort = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      // A second Ctrl-C: the control plane's processes die with us (parent-death signal).
      process.stderr.write(`perch demo: ${sig} again; exiting at once\n`);
      process.exit(130);
    }
    progress(`${sig}: stopping everything it started (Ctrl-C again to exit at once)`);
    abort.abort(new Interrupted(sig));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let stack: DemoStack | undefined;
  let ok = false;
  // --stay: the runs ended and the summary was shown; Ctrl-C is then the normal way out.
  let stayed = false;
  const runs: RunState[] = [];
  let summarised = false;
  /** The summary table and the load's counts, once: when the runs end, or when the demo stops early. */
  const summarise = () => {
    if (summarised || runs.length === 0) return;
    summarised = true;
    say();
    say(summaryTable(runs));
    if (stack) say(loadLine(stack.bookbuyer.stats()));
  };
  const stopBudget = giveUpAfter(
    timeoutMs,
    () => runs.some(heldByPerson),
    () =>
      abort.abort(
        new Error(
          `the demo did not finish within ${timeoutMs / 1000} s (not counting time paused by a person); giving up`,
        ),
      ),
  );
  try {
    stack = await startDemoStack({
      fast,
      router: values.router,
      kubeconfig,
      progress,
      signal: abort.signal,
    });
    throwIfAborted(abort.signal);
    const kc = stack.userKubeconfig;
    const k = `KUBECONFIG=${kc} kubectl -n ${stack.namespace}`;
    say(`kubeconfig: ${kc}`);
    say(`watch:  ${k} get prl -w`);
    say(`route:  ${k} get ${stack.routeObject} -o yaml`);
    say(`pause:  ${k} annotate rollout ${stack.rolloutName} perch.dev/paused=true`);
    say(`resume: ${k} annotate rollout ${stack.rolloutName} perch.dev/paused-`);
    say(`controller log: ${stack.controllerLog}`);
    say(
      `prometheus: ${stack.prometheusUrl} (the queries the checks make: osm_request_total, osm_request_duration_ms)`,
    );
    say();

    ok = await runBoth(stack, runs, abort.signal);
    stopBudget();
    if (ok) ok = await routeKeptAsWritten(stack);
    if (values.stay && !abort.signal.aborted) {
      summarise();
      say();
      say(
        `still running (--stay): the control plane, mesh, load, Prometheus and controller. ` +
          `Try kubectl with KUBECONFIG=${kc}; Ctrl-C stops everything.`,
      );
      await new Promise<void>((done) => abort.signal.addEventListener('abort', () => done(), { once: true }));
      stayed = true;
    }
  } catch (err) {
    if (abort.signal.aborted) {
      const reason: unknown = abort.signal.reason;
      progress(reason instanceof Error ? reason.message : String(reason));
    } else {
      progress(`failed: ${(err as Error).message}`);
    }
  } finally {
    stopBudget();
  }

  summarise();
  if (stack) {
    progress('stopping the controller, bookbuyer, mesh, backends, Prometheus and the control plane');
    // A failed run keeps the controller's log to read; an interrupted one was asked to leave nothing.
    const keepLog = !ok && !(abort.signal.reason instanceof Interrupted);
    await stack.stop(keepLog);
    if (keepLog) progress(`the controller's log is kept in ${stack.controllerLog}`);
  }
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  if (abort.signal.reason instanceof Interrupted && !stayed) return 130;
  say(ok ? 'demo passed: v2 promoted, v3 rolled back' : 'demo FAILED');
  return ok ? 0 : 1;
}

function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason));
}

/**
 * Gateway API: the person's HTTPRoute after both runs differs from what was applied only in Perch's part
 * (the weights, and canary backendRefs added), which the demo says; anything else fails it.
 */
async function routeKeptAsWritten(stack: DemoStack): Promise<boolean> {
  const changes = await stack.routeChangesBeyondWeights();
  if (changes === undefined) return true;
  if (changes.length > 0) {
    say(`${stack.routeObject}: changed beyond the weights: ${changes.join('; ')}`);
    return false;
  }
  say(
    `${stack.routeObject}: Perch changed only weights (and added the canaries' backendRefs); ` +
      'your matches, filters, other rules and parentRefs are as you applied them',
  );
  return true;
}

async function runBoth(stack: DemoStack, runs: RunState[], signal: AbortSignal): Promise<boolean> {
  const tty = process.stdout.isTTY === true;
  const { namespace, rolloutName } = stack;
  const informer = new Informer<Rollout>(stack.cp.kubeConfig(), {
    apiVersion: 'perch.dev/v1alpha1',
    kind: 'Rollout',
    plural: 'rollouts',
    namespace,
  });
  const transitions = new TransitionLog();
  const routings = new RoutingLog();
  const redraw = new Redrawer((text) => process.stdout.write(text));
  const draw = () => {
    if (!tty) return;
    redraw.draw([
      ...runs.map((s) => liveLine(s)),
      routingLine(stack.routing()),
      loadLine(stack.bookbuyer.stats()),
    ]);
  };
  let current: { state: RunState; generation: number; done: (phase: string) => void } | undefined;
  // Off a terminal, a line each time the weights the mesh routes by change, under the run that moved them
  // (the one just ended, for a change the mesh applies after the run's end was seen; a run about to start
  // prints the routing it starts from once its clock starts).
  const printRouting = () => {
    const last = runs.at(-1);
    const run = current?.state ?? (last?.endedAt !== undefined ? last : undefined);
    if (tty || !run) return;
    const line = routings.line(stack.routing(), run);
    if (line) say(line);
  };
  const stopRouting = stack.onRoutingChange(printRouting);
  const onRollout = (r: Rollout) => {
    if (r.metadata?.name !== rolloutName || !current) return;
    observe(current.state, r, current.generation);
    if (!tty) {
      const line = transitions.line(current.state);
      if (line) say(line);
    }
    const phase = current.state.phase;
    if (phase && TERMINAL.has(phase) && (r.status?.observedGeneration ?? 0) >= current.generation)
      current.done(phase);
  };
  informer.onAdd(onRollout).onUpdate(onRollout);
  await informer.start();
  const ticker = tty ? setInterval(draw, 250) : undefined;

  async function run(state: RunState, start: () => Promise<number>): Promise<string> {
    runs.push(state);
    if (!tty) say(`${state.run}: ${state.stable} -> ${state.canary} (expect ${state.expected})`);
    const generation = await start();
    state.startedAt = Date.now();
    let onAbort = () => {};
    const finished = new Promise<string>((resolve, reject) => {
      current = { state, generation, done: resolve };
      onAbort = () => reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
      if (signal.aborted) onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
    });
    const cached = informer.get(rolloutName, namespace);
    if (cached) onRollout(cached);
    printRouting();
    try {
      return await finished;
    } finally {
      signal.removeEventListener('abort', onAbort);
      state.endedAt = Date.now();
      current = undefined;
      draw();
    }
  }

  try {
    const now = Date.now();
    const v2: RunState = {
      run: 'v2',
      stable: 'bookstore-v1',
      canary: 'bookstore-v2',
      expected: 'Succeeded',
      startedAt: now,
    };
    const manifest = stack.rolloutManifest();
    const v2Phase = await run(v2, async () => {
      const out = await stack.kubectl(['apply', '-o', 'json', '-f', '-'], JSON.stringify(manifest));
      await stack.startLoad();
      return (JSON.parse(out) as Rollout).metadata?.generation ?? 1;
    });
    if (v2Phase !== 'Succeeded') return false;

    const v3: RunState = {
      run: 'v3',
      stable: 'bookstore-v2',
      canary: 'bookstore-v3',
      expected: 'Failed',
      startedAt: Date.now(),
    };
    const v3Phase = await run(v3, async () => {
      const patch = { spec: { stableService: 'bookstore-v2', canaryService: 'bookstore-v3' } };
      const out = await stack.kubectl([
        '-n',
        namespace,
        'patch',
        'rollout',
        rolloutName,
        '--type',
        'merge',
        '-p',
        JSON.stringify(patch),
        '-o',
        'json',
      ]);
      return (JSON.parse(out) as Rollout).metadata?.generation ?? 2;
    });
    return v3Phase === 'Failed';
  } finally {
    stopRouting();
    if (ticker) clearInterval(ticker);
    draw();
    redraw.release();
    informer.stop();
  }
}
