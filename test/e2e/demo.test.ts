// `perch demo --fast` with stdout a pipe (plain lines): Ctrl-C (SIGINT) mid-run stops everything and exits
// 130; and with `--router gatewayapi` (the story over a person's HTTPRoute) a person, with kubectl and the
// kubeconfig the demo wrote, pauses the rollout mid-run and resumes it; v2 is promoted, v3 rolled back, and
// with --stay the demo keeps running after its summary until Ctrl-C, then exits 0 leaving no process and no
// data folder. (The default demo, SMI, ending by itself with exit 0, on a terminal, is
// test/e2e/demo-terminal.test.ts.)
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../../src/sandbox/wait.js';
import { kubectlOk } from '../support/kubectl.js';
import { descendants, isDead, programOf } from '../support/proc.js';

const PERCH = fileURLToPath(new URL('../../src/cli/perch.js', import.meta.url));
const DIR_PREFIXES = ['perch-sandbox-', 'perch-prometheus-', 'perch-demo-'];
const EXPECTED_PROGRAMS = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'prometheus'];

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** The data folders in the temp dir whose owner file names `pid` (makeDataDir writes launcher.pid). */
function dataDirsOf(pid: number): string[] {
  return readdirSync(tmpdir())
    .filter((name) => DIR_PREFIXES.some((p) => name.startsWith(p)))
    .map((name) => join(tmpdir(), name))
    .filter((dir) => {
      try {
        return readFileSync(join(dir, 'launcher.pid'), 'utf8').trim() === String(pid);
      } catch {
        return false;
      }
    });
}

interface DemoRun {
  proc: ChildProcess;
  pid: number;
  exited: Promise<Exit>;
  stdout(): string;
  stderr(): string;
  /** PID → program of every descendant seen while it ran. */
  seen: Map<number, string>;
  /** Every data folder it owned while it ran. */
  dirs: Set<string>;
}

const runs: DemoRun[] = [];

function startDemo(args: string[]): DemoRun {
  const proc = spawn(process.execPath, [PERCH, 'demo', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  if (proc.pid === undefined) throw new Error('could not start perch demo');
  const pid = proc.pid;
  let out = '';
  let err = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const seen = new Map<number, string>();
  const dirs = new Set<string>();
  // /proc has no event to await: sample the process tree while the demo runs, to know what it started.
  const sample = () => {
    // Named again at every sample: just after fork a child still shows its parent's command line.
    for (const child of descendants(pid)) seen.set(child, programOf(child) || seen.get(child) || '');
    for (const dir of dataDirsOf(pid)) dirs.add(dir);
  };
  const sampler = setInterval(sample, 200);
  const exited = new Promise<Exit>((resolve) =>
    proc.once('exit', (code, signal) => {
      clearInterval(sampler);
      resolve({ code, signal });
    }),
  );
  const run = { proc, pid, exited, stdout: () => out, stderr: () => err, seen, dirs };
  runs.push(run);
  return run;
}

/** Bounded wait for a line the demo prints; rejects if it exits first. */
function waitForOutput(run: DemoRun, pattern: RegExp, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      run.proc.stdout?.off('data', check);
      reject(new Error(`no ${pattern} within ${timeoutMs} ms; stdout:\n${run.stdout()}`));
    }, timeoutMs);
    const check = () => {
      if (!pattern.test(run.stdout())) return;
      clearTimeout(timer);
      run.proc.stdout?.off('data', check);
      resolve();
    };
    run.proc.stdout?.on('data', check);
    void run.exited.then(() => {
      clearTimeout(timer);
      if (pattern.test(run.stdout())) resolve();
      else reject(new Error(`perch demo exited before ${pattern}; stderr:\n${run.stderr()}`));
    });
    check();
  });
}

function expectNothingLeft(run: DemoRun): void {
  const programs = new Set(run.seen.values());
  for (const p of EXPECTED_PROGRAMS) {
    expect([...programs], `programs seen under the demo (PID ${run.pid})`).to.include(p);
  }
  const alive = [...run.seen.keys()].filter((pid) => !isDead(pid));
  expect(
    alive.map((pid) => `${pid} ${run.seen.get(pid)}`),
    'descendants alive after the demo exited',
  ).to.deep.equal([]);
  expect(run.dirs.size, 'data folders seen while it ran').to.be.greaterThan(0);
  const left = [...run.dirs, ...dataDirsOf(run.pid)].filter((dir) => {
    try {
      readdirSync(dir);
      return true;
    } catch {
      return false;
    }
  });
  expect(left, 'data folders left after the demo exited').to.deep.equal([]);
}

describe('perch demo --fast (CLI)', function () {
  this.timeout(200_000);
  let home: string;
  before(() => (home = mkdtempSync(join(tmpdir(), 'perch-e2e-demo-'))));
  after(() => rmSync(home, { recursive: true, force: true }));

  afterEach(async function () {
    this.timeout(60_000);
    for (const run of runs.splice(0)) {
      const tree = descendants(run.pid);
      if (run.proc.exitCode === null && run.proc.signalCode === null) {
        run.proc.kill('SIGTERM');
        const timer = setTimeout(() => run.proc.kill('SIGKILL'), 30_000);
        await run.exited;
        clearTimeout(timer);
      }
      for (const pid of tree.filter((p) => !isDead(p))) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
    }
  });

  it('on SIGINT mid-run stops everything it started and exits 130', async () => {
    const run = startDemo(['--fast', '--kubeconfig', join(home, 'sigint.kubeconfig')]);
    await waitForOutput(run, /^\[ *[\d.]+s\] v2 bookstore-v2: phase=Progressing weight=10 /m, 120_000);
    run.proc.kill('SIGINT');
    const exit = await run.exited;
    expect(exit, `stderr:\n${run.stderr()}`).to.deep.equal({ code: 130, signal: null });
    expect(run.stderr()).to.include('SIGINT: stopping everything');
    expectNothingLeft(run);
  });

  // One demo run for two stories (a demo run is the dearest thing in the suite): a person pausing and
  // resuming with kubectl under --stay, and the story over a person's HTTPRoute with --router gatewayapi.
  it("a person pauses the rollout with kubectl mid-run and resumes it; --router gatewayapi: v2 promoted and v3 rolled back over the person's HTTPRoute, whose own rule and filters stay; --stay keeps it all up until Ctrl-C, exit 0", async () => {
    const kubeconfig = join(home, 'person.kubeconfig');
    const run = startDemo(['--fast', '--router', 'gatewayapi', '--stay', '--kubeconfig', kubeconfig]);
    await waitForOutput(run, /^\[ *[\d.]+s\] v2 bookstore-v2: phase=Progressing weight=10 /m, 120_000);
    // What the README tells a person to type, with the kubeconfig the demo printed.
    const k = (...args: string[]) => kubectlOk(kubeconfig, ['-n', 'gateway-api-mesh', ...args]);
    await k('annotate', 'rollout', 'bookstore', 'perch.dev/paused=true');
    await waitForOutput(run, /^\[ *[\d.]+s\] v2 bookstore-v2: phase=Paused\(Manual\) /m, 30_000);

    // Held: the weight stays while checks go on (two more checks made while paused).
    const read = async () => {
      const [phase, weight, checks] = (
        await k(
          'get',
          'rollout',
          'bookstore',
          '-o',
          'jsonpath={.status.phase} {.status.canaryWeight} {.status.analysis.passed}',
        )
      ).split(' ');
      return { phase, weight: Number(weight), checks: Number(checks) };
    };
    const paused = await read();
    expect(paused.phase).to.equal('Paused');
    const later = await waitFor(
      async () => {
        const now = await read();
        expect(now.phase, 'still paused').to.equal('Paused');
        expect(now.weight, 'the weight holds').to.equal(paused.weight);
        return now.checks >= paused.checks + 2 ? now : undefined;
      },
      { what: 'two checks while paused', timeoutMs: 30_000, intervalMs: 500 },
    );
    expect(later.weight).to.equal(paused.weight);

    await k('annotate', 'rollout', 'bookstore', 'perch.dev/paused-');
    await waitForOutput(run, /^still running \(--stay\)/m, 150_000);
    const out = run.stdout();
    // stdout is a pipe: plain lines, no terminal escapes.
    expect(out).not.to.include('\x1b[');
    expect(out).to.include(`watch:  KUBECONFIG=${kubeconfig} kubectl -n gateway-api-mesh get prl -w\n`);
    expect(out).to.include(
      `route:  KUBECONFIG=${kubeconfig} kubectl -n gateway-api-mesh get httproute bookstore -o yaml\n`,
    );
    expect(out).to.match(/kubectl -n gateway-api-mesh annotate rollout bookstore perch\.dev\/paused=true$/m);
    expect(run.stderr()).to.include('starting the mesh (routes the root Service bookstore by its HTTPRoute)');
    // The HTTPRoute's weights as the mesh routes by them, at each step: only the rule `split` moves, the
    // person's rule `pinned` reads as applied throughout.
    const route = (split: string) =>
      new RegExp(
        `^\\[ *[\\d.]+s\\] v\\d route: HTTPRoute bookstore pinned: bookstore-v1=1 \\| split: ${split}$`,
        'm',
      );
    for (const split of [
      'bookstore-v1=100',
      'bookstore-v1=90 bookstore-v2=10',
      'bookstore-v1=50 bookstore-v2=50',
      'bookstore-v1=0 bookstore-v2=100',
      'bookstore-v1=0 bookstore-v2=90 bookstore-v3=10',
      'bookstore-v1=0 bookstore-v2=100 bookstore-v3=0',
    ]) {
      expect(out).to.match(route(split));
    }
    expect(out).not.to.match(/ route: .*pinned: (?!bookstore-v1=1 \|)/);
    expect(out).to.match(/^\[ *[\d.]+s\] v2 bookstore-v2: phase=Succeeded weight=100 /m);
    expect(out).to.match(/^\[ *[\d.]+s\] v3 bookstore-v3: phase=Failed weight=0 /m);
    // The summary table.
    expect(out).to.match(/^run +canary +expected +outcome +duration$/m);
    expect(out).to.match(/^v2 +bookstore-v2 +Succeeded +Succeeded +[\d.]+s +ok$/m);
    expect(out).to.match(/^v3 +bookstore-v3 +Failed +Failed +[\d.]+s +ok$/m);
    // The route read back after both runs, against the route as applied.
    expect(out).to.match(
      /^httproute bookstore: Perch changed only weights \(and added the canaries' backendRefs\); your matches, filters, other rules and parentRefs are as you applied them$/m,
    );
    // bookbuyer's load starts once the mesh routes the root Service: no request went unrouted (503).
    const load = /^load: (\d+) sent \(([^)]*)\)/m.exec(out);
    expect(load, 'the load line').not.to.equal(null);
    expect(Number(load![1])).to.be.greaterThan(100);
    expect(load![2]).to.match(/^200:\d+ 500:\d+$/);
    // v3's failure is judged by a real success rate below the 99% threshold.
    const v3Rate = /^\[ *[\d.]+s\] v3 bookstore-v3: phase=Failed .*success=([\d.]+)%$/m.exec(out)?.[1];
    expect(Number(v3Rate)).to.be.lessThan(99);
    // Still up after the summary: kubectl reaches the control plane and sees v3 rolled back.
    expect(
      await k('get', 'rollout', 'bookstore', '-o', 'jsonpath={.status.phase} {.spec.canaryService}'),
    ).to.equal('Failed bookstore-v3');
    expect(existsSync(kubeconfig)).to.equal(true);

    run.proc.kill('SIGINT');
    const exit = await run.exited;
    expect(exit, `stderr:\n${run.stderr()}`).to.deep.equal({ code: 0, signal: null });
    expect(run.stdout()).to.match(/^demo passed: v2 promoted, v3 rolled back$/m);
    expect(existsSync(kubeconfig), 'the kubeconfig is removed on exit').to.equal(false);
    expectNothingLeft(run);
  });
});
