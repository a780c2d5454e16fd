#!/usr/bin/env node
// `kubectl perch`: the kubectl plugin for Rollouts (get, status, pause, resume, promote, abort, retry).
// Flags and API calls only; what is printed is rollout-view.ts's, what is written is rollout-actions.ts's.
import {
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  dumpYaml,
  setHeaderOptions,
  type CoreV1Event,
} from '@kubernetes/client-node';
import { parseArgs } from 'node:util';
import { API_VERSION, GROUP, VERSION, type Rollout } from '../api/v1alpha1.js';
import { apiError, describeApiError } from '../k8s/api-error.js';
import { Informer } from '../k8s/informer.js';
import { runMain } from './main.js';
import { ACTIONS, planAction, type ActionName } from './rollout-actions.js';
import { WatchTable, rolloutTable, statusText } from './rollout-view.js';
import { UsageError } from './usage-error.js';

const USAGE = `usage: kubectl perch <command> [NAME] [flags]

commands:
  get [NAME]     the Rollouts as a table: NAME, PHASE, WEIGHT (canary %), STEP, AGE, MESSAGE
  status NAME    one Rollout in full: phase, services and weights, the current step, analysis counters,
                 the latest measurement of each metric, conditions, and its last Events
  pause NAME     hold the run at its weight: sets perch.dev/paused=true (checks go on)
  resume NAME    lift the hold the status shows: removes perch.dev/paused if set; otherwise, when the
                 run is Paused at a pause step or for inconclusive or unavailable metrics, sets
                 perch.dev/resume=true. One hold at a time: a pause step under a person's pause needs
                 a second resume once the run shows Paused(PauseStep).
  promote NAME   skip the remaining steps and promote now: sets perch.dev/promote=true
  abort NAME     roll back to stable now: sets perch.dev/abort=true
  retry NAME     start a Failed or Aborted run again from its first step: sets perch.dev/retry=true

flags:
  -n, --namespace NS      the namespace (default: the context's namespace, else default)
  -A, --all-namespaces    get: the Rollouts of every namespace (adds a NAMESPACE column)
  -w, --watch             get, status: after the first output, print again on every change (a watch),
                          until SIGINT (Ctrl-C) or SIGTERM
  -o, --output FORMAT     get: json or yaml instead of the table (not with --watch)
      --kubeconfig FILE   the kubeconfig (default: $KUBECONFIG, else ~/.kube/config)
      --context NAME      the kubeconfig context to use (default: its current context)
  -h, --help              this help

pause, resume, promote, abort and retry merge-patch the Rollout's annotations and nothing else, and
print one line saying what they did. They send nothing and exit 0 when what they ask for is already
set or already done (abort of an Aborted run). They refuse, exit 1, when the Rollout's status says the
controller would ignore the annotation: resume of a run that is not paused, promote or abort of a run
that is not in progress or is about to restart for a new spec, promote while a metric's latest check
failed, retry of a run that is not Failed or Aborted. kubectl annotate sets an annotation regardless.`;

const FLAGS = {
  namespace: { type: 'string', short: 'n' },
  'all-namespaces': { type: 'boolean', short: 'A' },
  watch: { type: 'boolean', short: 'w' },
  output: { type: 'string', short: 'o' },
  kubeconfig: { type: 'string' },
  context: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const COMMANDS = ['get', 'status', ...ACTIONS] as const;
type Command = (typeof COMMANDS)[number];
type OutputFormat = 'table' | 'json' | 'yaml';

interface Invocation {
  command: Command;
  name: string | undefined;
  allNamespaces: boolean;
  watch: boolean;
  output: OutputFormat;
  namespace: string | undefined;
  kubeconfig: string | undefined;
  context: string | undefined;
}

const usageError = (message: string) =>
  new UsageError(`${message}\n(kubectl perch --help lists the commands and flags)`);

/** The command line, checked: which flags go with which command, and how many names each takes. */
function parseInvocation(argv: string[]): Invocation | 'help' | 'none' {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: FLAGS, allowPositionals: true, strict: true });
  } catch (err) {
    // Node's advice on positionals that start with '-' misleads more than it helps: flags here are typos.
    throw usageError((err as Error).message.replace(/\. To specify a positional argument.*$/s, ''));
  }
  const { values, positionals } = parsed;
  if (values.help) return 'help';
  const [command, ...names] = positionals;
  if (command === undefined) return 'none';
  if (!(COMMANDS as readonly string[]).includes(command)) {
    throw usageError(`unknown command "${command}": use one of ${COMMANDS.join(', ')}`);
  }
  const cmd = command as Command;
  if (names.length > 1)
    throw usageError(`${cmd} takes one Rollout name, got ${names.length}: ${names.join(' ')}`);
  const name = names[0];
  if (cmd !== 'get' && name === undefined)
    throw usageError(`${cmd} needs a Rollout name: kubectl perch ${cmd} NAME`);
  const only = (flag: string, commands: readonly Command[]) => {
    if (!commands.includes(cmd))
      throw usageError(`${flag} goes with ${commands.join(' and ')} only, not ${cmd}`);
  };
  if (values['all-namespaces']) {
    only('--all-namespaces', ['get']);
    if (name !== undefined)
      throw usageError(`--all-namespaces lists every Rollout; drop it to get "${name}", or drop the name`);
  }
  if (values.watch) only('--watch', ['get', 'status']);
  // A watch prints rows (get) or summaries (status); a stream of whole objects is kubectl get -w -o's job.
  if (values.watch && values.output !== undefined) throw usageError('--output does not go with --watch');
  let output: OutputFormat = 'table';
  if (values.output !== undefined) {
    only('--output', ['get']);
    if (values.output !== 'json' && values.output !== 'yaml')
      throw usageError(`--output ${values.output}: use json or yaml`);
    output = values.output;
  }
  return {
    command: cmd,
    name,
    allNamespaces: values['all-namespaces'] ?? false,
    watch: values.watch ?? false,
    output,
    namespace: values.namespace,
    kubeconfig: values.kubeconfig,
    context: values.context,
  };
}

interface Connection {
  kc: KubeConfig;
  namespace: string;
  rollouts: CustomObjectsApi;
  core: CoreV1Api;
}

/** kubectl's rules: --kubeconfig, else $KUBECONFIG, else ~/.kube/config; --context over the current one. */
function connect(inv: Invocation): Connection {
  const kc = new KubeConfig();
  if (inv.kubeconfig) {
    try {
      kc.loadFromFile(inv.kubeconfig);
    } catch (err) {
      throw new Error(`--kubeconfig ${inv.kubeconfig}: ${(err as Error).message}`, { cause: err });
    }
  } else {
    kc.loadFromDefault();
  }
  if (inv.context) {
    if (!kc.getContextObject(inv.context)) {
      const known = kc.getContexts().map((c) => c.name);
      throw new Error(
        `--context ${inv.context}: no such context in the kubeconfig (it has: ${known.join(', ') || 'none'})`,
      );
    }
    kc.setCurrentContext(inv.context);
  }
  const namespace = inv.namespace ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
  return { kc, namespace, rollouts: kc.makeApiClient(CustomObjectsApi), core: kc.makeApiClient(CoreV1Api) };
}

const ROLLOUTS = { group: GROUP, version: VERSION, plural: 'rollouts' } as const;
const ROLLOUT_REF = { apiVersion: API_VERSION, kind: 'Rollout', plural: 'rollouts' } as const;

async function readRollout(c: Connection, name: string): Promise<Rollout> {
  try {
    return (await c.rollouts.getNamespacedCustomObject({
      ...ROLLOUTS,
      namespace: c.namespace,
      name,
    })) as Rollout;
  } catch (err) {
    if (apiError(err).code === 404)
      throw new Error(`rollout ${c.namespace}/${name} not found`, { cause: err });
    throw describeApiError(err, `reading rollout ${c.namespace}/${name}`);
  }
}

async function listRollouts(c: Connection, allNamespaces: boolean): Promise<Rollout[]> {
  try {
    const list = (
      allNamespaces
        ? await c.rollouts.listClusterCustomObject(ROLLOUTS)
        : await c.rollouts.listNamespacedCustomObject({ ...ROLLOUTS, namespace: c.namespace })
    ) as { items: Rollout[] };
    return list.items;
  } catch (err) {
    throw describeApiError(
      err,
      `listing rollouts ${allNamespaces ? 'in all namespaces' : `in namespace ${c.namespace}`}`,
    );
  }
}

/** The Rollout's Events (core/v1), matched by uid so an older Rollout of the same name does not show. */
async function rolloutEvents(c: Connection, rollout: Rollout): Promise<CoreV1Event[]> {
  const fieldSelector = `involvedObject.uid=${rollout.metadata?.uid ?? ''}`;
  try {
    return (await c.core.listNamespacedEvent({ namespace: c.namespace, fieldSelector })).items;
  } catch (err) {
    throw describeApiError(
      err,
      `listing the events of rollout ${c.namespace}/${rollout.metadata?.name ?? ''}`,
    );
  }
}

const write = (lines: readonly string[]) => {
  if (lines.length > 0) process.stdout.write(`${lines.join('\n')}\n`);
};

/** -o json|yaml: one object, or kubectl's List of them. */
function formatObject(format: 'json' | 'yaml', obj: object): string {
  return format === 'json' ? `${JSON.stringify(obj, null, 2)}\n` : dumpYaml(obj);
}

/** Resolves on the first SIGINT or SIGTERM: the end of a watch, which is a normal exit. */
function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}

/** A watch that restarts by itself; a person is told when it was cut, not left wondering why nothing moves. */
function informer<T extends Rollout | CoreV1Event>(
  c: Connection,
  ref: { apiVersion: string; kind: string; plural: string },
  namespace?: string,
) {
  return new Informer<T>(
    c.kc,
    { ...ref, namespace },
    {
      onError: (err, retryInMs) =>
        process.stderr.write(
          `kubectl-perch: watch of ${ref.plural} cut (${apiError(err).message}); resuming in ${retryInMs} ms\n`,
        ),
    },
  );
}

async function get(c: Connection, inv: Invocation): Promise<number> {
  // Read once first: a missing Rollout or a refused list is an error now, not a watch that waits forever.
  const rollouts = inv.name ? [await readRollout(c, inv.name)] : await listRollouts(c, inv.allNamespaces);
  const where = inv.allNamespaces ? '' : ` in namespace ${c.namespace}`;
  if (!inv.watch) {
    if (inv.output !== 'table') {
      const obj = inv.name
        ? rollouts[0]!
        : { apiVersion: 'v1', kind: 'List', items: rollouts, metadata: { resourceVersion: '' } };
      process.stdout.write(formatObject(inv.output, obj));
    } else if (rollouts.length === 0) {
      process.stderr.write(`No rollouts found${where}.\n`);
    } else {
      write(rolloutTable(rollouts, Date.now(), inv.allNamespaces));
    }
    return 0;
  }

  const signal = untilSignal();
  const watched = informer<Rollout>(c, ROLLOUT_REF, inv.allNamespaces ? undefined : c.namespace);
  const table = new WatchTable(inv.allNamespaces);
  const wanted = (r: Rollout) => inv.name === undefined || r.metadata?.name === inv.name;
  let started = false;
  // Before the first list is in the cache, events are that list itself: the initial table shows it whole.
  const on = (deleted: boolean) => (r: Rollout) => {
    if (started && wanted(r)) write(table.change(r, Date.now(), deleted));
  };
  watched.onAdd(on(false)).onUpdate(on(false)).onDelete(on(true));
  await watched.start();
  started = true;
  const initial = watched.list(inv.allNamespaces ? undefined : c.namespace).filter(wanted);
  write(table.start(initial, Date.now()));
  if (initial.length === 0) process.stderr.write(`No rollouts found${where}; watching.\n`);
  await signal;
  watched.stop();
  return 0;
}

async function status(c: Connection, inv: Invocation, name: string): Promise<number> {
  const rollout = await readRollout(c, name);
  if (!inv.watch) {
    process.stdout.write(`${statusText(rollout, await rolloutEvents(c, rollout), Date.now())}\n`);
    return 0;
  }
  const signal = untilSignal();
  const rollouts = informer<Rollout>(c, ROLLOUT_REF, c.namespace);
  const events = informer<CoreV1Event>(c, { apiVersion: 'v1', kind: 'Event', plural: 'events' }, c.namespace);
  // On a terminal the summary is redrawn in place; into a file or pipe each version follows the last.
  const clear = process.stdout.isTTY ? '\x1b[H\x1b[2J' : '';
  let shown = '';
  let ready = false;
  const render = () => {
    // Until both caches hold their first list, a redraw would show a Rollout without its Events.
    if (!ready) return;
    const current = rollouts.get(name, c.namespace);
    const own = events.list(c.namespace).filter((e) => e.involvedObject?.uid === current?.metadata?.uid);
    // Drawn at a fixed clock, the text changes only when what it shows does (not when an age ticks, nor
    // when a write changes nothing shown): that decides a redraw.
    const text = (now: number) =>
      current
        ? statusText(current, own, now)
        : `rollout ${c.namespace}/${name} deleted; watching for it to come back`;
    if (text(0) === shown) return;
    shown = text(0);
    process.stdout.write(`${clear}${text(Date.now())}\n\n`);
  };
  let scheduled = false;
  // A status write and its Event often arrive together: one redraw for both.
  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      render();
    });
  };
  for (const i of [rollouts, events] as const) i.onAdd(schedule).onUpdate(schedule).onDelete(schedule);
  await Promise.all([rollouts.start(), events.start()]);
  ready = true;
  render();
  await signal;
  rollouts.stop();
  events.stop();
  return 0;
}

async function act(c: Connection, action: ActionName, name: string): Promise<number> {
  const plan = planAction(action, await readRollout(c, name));
  if (plan.kind === 'refuse') throw new Error(plan.message);
  if (plan.kind === 'patch') {
    try {
      await c.rollouts.patchNamespacedCustomObject(
        {
          ...ROLLOUTS,
          namespace: c.namespace,
          name,
          body: { metadata: { annotations: plan.annotations } },
          // managedFields then say who set the annotation, as kubectl annotate's own do.
          fieldManager: 'kubectl-perch',
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    } catch (err) {
      throw describeApiError(err, `annotating rollout ${c.namespace}/${name}`);
    }
  }
  process.stdout.write(`${plan.message}\n`);
  return 0;
}

runMain('kubectl-perch', async () => {
  const inv = parseInvocation(process.argv.slice(2));
  if (inv === 'help' || inv === 'none') {
    process.stdout.write(`${USAGE}\n`);
    return inv === 'help' ? 0 : 2;
  }
  const c = connect(inv);
  switch (inv.command) {
    case 'get':
      return get(c, inv);
    case 'status':
      return status(c, inv, inv.name!);
    default:
      return act(c, inv.command, inv.name!);
  }
});
