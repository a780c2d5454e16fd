// The controller image, built here by tools/image/build and run with podman against the sandbox: a
// numeric non-root user, a read-only root filesystem, deploy/'s ServiceAccount and RBAC, then charts/perch's Deployment
// (its image, arguments and ServiceAccount), each walking a Rollout to Succeeded.
import {
  CoordinationV1Api,
  type KubeConfig,
  KubernetesObjectApi,
  loadAllYaml,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VERSION } from '../../src/k8s/client-config.js';
import { freePort } from '../../src/sandbox/free-port.js';
import { repoRoot } from '../../src/sandbox/repo.js';
import { waitFor } from '../../src/sandbox/wait.js';
import { readAuditLog, sharedAuditLog } from '../support/control-plane.js';
import { chartDir, helmOk, removeHelmHome } from '../support/helm.js';
import { kubectlOk } from '../support/kubectl.js';
import { archiveConfig, buildImage, type ImageConfig } from '../support/image.js';
import { namespacesRefused, Podman, ulimitFlags, type RunningContainer } from '../support/podman.js';
import { analysis, canaryTraffic, RolloutEnv, sharedPrometheus } from '../support/rollout-env.js';
import { serviceAccountUser, writeServiceAccountKubeconfig } from '../support/service-account.js';

/**
 * deploy/serviceaccount.yaml and deploy/rbac.yaml made this test's own: namespaced objects in `ns`, the
 * ClusterRole and its binding renamed after `ns` (so tests never share a grant), subjects in `ns`.
 */
function deployIdentity(ns: string): KubernetesObject[] {
  const text = ['serviceaccount.yaml', 'rbac.yaml']
    .map((f) => readFileSync(join(repoRoot, 'deploy', f), 'utf8'))
    .join('\n---\n');
  return (loadAllYaml(text) as KubernetesObject[]).map((o) => {
    const obj = structuredClone(o) as KubernetesObject & {
      roleRef?: { kind: string; name: string };
      subjects?: { kind: string; namespace?: string }[];
    };
    if (obj.kind?.startsWith('Cluster')) obj.metadata!.name = `${obj.metadata!.name}-${ns}`;
    else obj.metadata!.namespace = ns;
    if (obj.roleRef?.kind === 'ClusterRole') obj.roleRef.name = `${obj.roleRef.name}-${ns}`;
    for (const s of obj.subjects ?? []) if (s.kind === 'ServiceAccount') s.namespace = ns;
    return obj;
  });
}

/** The container's JSON log records (the controller logs to stderr; podman's own lines are not JSON). */
function record(line: string): Record<string, unknown> | undefined {
  try {
    const r = JSON.parse(line) as unknown;
    return typeof r === 'object' && r !== null ? (r as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The container's flags as a Deployment's Pod runs it: the image's user, read-only root (no writable /tmp either), every capability dropped, no privilege escalation. */
const podFlags = (ns: string, kubeconfig: string) => [
  '--network',
  'host',
  '--read-only',
  '--read-only-tmpfs=false',
  '--cap-drop',
  'ALL',
  '--security-opt',
  'no-new-privileges',
  ...ulimitFlags(),
  '--env',
  `POD_NAMESPACE=${ns}`,
  '--volume',
  `${kubeconfig}:/etc/perch/kubeconfig:ro`,
];

/** The first log record matching, or an error with the container's last lines if it exits first. */
async function logged(
  c: RunningContainer,
  match: (r: Record<string, unknown>) => boolean,
  what: string,
): Promise<Record<string, unknown>> {
  const line = c.lines.find(
    (l) => {
      const r = record(l);
      return r !== undefined && match(r);
    },
    60_000,
    what,
  );
  const early = c.exited.then(({ code, signal }) => {
    throw new Error(
      `the container exited (${code ?? signal}) before ${what}: ${c.lines.seen.slice(-10).join('\n')}`,
    );
  });
  // The loser of the race settles later (the container stops at the end; a wait times out): not an error.
  for (const p of [line, early]) p.catch(() => undefined);
  return record(await Promise.race([line, early]))!;
}

describe('the controller image (tools/image/build) run with podman against the sandbox', function () {
  this.timeout(180_000);
  let archive: string;
  let config: ImageConfig;
  let podman: Podman | undefined;
  let image: string;
  const made: { kc: KubeConfig; objects: KubernetesObject[] }[] = [];
  const dirs: string[] = [];
  const envs: RolloutEnv[] = [];

  /** A kubeconfig as the ServiceAccount (a TokenRequest token, the sandbox's CA), readable by the image's user. */
  async function serviceAccountKubeconfig(e: RolloutEnv, sa: string): Promise<string> {
    const dir = mkdtempSync(join(tmpdir(), 'perch-image-run-'));
    dirs.push(dir);
    const kubeconfig = join(dir, 'kubeconfig');
    await writeServiceAccountKubeconfig(e.cp, e.ns, sa, kubeconfig);
    // The folder around it stays the test's alone.
    chmodSync(kubeconfig, 0o644);
    return kubeconfig;
  }

  before(async function () {
    // A cold build makes the Debian base first (debootstrap, nodejs): minutes on a slow mirror.
    this.timeout(20 * 60_000);
    // Root first: unprivileged, unshare fails for want of privilege, which is no reason to skip.
    if (process.getuid?.() !== 0)
      throw new Error('the image test builds with debootstrap and runs rootful podman: run it as root');
    const refused = await namespacesRefused();
    if (refused) {
      process.stderr.write(`  SKIPPED: the kernel refuses the namespaces a container needs (${refused})\n`);
      this.skip();
    }
    archive = await buildImage();
    config = await archiveConfig(archive);
    podman = Podman.create();
    image = await podman.load(archive);
  });

  after(async function () {
    this.timeout(60_000);
    await podman?.close();
    for (const e of envs) e.close();
    // Namespaced objects go with the test namespace; the cluster-wide grants are this test's to remove.
    for (const { kc, objects } of made)
      for (const o of objects.filter((x) => x.kind?.startsWith('Cluster')))
        await KubernetesObjectApi.makeApiClient(kc)
          .delete(o)
          .catch(() => undefined);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    removeHelmHome();
  });

  it('its config names a numeric non-root user, the controller as entrypoint, and its version', async () => {
    expect(config.User).to.match(/^\d+(:\d+)?$/);
    const [uid, gid] = config.User!.split(':').map(Number);
    expect(uid).to.be.greaterThan(0);
    if (gid !== undefined) expect(gid).to.be.greaterThan(0);
    expect(config.Entrypoint).to.deep.equal(['node', '/app/dist/src/cli/perch.js']);
    expect(config.Cmd).to.deep.equal(['controller']);
    expect(config.Labels?.['org.opencontainers.image.version']).to.equal(VERSION);
    expect(image).to.equal(`localhost/perch-controller:${VERSION}`);
    // podman reads the same config out of what it loaded.
    const [loaded] = JSON.parse(await podman!.ok(['image', 'inspect', image])) as {
      Config: { User: string };
    }[];
    expect(loaded!.Config.User).to.equal(config.User);
  });

  it('deploy/deployment.yaml names this image, runs it as its user, read-only', () => {
    const [deployment] = loadAllYaml(readFileSync(join(repoRoot, 'deploy', 'deployment.yaml'), 'utf8')) as {
      spec: {
        template: {
          spec: {
            securityContext: { runAsNonRoot: boolean; runAsUser: number; runAsGroup: number };
            containers: { image: string; securityContext: { readOnlyRootFilesystem: boolean } }[];
          };
        };
      };
    }[];
    const pod = deployment!.spec.template.spec;
    expect(pod.containers[0]!.image).to.equal(image);
    expect(`${pod.securityContext.runAsUser}:${pod.securityContext.runAsGroup}`).to.equal(config.User);
    expect(pod.securityContext.runAsNonRoot).to.equal(true);
    expect(pod.containers[0]!.securityContext.readOnlyRootFilesystem).to.equal(true);
  });

  it("runs read-only as deploy/'s ServiceAccount, its process non-root, and walks a Rollout to Succeeded", async () => {
    const e = await RolloutEnv.create('image-run');
    envs.push(e);
    const ns = e.ns;
    const objects = deployIdentity(ns);
    const api = KubernetesObjectApi.makeApiClient(e.kc);
    for (const o of objects) await api.create(o);
    made.push({ kc: e.kc, objects });

    const kubeconfig = await serviceAccountKubeconfig(e, 'perch-controller');

    await canaryTraffic(e);
    const { prometheus } = await sharedPrometheus();
    const port = await freePort();
    const name = `perch-image-run-${randomBytes(3).toString('hex')}`;
    // As deploy/deployment.yaml runs it, POD_NAMESPACE for the Lease.
    const c = podman!.start(name, podFlags(ns, kubeconfig), image, [
      'controller',
      '--kubeconfig',
      '/etc/perch/kubeconfig',
      '--namespace',
      ns,
      '--leader-elect',
      '--metrics-addr',
      `127.0.0.1:${port}`,
      '--prometheus-url',
      prometheus.url,
      '--log-format',
      'json',
    ]);
    await logged(c, (r) => r.msg === 'controller started', 'controller started');

    const [inspected] = JSON.parse(await podman!.ok(['container', 'inspect', name])) as {
      HostConfig: { ReadonlyRootfs: boolean };
      State: { Pid: number; Running: boolean };
    }[];
    expect(inspected!.HostConfig.ReadonlyRootfs).to.equal(true);
    expect(inspected!.State.Running).to.equal(true);
    // The controller's own process, seen from the host: the image's user, not root.
    const uids = /^Uid:\s+(.*)$/m.exec(readFileSync(`/proc/${inspected!.State.Pid}/status`, 'utf8'))![1]!;
    const imageUid = config.User!.split(':')[0]!;
    expect(uids.split(/\s+/)).to.deep.equal([imageUid, imageUid, imageUid, imageUid]);

    // Inside the running container nothing can be written: not as its user (not even /tmp), not as root.
    const probe = `const fs = require('node:fs'); const out = {};
      for (const p of ['/perch-probe', '/tmp/perch-probe', '/app/perch-probe'])
        try { fs.writeFileSync(p, 'x'); out[p] = 'written'; } catch (err) { out[p] = err.code; }
      console.log(JSON.stringify(out));`;
    const refusals = { '/perch-probe': 'EROFS', '/tmp/perch-probe': 'EROFS', '/app/perch-probe': 'EROFS' };
    expect(JSON.parse(await podman!.ok(['exec', name, 'node', '-e', probe]))).to.deep.equal(refusals);
    expect(JSON.parse(await podman!.ok(['exec', '--user', '0', name, 'node', '-e', probe]))).to.deep.equal(
      refusals,
    );

    await e.createRollout('web', {
      steps: [
        { setWeight: 20 },
        { analysis: { iterations: 2 } },
        { setWeight: 60 },
        { pause: { duration: '2s' } },
      ],
      analysis: analysis(),
    });
    const done = await e.phase('web', 'Succeeded', 90_000);
    expect(done.status?.canaryWeight).to.equal(100);
    expect(e.weights('web')).to.deep.equal([0, 20, 60, 100]);
    expect(done.metadata?.finalizers ?? []).to.include('perch.dev/traffic');

    // Its metrics endpoint, on the host's network.
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).to.equal(200);
    await waitFor(
      async () =>
        (await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()).includes(
          `perch_rollout_info{namespace="${ns}",name="web",phase="Succeeded"} 1`,
        )
          ? true
          : undefined,
      { what: 'perch_rollout_info at Succeeded on /metrics', timeoutMs: 10_000, intervalMs: 250 },
    );

    // Every request of the container reached the API server as the ServiceAccount, and none was refused.
    const sa = `system:serviceaccount:${ns}:perch-controller`;
    const requests = readAuditLog(await sharedAuditLog()).filter((a) => a.user?.username === sa);
    expect(requests.length).to.be.greaterThan(0);
    expect([...new Set(requests.map((a) => a.userAgent?.split(' ')[0]))]).to.deep.equal([
      `perch-controller/${VERSION}`,
    ]);
    expect(requests.filter((a) => a.responseStatus?.code === 403).map((a) => a.requestURI)).to.deep.equal([]);
    const lease = await e.kc
      .makeApiClient(CoordinationV1Api)
      .readNamespacedLease({ name: 'perch-controller', namespace: ns });
    expect(lease.spec?.holderIdentity).to.be.a('string').with.length.above(0);

    // Stopped by the name this test gave it: SIGTERM, a clean exit, and --rm removed it.
    await podman!.ok(['stop', '--time', '10', name]);
    expect(await c.exited).to.deep.equal({ code: 0, signal: null });
    expect((await podman!.exec(['container', 'exists', name])).code).to.equal(1);
    expect(c.lines.seen.some((l) => record(l)?.msg === 'stopping')).to.equal(true);
  });

  it("runs as charts/perch's Deployment: the chart's image, arguments and ServiceAccount walk a Rollout to Succeeded", async () => {
    const e = await RolloutEnv.create('image-chart');
    envs.push(e);
    const { prometheus } = await sharedPrometheus();
    const release = `img-${e.ns.slice(-6)}`;
    // One namespace: a Role, nothing cluster-wide to clean up. No kubelet runs here, so podman is the Pod.
    await helmOk(e.cp.kubeconfig, [
      'install',
      release,
      chartDir,
      '--namespace',
      e.ns,
      ...['rbac.scope=namespace', `controller.prometheusUrl=${prometheus.url}`].flatMap((x) => ['--set', x]),
    ]);
    const deployment = JSON.parse(
      await kubectlOk(e.cp.kubeconfig, ['-n', e.ns, 'get', 'deployment', `${release}-perch`, '-o', 'json']),
    ) as {
      spec: {
        template: {
          spec: {
            serviceAccountName: string;
            securityContext: { runAsUser: number; runAsGroup: number };
            containers: {
              image: string;
              args: string[];
              securityContext: { readOnlyRootFilesystem: boolean };
            }[];
          };
        };
      };
    };
    const pod = deployment.spec.template.spec;
    const container = pod.containers[0]!;
    expect(container.image).to.equal(image);
    expect(`${pod.securityContext.runAsUser}:${pod.securityContext.runAsGroup}`).to.equal(config.User);
    expect(container.securityContext.readOnlyRootFilesystem).to.equal(true);
    const kubeconfig = await serviceAccountKubeconfig(e, pod.serviceAccountName);
    // The rendered arguments, but for the metrics port: the host's network, so a free loopback port.
    const port = await freePort();
    const args = container.args.map((a, i, all) =>
      all[i - 1] === '--metrics-addr' ? `127.0.0.1:${port}` : a,
    );
    expect(args[0]).to.equal('controller');
    const name = `perch-image-chart-${randomBytes(3).toString('hex')}`;
    const c = podman!.start(name, podFlags(e.ns, kubeconfig), image, [
      ...args,
      '--kubeconfig',
      '/etc/perch/kubeconfig',
    ]);
    await logged(c, (r) => r.msg === 'controller started', 'controller started');

    await canaryTraffic(e);
    await e.createRollout('web', {
      steps: [{ setWeight: 20 }, { analysis: { iterations: 1 } }, { setWeight: 60 }],
      analysis: analysis(),
    });
    const done = await e.phase('web', 'Succeeded', 90_000);
    expect(done.status?.canaryWeight).to.equal(100);
    expect(e.weights('web')).to.deep.equal([0, 20, 60, 100]);

    const sa = serviceAccountUser(e.ns, pod.serviceAccountName);
    const requests = readAuditLog(await sharedAuditLog()).filter((a) => a.user?.username === sa);
    expect(requests.length).to.be.greaterThan(0);
    expect(requests.filter((a) => a.responseStatus?.code === 403).map((a) => a.requestURI)).to.deep.equal([]);
    await podman!.ok(['stop', '--time', '10', name]);
    expect(await c.exited).to.deep.equal({ code: 0, signal: null });
  });
});
