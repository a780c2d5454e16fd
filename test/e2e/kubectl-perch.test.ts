// `kubectl perch` as a person runs it: the built plugin as a child process against the suite's real
// kube-apiserver, with `perch controller` running the Rollouts, and through kubectl's plugin mechanism.
import { KubeConfig } from '@kubernetes/client-node';
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Rollout, RolloutSpec } from '../../src/api/v1alpha1.js';
import { runProcess } from '../../src/sandbox/run-process.js';
import { startController, type ControllerProcess } from '../support/controller-process.js';
import { EventLog } from '../support/events.js';
import { kubectlCommand } from '../support/kubectl.js';
import { ROLLOUT, RolloutEnv } from '../support/rollout-env.js';

const PLUGIN = fileURLToPath(new URL('../../src/cli/kubectl-perch.js', import.meta.url));

/** Stays Progressing at canary 10%: its analysis step waits for a check an hour away (no Prometheus). */
const HOLD: Partial<RolloutSpec> = {
  steps: [{ setWeight: 10 }, { analysis: { iterations: 1 } }, { setWeight: 100 }],
  analysis: {
    interval: '1h',
    failureLimit: 0,
    inconclusiveLimit: 2,
    errorLimit: 4,
    prometheus: { address: 'http://127.0.0.1:9' },
    metrics: [{ name: 'success-rate', query: 'vector(100)', thresholdRange: { min: 99 } }],
  },
};
const WAITING = 'waiting for 1 consecutive passing check (0 so far)';
/** Holds at canary 20% on a `pause: {}` step until perch.dev/resume. */
const GATE: Partial<RolloutSpec> = { steps: [{ setWeight: 20 }, { pause: {} }, { setWeight: 100 }] };

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment of a run: KUBECONFIG only when a test sets it, so flags are what it tests. */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  if (!('KUBECONFIG' in extra)) delete env.KUBECONFIG;
  return env;
}

const run = (command: string, args: string[], env: NodeJS.ProcessEnv): Promise<Run> =>
  runProcess(command, args, { env });

const perch = (args: string[], env: Record<string, string> = {}) =>
  run(process.execPath, [PLUGIN, ...args], childEnv(env));

/** A run that must succeed: its stdout. */
async function perchOk(args: string[]): Promise<string> {
  const r = await perch(args);
  expect(r.code, `kubectl perch ${args.join(' ')}: ${r.stderr}`).to.equal(0);
  return r.stdout;
}

/** A table's cells: columns are three or more spaces apart, words within a cell one. */
const cells = (line: string) => line.split(/ {3,}/);
const rowOf = (table: string, first: string) =>
  table
    .split('\n')
    .map(cells)
    .find((c) => c[0] === first);

interface Watcher {
  proc: ChildProcess;
  /** Every stdout line, numbered, as it arrives. */
  lines: EventLog<{ n: number; text: string }>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const watchers: Watcher[] = [];

/** The plugin running a watch; `lines.find` awaits what it prints. */
function watch(args: string[]): Watcher {
  const proc = spawn(process.execPath, [PLUGIN, ...args], {
    env: childEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines = new EventLog<{ n: number; text: string }>();
  let n = 0;
  createInterface(proc.stdout!).on('line', (text) => lines.push({ n: n++, text }));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const w = { proc, lines, exited };
  watchers.push(w);
  return w;
}

describe('kubectl perch (e2e: the built plugin, the real API server and controller)', function () {
  this.timeout(60_000);
  let env: RolloutEnv;
  let other: RolloutEnv;
  let kubeconfig: string;
  let controller: ControllerProcess | undefined;
  let tmp: string;
  const flags = () => ['-n', env.ns, '--kubeconfig', kubeconfig];

  before(async () => {
    env = await RolloutEnv.create('kubectl-perch');
    other = await RolloutEnv.create('kubectl-perch-other', []);
    kubeconfig = env.cp.kubeconfig;
    tmp = mkdtempSync(join(tmpdir(), 'perch-e2e-kubectl-perch-'));
    // Its own namespace only: Rollouts other suites left behind are none of this controller's business.
    controller = await startController(kubeconfig, 'http://127.0.0.1:9', ['--namespace', env.ns]);
    await env.createRollout('web', HOLD);
    await other.createRollout('idle', GATE);
    await env.until('web', (r) => r.status?.message === WAITING, 'waiting at its analysis step');
  });

  afterEach(async () => {
    // A watch a failed test left running: stopped by its PID, never by name.
    for (const w of watchers.splice(0)) {
      if (w.proc.exitCode === null && w.proc.signalCode === null) w.proc.kill('SIGKILL');
      await w.exited;
    }
  });

  after(async () => {
    await controller?.stop();
    env?.close();
    other?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('get: NAME PHASE WEIGHT STEP AGE MESSAGE; a name; -A adds NAMESPACE; NotFound names namespace/name', async () => {
    const table = await perchOk(['get', ...flags()]);
    expect(cells(table.split('\n')[0]!)).to.deep.equal(['NAME', 'PHASE', 'WEIGHT', 'STEP', 'AGE', 'MESSAGE']);
    const row = rowOf(table, 'web')!;
    expect([...row.slice(0, 4), row[5]]).to.deep.equal(['web', 'Progressing', '10', '2/3', WAITING]);
    expect(row[4]).to.match(/^\d+s$/);

    const one = await perchOk(['get', 'web', ...flags()]);
    expect(one.trim().split('\n')).to.have.length(2);

    const all = await perchOk(['get', '-A', '--kubeconfig', kubeconfig]);
    expect(cells(all.split('\n')[0]!)).to.deep.equal([
      'NAMESPACE',
      'NAME',
      'PHASE',
      'WEIGHT',
      'STEP',
      'AGE',
      'MESSAGE',
    ]);
    expect(rowOf(all, env.ns)?.slice(0, 3)).to.deep.equal([env.ns, 'web', 'Progressing']);
    // No controller watches the other namespace: nothing is known of its Rollout's run.
    const idle = rowOf(all, other.ns)!;
    expect([...idle.slice(0, 5), idle[6]]).to.deep.equal([other.ns, 'idle', '-', '-', '-', '-']);

    const json = JSON.parse(await perchOk(['get', ...flags(), '-o', 'json'])) as {
      kind: string;
      items: Rollout[];
    };
    expect(json.kind).to.equal('List');
    expect(json.items.map((r) => r.metadata?.name)).to.deep.equal(['web']);
    const yaml = await perchOk(['get', 'web', ...flags(), '-o', 'yaml']);
    expect(yaml).to.match(/^apiVersion: perch\.dev\/v1alpha1\nkind: Rollout\n/);
    expect(yaml).to.include('  phase: Progressing\n');

    const missing = await perch(['get', 'nope', ...flags()]);
    expect(missing.code).to.equal(1);
    expect(missing.stderr).to.equal(`kubectl-perch: rollout ${env.ns}/nope not found\n`);
    // A watch of a missing Rollout is the same error, not a wait for it.
    expect(await perch(['get', 'nope', '-w', ...flags()])).to.deep.include({
      code: 1,
      stderr: missing.stderr,
    });
    expect((await perch(['status', 'nope', ...flags()])).stderr).to.include(
      `rollout ${env.ns}/nope not found`,
    );
  });

  it('connects like kubectl: $KUBECONFIG, the context namespace as default, --context', async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfig);
    const context = kc.getContextObject(kc.getCurrentContext())!;
    kc.loadFromOptions({
      clusters: kc.getClusters(),
      users: kc.getUsers(),
      contexts: [
        { ...context, name: 'mine', namespace: env.ns },
        { ...context, name: 'theirs', namespace: other.ns },
      ],
      currentContext: 'mine',
    });
    const file = join(tmp, 'two-contexts.kubeconfig');
    writeFileSync(file, kc.exportConfig());

    const mine = await perch(['get'], { KUBECONFIG: file });
    expect(mine.code, mine.stderr).to.equal(0);
    expect(rowOf(mine.stdout, 'web')?.[1]).to.equal('Progressing');
    const theirs = await perch(['get', '--context', 'theirs'], { KUBECONFIG: file });
    expect(rowOf(theirs.stdout, 'idle'), theirs.stdout).to.not.equal(undefined);
    const unknown = await perch(['get', '--context', 'nope'], { KUBECONFIG: file });
    expect(unknown.code).to.equal(1);
    expect(unknown.stderr).to.include(
      '--context nope: no such context in the kubeconfig (it has: mine, theirs)',
    );

    const empty = await perch(['get', '-n', 'no-such-namespace', '--kubeconfig', kubeconfig]);
    expect(empty).to.deep.equal({
      code: 0,
      stdout: '',
      stderr: 'No rollouts found in namespace no-such-namespace.\n',
    });
    const absent = join(tmp, 'absent.kubeconfig');
    const noFile = await perch(['get', '--kubeconfig', absent]);
    expect(noFile.code).to.equal(1);
    expect(noFile.stderr).to.include(`kubectl-perch: --kubeconfig ${absent}: ENOENT`);
  });

  it('status: phase, services and weights, step, analysis, metrics, conditions, Events', async () => {
    const text = await perchOk(['status', 'web', ...flags()]);
    expect(text).to.include(`Name:         web\nNamespace:    ${env.ns}\nPhase:        Progressing\n`);
    expect(text).to.include(`Message:      ${WAITING}\n`);
    expect(text).to.include('Services:     root web, stable web-v1 90%, canary web-v2 10%\n');
    expect(text).to.include('Step:         2/3 analysis: 0 of 1 consecutive passing check\n');
    expect(text).to.include(
      'Analysis:     every 1h: 0 passed, 0 failed (limit 0), 0 inconclusive (limit 2), 0 consecutive errors (limit 4)\n',
    );
    expect(text).to.match(/\n {2}success-rate {3}- {3,}not checked yet {3}>= 99 {3}-\n/);
    expect(text).to.match(/\n {2}TrafficRouted {3}True {3,}Routed {3,}\d+s {3,}stable 90%, canary 10%\n/);
    // The run started on the TrafficSplit it created and wrote step 1's weight on it: one Event tells both.
    expect(text).to.match(
      /\n {2}Normal {3}RunStarted {3}\d+s {3,}run started: web-v2 against web-v1, 3 steps, stable 100%; canary 10%, stable 90% \(step 1\/3\)\n/,
    );
  });

  it('get -w prints a row as the phase changes; pause holds the run as Paused(Manual), resume lets it go on', async () => {
    const w = watch(['get', '-w', ...flags()]);
    const first = await w.lines.find((l) => /^web\s+Progressing\s/.test(l.text), 15_000, 'the initial row');

    expect(await perchOk(['pause', 'web', ...flags()])).to.equal(
      `rollout ${env.ns}/web: perch.dev/paused=true set\n`,
    );
    const paused = await w.lines.find(
      (l) => l.n > first.n && /^web\s+Paused\(Manual\)\s+10\s+2\/3\s/.test(l.text),
      15_000,
      'a row Paused(Manual)',
    );
    expect(await perchOk(['status', 'web', ...flags()])).to.include('Phase:        Paused(Manual)\n');
    expect(await perchOk(['pause', 'web', ...flags()])).to.equal(
      `rollout ${env.ns}/web: already paused (perch.dev/paused=true)\n`,
    );

    expect(await perchOk(['resume', 'web', ...flags()])).to.equal(
      `rollout ${env.ns}/web: perch.dev/paused removed\n`,
    );
    await w.lines.find(
      (l) => l.n > paused.n && /^web\s+Progressing\s/.test(l.text),
      15_000,
      'a row Progressing again',
    );
    const annotations = (await env.get('web')).metadata?.annotations ?? {};
    expect(annotations, "resume of a person's pause sets no perch.dev/resume").to.not.have.any.keys(
      'perch.dev/paused',
      'perch.dev/resume',
    );

    w.proc.kill('SIGINT');
    expect(await w.exited).to.deep.equal({ code: 0, signal: null });
  });

  it('resume of a pause: {} step sets perch.dev/resume: on to Succeeded, as status -w shows, and its deletion', async () => {
    await env.createRollout('gate', GATE);
    await env.phase('gate', 'Paused');
    expect((await env.get('gate')).status?.pauseReason).to.equal('PauseStep');
    const w = watch(['status', 'gate', '-w', ...flags()]);
    await w.lines.find((l) => l.text === 'Phase:        Paused(PauseStep)', 15_000, 'the first summary');

    expect(await perchOk(['resume', 'gate', ...flags()])).to.equal(
      `rollout ${env.ns}/gate: perch.dev/resume=true set (continues past the pause step 2/3)\n`,
    );
    await w.lines.find((l) => l.text === 'Phase:        Succeeded', 15_000, 'a summary Succeeded');
    expect((await env.get('gate')).status?.canaryWeight).to.equal(100);
    await env.api.deleteNamespacedCustomObject({ ...ROLLOUT, namespace: env.ns, name: 'gate' });
    await w.lines.find(
      (l) => l.text === `rollout ${env.ns}/gate deleted; watching for it to come back`,
      15_000,
      'the deletion',
    );
    w.proc.kill('SIGTERM');
    expect(await w.exited).to.deep.equal({ code: 0, signal: null });
  });

  it('promote: Succeeded at canary 100; then promote has nothing to do and abort is refused', async () => {
    expect(await perchOk(['promote', 'web', ...flags()])).to.equal(
      `rollout ${env.ns}/web: perch.dev/promote=true set\n`,
    );
    const done = await env.phase('web', 'Succeeded');
    expect(done.status?.canaryWeight).to.equal(100);
    expect(await perchOk(['promote', 'web', ...flags()])).to.equal(
      `rollout ${env.ns}/web is Succeeded already: nothing to promote\n`,
    );
    const abort = await perch(['abort', 'web', ...flags()]);
    expect(abort.code).to.equal(1);
    expect(abort.stderr).to.match(/^kubectl-perch: rollout \S+\/web is Succeeded: the canary is promoted/);
    expect((await env.get('web')).metadata?.annotations?.['perch.dev/abort']).to.equal(undefined);
  });

  it('abort: Aborted with stable 100; retry is refused before and runs the Rollout again after', async () => {
    await env.createRollout('doomed', HOLD);
    const running = await env.until(
      'doomed',
      (r) => r.status?.message === WAITING,
      'waiting at its analysis step',
    );
    const early = await perch(['retry', 'doomed', ...flags()]);
    expect(early.code).to.equal(1);
    expect(early.stderr).to.equal(
      `kubectl-perch: rollout ${env.ns}/doomed is Progressing: retry starts a run again only after Failed or Aborted\n`,
    );

    expect(await perchOk(['abort', 'doomed', ...flags()])).to.equal(
      `rollout ${env.ns}/doomed: perch.dev/abort=true set\n`,
    );
    const aborted = await env.phase('doomed', 'Aborted');
    expect(aborted.status?.stableWeight).to.equal(100);
    // Aborted is set only once the controller saw its stable-100 write, so a read now must show it.
    const split = (await env.api.getNamespacedCustomObject({
      group: 'split.smi-spec.io',
      version: 'v1alpha2',
      namespace: env.ns,
      plural: 'trafficsplits',
      name: 'doomed',
    })) as { spec: { backends: { service: string; weight: number }[] } };
    expect(split.spec.backends).to.deep.equal([{ service: 'web-v1', weight: 100 }]);

    expect(await perchOk(['retry', 'doomed', ...flags()])).to.equal(
      `rollout ${env.ns}/doomed: perch.dev/retry=true set\n`,
    );
    await env.until(
      'doomed',
      (r) =>
        r.status?.phase === 'Progressing' &&
        r.status.canaryWeight === 10 &&
        r.status.runStartedAt !== running.status?.runStartedAt,
      'a new run at canary 10%',
    );
  });

  it("works as `kubectl perch` through kubectl's plugin mechanism", async () => {
    const bin = join(tmp, 'bin');
    const shim = join(bin, 'kubectl-perch');
    mkdirSync(bin);
    writeFileSync(shim, `#!/bin/sh\nexec '${process.execPath}' '${PLUGIN}' "$@"\n`);
    chmodSync(shim, 0o755);
    const r = await run(
      await kubectlCommand(),
      ['perch', 'get', '-n', env.ns, '--kubeconfig', kubeconfig],
      childEnv({ PATH: `${bin}:${process.env.PATH ?? ''}` }),
    );
    expect(r.code, r.stderr).to.equal(0);
    expect(cells(r.stdout.split('\n')[0]!)).to.deep.equal([
      'NAME',
      'PHASE',
      'WEIGHT',
      'STEP',
      'AGE',
      'MESSAGE',
    ]);
    expect(rowOf(r.stdout, 'web')?.[0]).to.equal('web');
  });

  describe('usage', () => {
    it('-h: every command and flag, exit 0; no command: the usage, exit 2', async () => {
      const help = await perch(['-h']);
      expect(help.code).to.equal(0);
      for (const word of [
        'get [NAME]',
        'status NAME',
        'pause NAME',
        'resume NAME',
        'promote NAME',
        'abort NAME',
        'retry NAME',
      ]) {
        expect(help.stdout).to.include(`  ${word}`);
      }
      for (const flag of [
        '--namespace',
        '-n,',
        '--all-namespaces',
        '-A,',
        '--watch',
        '-w,',
        '--output',
        '-o,',
        '--kubeconfig',
        '--context',
        '--help',
      ]) {
        expect(help.stdout).to.include(flag);
      }
      expect((await perch(['status', '--help'])).code).to.equal(0);
      const none = await perch([]);
      expect(none.code).to.equal(2);
      expect(none.stdout).to.equal(help.stdout);
    });

    it('names an unknown command, an unknown flag, a missing name, a flag the command does not take: exit 2', async () => {
      const cases: [string[], string][] = [
        [
          ['frobnicate'],
          'unknown command "frobnicate": use one of get, status, pause, resume, promote, abort, retry',
        ],
        [['get', '--frob'], "Unknown option '--frob'"],
        [['pause'], 'pause needs a Rollout name: kubectl perch pause NAME'],
        [['get', 'a', 'b'], 'get takes one Rollout name, got 2: a b'],
        [['get', '-A', 'web'], '--all-namespaces lists every Rollout'],
        [['promote', 'web', '-w'], '--watch goes with get and status only, not promote'],
        [['get', '-o', 'xml'], '--output xml: use json or yaml'],
        [['get', '-w', '-o', 'json'], '--output does not go with --watch'],
      ];
      const runs = await Promise.all(cases.map(([args]) => perch(args)));
      cases.forEach(([args, message], i) => {
        const r = runs[i]!;
        expect(r.code, args.join(' ')).to.equal(2);
        expect(r.stderr, args.join(' ')).to.include(`kubectl-perch: ${message}`);
        expect(r.stdout, args.join(' ')).to.equal('');
      });
    });
  });
});
