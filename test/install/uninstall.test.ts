// `perch uninstall` as a platform team runs it: the built CLI against the suite's real kube-apiserver,
// after `perch controller` took Rollouts mid-run, to Failed and to Succeeded, over TrafficSplits and HTTPRoutes.
import { CoordinationV1Api, type KubernetesObject } from '@kubernetes/client-node';
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ANNOTATIONS, TRAFFIC_FINALIZER, type RolloutSpec } from '../../src/api/v1alpha1.js';
import type { FaultProxy } from '../../src/sandbox/faults/proxy.js';
import { runProcess } from '../../src/sandbox/run-process.js';
import { waitFor } from '../../src/sandbox/wait.js';
import { startController, type ControllerProcess } from '../support/controller-process.js';
import { EventLog } from '../support/events.js';
import { proxyInFront } from '../support/fault-proxy.js';
import { analysis, RolloutEnv, sharedPrometheus } from '../support/rollout-env.js';
import { backendsOf, resourceOf, ROUTERS, type RouterKind } from '../support/route-under-test.js';

const PERCH = fileURLToPath(new URL('../../src/cli/perch.js', import.meta.url));

/** Holds at canary 20% on a `pause: {}` step: a run in the middle. */
const MID_RUN: Partial<RolloutSpec> = { steps: [{ setWeight: 20 }, { pause: {} }, { setWeight: 100 }] };
/** Promoted at once: no analysis. */
const PROMOTED: Partial<RolloutSpec> = { steps: [{ setWeight: 50 }, { setWeight: 100 }] };
/** Its first check reads 0 against {min: 99} from the real Prometheus: rolled back, Failed. */
const FAILING: Partial<RolloutSpec> = {
  steps: [{ setWeight: 30 }, { analysis: { iterations: 2 } }, { setWeight: 100 }],
  analysis: analysis({ metrics: [{ name: 'always-zero', query: 'vector(0)', thresholdRange: { min: 99 } }] }),
};

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The built CLI, KUBECONFIG unset: the flags are what is tested. */
function perch(args: string[]): Promise<Run> {
  const env = { ...process.env };
  delete env.KUBECONFIG;
  return runProcess(process.execPath, [PERCH, ...args], { env });
}

/** A run whose stdout lines are awaited as they come (to act while it waits). */
function perchWatched(args: string[]) {
  const env = { ...process.env };
  delete env.KUBECONFIG;
  const proc = spawn(process.execPath, [PERCH, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = new EventLog<string>();
  createInterface(proc.stdout).on('line', (l) => lines.push(l));
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<Run>((resolve) =>
    proc.once('close', (code) => resolve({ code, stdout: lines.seen.join('\n'), stderr })),
  );
  return { pid: proc.pid!, lines, done, kill: () => proc.exitCode === null && proc.kill('SIGKILL') };
}

/** Every resourceVersion of the namespace's Rollouts and routing objects: what a refused or dry run must not move. */
async function versions(env: RolloutEnv, names: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const n of names) {
    out.push(`rollout ${n} ${(await env.get(n)).metadata?.resourceVersion}`);
    out.push(`route ${n} ${(await env.route(n))?.metadata?.resourceVersion}`);
  }
  return out;
}

const ownedBy = (o: KubernetesObject | undefined, uid: string) =>
  (o?.metadata?.ownerReferences ?? []).some((r) => r.uid === uid);

async function awaitNamespaceGone(env: RolloutEnv, timeoutMs = 90_000): Promise<void> {
  await waitFor(
    () =>
      env.core
        .readNamespace({ name: env.ns })
        .then(() => undefined)
        .catch((err: { code?: number }) => (err.code === 404 ? true : undefined)),
    { what: `namespace ${env.ns} to be gone`, timeoutMs, intervalMs: 250 },
  );
}

describe('perch uninstall (e2e: the built CLI, the real API server, the controller stopped)', function () {
  this.timeout(240_000);
  const controllers: ControllerProcess[] = [];
  const envs: RolloutEnv[] = [];
  const runs: ReturnType<typeof perchWatched>[] = [];
  const proxies: FaultProxy[] = [];

  afterEach(async () => {
    for (const r of runs.splice(0)) r.kill();
    for (const c of controllers.splice(0)) await c.stop();
    for (const p of proxies.splice(0)) await p.close();
    for (const e of envs.splice(0)) e.close();
  });

  async function newEnv(prefix: string, router: RouterKind = 'smi'): Promise<RolloutEnv> {
    const env = await RolloutEnv.create(prefix, undefined, router);
    envs.push(env);
    return env;
  }

  for (const router of ROUTERS) {
    const kind = resourceOf(router).kind;
    it(`${kind}: refused while the controller's Lease is renewed; a dry run writes nothing; with --wait it takes over once the controller stops, leaves each route at its live version, released, and the namespace can go`, async () => {
      const env = await newEnv(`uninstall-${router}`, router);
      const kubeconfig = env.cp.kubeconfig;
      const { prometheus } = await sharedPrometheus();
      // Over the Gateway API, mid and done name their route in the spec, so the controller creates it (an
      // ownerReference to release); failed takes over a person's route (perch.dev/managed-by: nothing to release).
      const own = router === 'gatewayapi' ? { trafficRouting: { gatewayAPI: {} } } : {};
      const controller = await startController(kubeconfig, prometheus.url, [
        '--namespace',
        env.ns,
        '--leader-elect',
        '--leader-elect-namespace',
        env.ns,
      ]);
      controllers.push(controller);
      await env.createRollout('mid', { ...MID_RUN, ...own });
      await env.createRollout('done', { ...PROMOTED, ...own });
      await env.createRollout('failed', FAILING);
      await env.phase('mid', 'Paused');
      await env.phase('done', 'Succeeded');
      await env.phase('failed', 'Failed');
      const names = ['done', 'failed', 'mid'];
      const uids = new Map<string, string>();
      for (const n of names) {
        const r = await env.get(n);
        expect(r.metadata?.finalizers, n).to.include(TRAFFIC_FINALIZER);
        uids.set(n, r.metadata!.uid!);
      }
      expect(ownedBy(await env.route('mid'), uids.get('mid')!)).to.equal(true);
      expect(ownedBy(await env.route('failed'), uids.get('failed')!)).to.equal(router === 'smi');
      const flags = ['--kubeconfig', kubeconfig, '--namespace', env.ns, '--leader-elect-namespace', env.ns];
      const untouched = await versions(env, names);

      // The controller renews its Lease: refused, naming the Lease, its holder and the ways on.
      const refused = await perch(['uninstall', ...flags]);
      expect(refused.code, refused.stderr).to.equal(1);
      expect(refused.stderr).to.contain(
        `perch: a controller is live: Lease ${env.ns}/perch-controller is held by `,
      );
      expect(refused.stderr)
        .to.contain('renewed while we watched. Nothing was changed.')
        .and.contain(`kubectl -n ${env.ns} scale deployment perch-controller --replicas=0`)
        .and.contain('--wait D')
        .and.contain('--force');

      // A dry run says what a run would do, Lease included (found among every namespace's), and writes nothing.
      const dry = await perch(['uninstall', '--dry-run', '--kubeconfig', kubeconfig, '--namespace', env.ns]);
      expect(dry.code, dry.stderr).to.equal(0);
      const route = (n: string) => `${kind} ${n}`;
      const failedLine =
        router === 'smi'
          ? `${env.ns}/failed: would release ${route('failed')} at stable 100 (web-v1), would remove the finalizer`
          : `${env.ns}/failed: would leave ${route('failed')} at stable 100 (web-v1) (handed over by annotation, no ownerReference to remove), would remove the finalizer`;
      expect(dry.stdout.split('\n')).to.include.members([
        `${env.ns}/done: would release ${route('done')} at canary 100 (web-v2), would remove the finalizer`,
        failedLine,
        `${env.ns}/mid: would release ${route('mid')} at stable 100 (web-v1), was canary 20, would remove the finalizer`,
        `dry run, nothing written: 3 Rollouts in namespace ${env.ns}: 3 would be released`,
      ]);
      expect(dry.stdout).to.match(
        new RegExp(
          `dry run: Lease ${env.ns}/perch-controller is held by \\S+, renewed \\S+ ago by its clock`,
        ),
      );
      expect(await versions(env, names)).to.deep.equal(untouched);

      // With --wait it watches the Lease; the controller stops (releasing it) and the uninstall goes on.
      const run = perchWatched(['uninstall', ...flags, '--wait', '90s']);
      runs.push(run);
      await run.lines.find((l) => l.includes('waiting up to 1m30s for its controller to stop'), 30_000);
      expect(await versions(env, names)).to.deep.equal(untouched);
      await controller.stop();
      const done = await run.done;
      expect(done.code, done.stderr).to.equal(0);
      const lines = done.stdout.split('\n');
      expect(done.stdout).to.match(
        new RegExp(
          `^Lease ${env.ns}/perch-controller taken \\(its holder \\S+ stopped\\): no controller can start leading until this ends$`,
          'm',
        ),
      );
      expect(lines.slice(-4)).to.deep.equal([
        `${env.ns}/done: released ${route('done')} at canary 100 (web-v2), finalizer removed`,
        router === 'smi'
          ? `${env.ns}/failed: released ${route('failed')} at stable 100 (web-v1), finalizer removed`
          : `${env.ns}/failed: left ${route('failed')} at stable 100 (web-v1) (handed over by annotation, no ownerReference to remove), finalizer removed`,
        `${env.ns}/mid: released ${route('mid')} at stable 100 (web-v1), was canary 20, finalizer removed`,
        `3 Rollouts in namespace ${env.ns}: 3 released`,
      ]);

      // Each route carries its live version alone, no ownerReference of its Rollout, and says who released it.
      const live = { done: 'web-v2', failed: 'web-v1', mid: 'web-v1' } as const;
      for (const n of names) {
        const r = await env.route(n);
        expect(backendsOf(router, r!, 'web-v1'), n).to.deep.equal([
          { service: live[n as keyof typeof live], weight: 100 },
        ]);
        expect(ownedBy(r, uids.get(n)!), n).to.equal(false);
        const released = r?.metadata?.annotations?.[ANNOTATIONS.releasedFrom];
        expect(released, n).to.equal(router === 'gatewayapi' && n === 'failed' ? undefined : n);
        expect((await env.get(n)).metadata?.finalizers ?? [], n).to.not.include(TRAFFIC_FINALIZER);
      }
      // The Lease is left free, as a stopping controller leaves it.
      const lease = await env.kc
        .makeApiClient(CoordinationV1Api)
        .readNamespacedLease({ namespace: env.ns, name: 'perch-controller' });
      expect(lease.spec?.holderIdentity ?? '').to.equal('');

      // A second run finds nothing to do and says so.
      const again = await perch(['uninstall', ...flags]);
      expect(again.code, again.stderr).to.equal(0);
      expect(again.stdout.split('\n')).to.include.members([
        `${env.ns}/done: nothing to do (no ${TRAFFIC_FINALIZER} finalizer)`,
        `${env.ns}/mid: nothing to do (no ${TRAFFIC_FINALIZER} finalizer)`,
        `nothing to do: no Rollout in namespace ${env.ns} carries the ${TRAFFIC_FINALIZER} finalizer (3 Rollouts looked at)`,
      ]);

      // No controller runs, and the namespace goes: its Rollouts hold no finalizer any more.
      await env.core.deleteNamespace({ name: env.ns });
      await awaitNamespaceGone(env);
    });
  }

  it('a namespace deleted after its controller is gone stays Terminating on perch.dev/traffic, until perch uninstall lets its Rollouts go', async () => {
    const env = await newEnv('uninstall-stuck');
    const kubeconfig = env.cp.kubeconfig;
    const controller = await startController(kubeconfig, 'http://127.0.0.1:9', ['--namespace', env.ns]);
    controllers.push(controller);
    await env.createRollout('web', MID_RUN);
    await env.phase('web', 'Paused');
    expect((await env.get('web')).metadata?.finalizers).to.include(TRAFFIC_FINALIZER);
    await controller.stop();

    await env.core.deleteNamespace({ name: env.ns });
    // The namespace controller has deleted what it could and reports what holds the rest: our finalizer.
    const stuck = await waitFor(
      async () => {
        const ns = await env.core.readNamespace({ name: env.ns });
        const c = ns.status?.conditions?.find((x) => x.type === 'NamespaceFinalizersRemaining');
        return c?.status === 'True' ? c.message : undefined;
      },
      { what: `namespace ${env.ns} to report its remaining finalizers`, timeoutMs: 60_000, intervalMs: 250 },
    );
    expect(stuck).to.contain(TRAFFIC_FINALIZER);
    expect((await env.get('web')).metadata?.deletionTimestamp).to.not.equal(undefined);

    const run = await perch([
      'uninstall',
      '--kubeconfig',
      kubeconfig,
      '--namespace',
      env.ns,
      '--leader-elect-namespace',
      env.ns,
    ]);
    expect(run.code, run.stderr).to.equal(0);
    expect(run.stdout).to.contain(
      `no Lease perch-controller in namespace ${env.ns}: no controller with --leader-elect has run there`,
    );
    expect(run.stdout).to.match(
      new RegExp(
        `${env.ns}/web: .*finalizer removed \\(the Rollout was being deleted: it goes now\\)\\n1 Rollout in namespace ${env.ns}: 1 released\\n$`,
      ),
    );
    await awaitNamespaceGone(env);
  });

  it('a write made between its read and its write is never overwritten unseen: the conflict is read again and decided again', async () => {
    const env = await newEnv('uninstall-conflict');
    const controller = await startController(env.cp.kubeconfig, 'http://127.0.0.1:9', [
      '--namespace',
      env.ns,
    ]);
    controllers.push(controller);
    await env.createRollout('web', MID_RUN);
    await env.phase('web', 'Paused');
    await controller.stop();
    const front = await proxyInFront(env.cp);
    proxies.push(front.proxy);
    const split = `/namespaces/${env.ns}/trafficsplits/web`;
    const rollout = `/namespaces/${env.ns}/rollouts/web`;
    const heldSplit = front.proxy.holdNext((method, path) => method === 'PATCH' && path.includes(split));
    const run = perchWatched([
      'uninstall',
      '--kubeconfig',
      front.kubeconfig,
      '--namespace',
      env.ns,
      '--leader-elect-namespace',
      env.ns,
    ]);
    runs.push(run);

    // Its weight write (stable 100) is on its way; a person sets 50/50 first. The write's precondition
    // (the resourceVersion it read) fails it, and it decides again on what the person left.
    const weights = await heldSplit;
    await env.setWeightsByHand('web', 50, 50);
    const heldRollout = front.proxy.holdNext((method, path) => method === 'PATCH' && path.includes(rollout));
    expect(await weights.release()).to.equal(409);
    // Its finalizer removal is on its way; a person annotates the Rollout first: the removal, pinned to the
    // resourceVersion it read, fails, and the next look removes it with the person's annotation kept.
    const finalizer = await heldRollout;
    await env.annotate('web', { 'team.example/owner': 'payments' });
    expect(await finalizer.release()).to.equal(422);

    const done = await run.done;
    expect(done.code, done.stderr).to.equal(0);
    expect(done.stdout).to.contain(
      `${env.ns}/web: released TrafficSplit web at stable 100 (web-v1), was canary 20, finalizer removed (after 3 looks)`,
    );
    const route = await env.route('web');
    expect(backendsOf('smi', route!, 'web-v1')).to.deep.equal([{ service: 'web-v1', weight: 100 }]);
    expect(route?.metadata?.annotations?.[ANNOTATIONS.releasedFrom]).to.equal('web');
    const after = await env.get('web');
    expect(after.metadata?.finalizers ?? []).to.not.include(TRAFFIC_FINALIZER);
    expect(after.metadata?.annotations?.['team.example/owner']).to.equal('payments');
    // The write after the refused one came after a fresh read of the split.
    const records = front.proxy.records().filter((r) => r.path.includes(split));
    const refused = weights.record.index;
    const nextRead = records.find((r) => r.index > refused && r.method === 'GET');
    const nextWrite = records.find((r) => r.index > refused && r.method === 'PATCH');
    expect(nextRead, 'a GET of the split after the 409').to.not.equal(undefined);
    expect(nextWrite, 'a PATCH of the split after the 409').to.not.equal(undefined);
    expect(nextWrite!.index).to.be.greaterThan(nextRead!.index);
  });

  it('bad input: a clear error naming the flag and the fix, exit code 2, nothing done', async () => {
    const cases: [string[], string][] = [
      [
        ['--namespace', 'Team_A'],
        `--namespace "Team_A": not a namespace name; use lower-case letters, digits and '-'`,
      ],
      [['--wait', 'soon'], '--wait soon: write a duration such as 2m or 30s (0s: do not wait)'],
      [['--leader-elect-namespace', 'a/b'], `--leader-elect-namespace "a/b": not a namespace name`],
      [['--crds', '--namespace', 'team-a'], '--crds with --namespace team-a: CRDs are cluster-wide'],
      [['--kubeconfig', '/nonexistent/kubeconfig'], '--kubeconfig /nonexistent/kubeconfig: ENOENT'],
      [['--replicas', '0'], "Unknown option '--replicas'"],
    ];
    for (const [args, message] of cases) {
      const r = await perch(['uninstall', ...args]);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).to.equal(2);
      expect(r.stderr, args.join(' ')).to.contain(`perch: ${message}`);
      expect(r.stdout, args.join(' ')).to.equal('');
    }
  });
});
