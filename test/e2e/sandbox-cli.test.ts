// `perch sandbox` driven as a person would: start it, use it with kubectl, stop it (SIGTERM or SIGKILL),
// and check that no process and no data outlive it. Also its usage errors.
import { KubeConfig } from '@kubernetes/client-node';
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  GATEWAY_API_CRDS_ENV,
  pinnedGatewayApiVersion,
  prepareGatewayApiCrds,
} from '../../src/sandbox/control-plane/index.js';
import { kubectlOk } from '../support/kubectl.js';
import { childPids, cmdline, isDead, programOfArgv as programOf } from '../support/proc.js';

const PERCH = fileURLToPath(new URL('../../src/cli/perch.js', import.meta.url));
const CHILD_BINARIES = ['etcd', 'kube-apiserver', 'kube-controller-manager'];

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

interface Launcher {
  proc: ChildProcess;
  pid: number;
  /** Resolves with the URL of the `ready <url>` line; rejects if the launcher exits first. */
  ready: Promise<string>;
  exited: Promise<Exit>;
  stdout(): string;
  stderr(): string;
}

/** Every launcher a test started, so `afterEach` can stop what a failed test left running. */
const launchers: Launcher[] = [];
const tempDirs: string[] = [];

function runPerch(args: string[], env: NodeJS.ProcessEnv = process.env): Launcher {
  const proc = spawn(process.execPath, [PERCH, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  if (proc.pid === undefined) throw new Error('could not start perch');
  let out = '';
  let err = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<Exit>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const ready = new Promise<string>((resolve, reject) => {
    const onData = () => {
      const m = /^ready (\S+)$/m.exec(out);
      if (m?.[1]) {
        proc.stdout?.off('data', onData);
        resolve(m[1]);
      }
    };
    proc.stdout?.on('data', onData);
    void exited.then(({ code, signal }) =>
      reject(new Error(`perch sandbox exited (${code ?? signal}) before it was ready; stderr:\n${err}`)),
    );
  });
  // A test that never awaits `ready` (usage errors) must not see an unhandled rejection.
  ready.catch(() => undefined);
  const launcher: Launcher = { proc, pid: proc.pid, ready, exited, stdout: () => out, stderr: () => err };
  launchers.push(launcher);
  return launcher;
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'perch-e2e-sandbox-'));
  tempDirs.push(dir);
  return dir;
}

/**
 * Polls until `done()` holds. Only for events that have no callback to await (a process killed by
 * the kernel, a line an external process appends to a file); always bounded by `timeoutMs`.
 */
async function pollUntil(done: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Sandbox {
  launcher: Launcher;
  url: string;
  kubeconfig: string;
  auditLog: string;
  /** PID → program name of every child of the launcher. */
  children: Map<number, string>;
  dataDir: string;
}

async function startSandbox(extraArgs: string[] = []): Promise<Sandbox> {
  const dir = tempDir();
  const kubeconfig = join(dir, 'kc.yaml');
  const auditLog = join(dir, 'audit.log');
  const launcher = runPerch(['sandbox', '--kubeconfig', kubeconfig, '--audit-log', auditLog, ...extraArgs]);
  const url = await launcher.ready;
  expect(url).to.match(/^https:\/\/127\.0\.0\.1:\d+$/);

  // kube-controller-manager is spawned just before the launcher says it is ready; while setpriv execs
  // it, /proc/PID/cmdline reads empty for a moment, so wait (bounded) until every child names its program.
  const children = new Map<number, string>();
  const readChildren = (): boolean => {
    children.clear();
    for (const pid of childPids(launcher.pid)) children.set(pid, programOf(cmdline(pid)));
    return children.size >= CHILD_BINARIES.length && [...children.values()].every(Boolean);
  };
  // On a timeout the assertion below shows what was there.
  await pollUntil(readChildren, 5_000, () => 'children').catch(() => undefined);
  expect([...children.values()].sort(), `children of the launcher (PID ${launcher.pid})`).to.deep.equal(
    CHILD_BINARIES,
  );

  const etcdPid = [...children].find(([, program]) => program === 'etcd')?.[0] ?? -1;
  const dataDirFlag = cmdline(etcdPid).find((a) => a.startsWith('--data-dir='));
  expect(dataDirFlag, `etcd's command line: ${cmdline(etcdPid).join(' ')}`).to.be.a('string');
  const etcdDir = (dataDirFlag ?? '').slice('--data-dir='.length);
  expect(basename(etcdDir)).to.equal('etcd');
  const dataDir = join(etcdDir, '..');
  expect(basename(dataDir)).to.match(/^perch-sandbox-/);
  expect(existsSync(dataDir), `data dir ${dataDir}`).to.equal(true);
  return { launcher, url, kubeconfig, auditLog, children, dataDir };
}

function alive(pids: Iterable<number>): number[] {
  return [...pids].filter((pid) => !isDead(pid));
}

/** Stops a launcher a failed test left behind, then any child of it that survived, by PID. */
async function stopLeftovers(launcher: Launcher): Promise<void> {
  const children = childPids(launcher.pid);
  if (launcher.proc.exitCode === null && launcher.proc.signalCode === null) {
    launcher.proc.kill('SIGTERM');
    const timer = setTimeout(() => launcher.proc.kill('SIGKILL'), 15_000);
    await launcher.exited;
    clearTimeout(timer);
  }
  for (const pid of alive(children)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

interface AuditEvent {
  verb?: string;
  userAgent?: string;
  user?: { username?: string; groups?: string[] };
  objectRef?: { resource?: string; namespace?: string };
  responseStatus?: { code?: number };
}

function auditEvents(file: string): AuditEvent[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as AuditEvent);
}

describe('perch sandbox (CLI)', function () {
  this.timeout(120_000);

  afterEach(async function () {
    this.timeout(60_000);
    for (const launcher of launchers.splice(0)) await stopLeftovers(launcher);
    for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('serves kubectl, writes the audit log, and on SIGTERM stops every child and removes its data', async () => {
    const sb = await startSandbox();

    const kc = new KubeConfig();
    kc.loadFromFile(sb.kubeconfig);
    expect(kc.getCurrentCluster()?.server).to.equal(sb.url);
    const user = kc.getCurrentUser()?.name;

    const out = await kubectlOk(sb.kubeconfig, ['get', 'namespaces', '-o', 'name']);
    expect(out.split('\n')).to.include.members(['namespace/default', 'namespace/kube-system']);

    // crds/ and the official Gateway API CRDs of the pinned release are installed.
    const resources = await kubectlOk(sb.kubeconfig, ['api-resources', '-o', 'name']);
    expect(resources.split('\n')).to.include.members([
      'rollouts.perch.dev',
      'trafficsplits.split.smi-spec.io',
      'httproutes.gateway.networking.k8s.io',
    ]);
    const bundle = await kubectlOk(sb.kubeconfig, [
      'get',
      'crd',
      'httproutes.gateway.networking.k8s.io',
      '-o',
      'jsonpath={.metadata.annotations.gateway\\.networking\\.k8s\\.io/bundle-version}',
    ]);
    expect(bundle.trim()).to.equal(pinnedGatewayApiVersion());

    // The API server appends the event once the response is complete: it may land just after kubectl exits.
    const isKubectlList = (e: AuditEvent) =>
      e.verb === 'list' && e.objectRef?.resource === 'namespaces' && !!e.userAgent?.startsWith('kubectl/');
    await pollUntil(
      () => auditEvents(sb.auditLog).some(isKubectlList),
      10_000,
      () => `kubectl's "list namespaces" in ${sb.auditLog}`,
    );
    const event = auditEvents(sb.auditLog).find(isKubectlList);
    expect(event?.user?.username).to.be.a('string').and.to.equal(user);
    expect(event?.userAgent).to.match(/^kubectl\/v\d+\.\d+/);
    expect(event?.responseStatus?.code).to.equal(200);

    sb.launcher.proc.kill('SIGTERM');
    const exit = await sb.launcher.exited;
    expect(exit, `launcher stderr:\n${sb.launcher.stderr()}`).to.deep.equal({ code: 0, signal: null });
    expect(alive(sb.children.keys()), 'children still alive after the launcher exited').to.deep.equal([]);
    expect(existsSync(sb.dataDir), `data dir ${sb.dataDir} after stop`).to.equal(false);
  });

  // The next start is the --faults one: a sandbox start is the dearest step here, and one serves both.
  it('on SIGKILL the kernel ends every child, and the next start sweeps the stale data dir; with --faults it points the kubeconfig at the fault proxy, and kubectl works through it', async () => {
    const killed = await startSandbox();
    killed.launcher.proc.kill('SIGKILL');
    expect(await killed.launcher.exited).to.deep.equal({ code: null, signal: 'SIGKILL' });
    await pollUntil(
      () => alive(killed.children.keys()).length === 0,
      10_000,
      () => `children ${alive(killed.children.keys()).join(', ')} to die`,
    );
    // Nothing could clean up after a SIGKILL: the data dir is left for the next start.
    expect(existsSync(killed.dataDir), `stale data dir ${killed.dataDir}`).to.equal(true);

    const next = await startSandbox(['--faults', 'seed=3,latency=5ms,watch-cut=30s']);
    expect(next.dataDir).not.to.equal(killed.dataDir);
    expect(existsSync(killed.dataDir), `stale data dir ${killed.dataDir} after the next start`).to.equal(
      false,
    );

    const apiServerPort = Number(
      cmdline([...next.children].find(([, p]) => p === 'kube-apiserver')![0])
        .find((a) => a.startsWith('--secure-port='))!
        .split('=')[1],
    );
    // The kubeconfig's server is the proxy, not kube-apiserver's own port.
    expect(Number(new URL(next.url).port)).to.not.equal(apiServerPort);
    const out = await kubectlOk(next.kubeconfig, ['get', 'namespaces', '-o', 'name']);
    expect(out.split('\n')).to.include('namespace/default');
    const created = await kubectlOk(next.kubeconfig, ['create', 'namespace', 'through-proxy']);
    expect(created).to.contain('namespace/through-proxy created');

    next.launcher.proc.kill('SIGTERM');
    expect(await next.launcher.exited).to.deep.equal({ code: 0, signal: null });
    expect(alive(next.children.keys())).to.deep.equal([]);
    expect(existsSync(next.dataDir)).to.equal(false);
  });

  describe('perch sandbox prepare', () => {
    it('makes sure the Gateway API CRDs are cached, saying where on stderr, and prints the binaries folder', async () => {
      const launcher = runPerch(['sandbox', 'prepare']);
      const exit = await launcher.exited;
      expect(exit, `stderr: ${launcher.stderr()}`).to.deep.equal({ code: 0, signal: null });
      expect(launcher.stdout().trim().split('\n')).to.have.length(1);
      expect(existsSync(join(launcher.stdout().trim(), 'kube-apiserver'))).to.equal(true);
      expect(launcher.stderr()).to.match(
        new RegExp(`Gateway API CRDs ${pinnedGatewayApiVersion()} \\(standard channel\\) in \\S+`),
      );
    });

    it(`refuses a ${GATEWAY_API_CRDS_ENV} folder of another Gateway API release, naming both`, async () => {
      const dir = tempDir();
      const official = (await prepareGatewayApiCrds()).dir;
      const crd = readFileSync(join(official, 'gateway.networking.k8s.io_httproutes.yaml'), 'utf8');
      writeFileSync(
        join(dir, 'httproutes.yaml'),
        crd.replace(`bundle-version: ${pinnedGatewayApiVersion()}`, 'bundle-version: v1.0.0'),
      );
      const launcher = runPerch(['sandbox', 'prepare'], { ...process.env, [GATEWAY_API_CRDS_ENV]: dir });
      const exit = await launcher.exited;
      expect(exit.code).to.equal(1);
      expect(launcher.stderr())
        .to.contain(`${GATEWAY_API_CRDS_ENV}=${dir}`)
        .and.to.contain('is Gateway API v1.0.0')
        .and.to.contain(`pins ${pinnedGatewayApiVersion()}`);
    });
  });

  describe('usage errors exit 2 without starting anything', () => {
    it('with an unknown flag', async () => {
      expect(await usageError(['--bogus'])).to.include("Unknown option '--bogus'");
    });

    async function usageError(args: string[]): Promise<string> {
      const launcher = runPerch(['sandbox', ...args]);
      const exit = await launcher.exited;
      expect(exit, `stderr: ${launcher.stderr()}`).to.deep.equal({ code: 2, signal: null });
      expect(launcher.stdout()).not.to.match(/^ready /m);
      return launcher.stderr();
    }

    it('without --kubeconfig', async () => {
      expect(await usageError([])).to.include('--kubeconfig');
    });

    it('with an error fraction above 1 in --faults', async () => {
      const kubeconfig = join(tempDir(), 'kc.yaml');
      const stderr = await usageError(['--kubeconfig', kubeconfig, '--faults', '500=2']);
      expect(stderr).to.include('500=2').and.to.include('fraction');
      expect(existsSync(kubeconfig)).to.equal(false);
    });

    it("with a --kubeconfig that is a person's own kubeconfig, which it leaves as it was", async () => {
      const kubeconfig = join(tempDir(), 'config');
      const own = 'apiVersion: v1\nkind: Config\ncurrent-context: prod\n';
      writeFileSync(kubeconfig, own);
      const stderr = await usageError(['--kubeconfig', kubeconfig]);
      expect(stderr).to.include(
        `--kubeconfig ${kubeconfig}: the file exists and is not a Perch sandbox kubeconfig`,
      );
      expect(readFileSync(kubeconfig, 'utf8')).to.equal(own);
    });

    it('with a --port that is not a number', async () => {
      const kubeconfig = join(tempDir(), 'kc.yaml');
      const stderr = await usageError(['--kubeconfig', kubeconfig, '--port', 'abc']);
      expect(stderr).to.include('--port abc');
      expect(existsSync(kubeconfig)).to.equal(false);
    });
  });
});
