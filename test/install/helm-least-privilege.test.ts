// Least privilege, proven by use: `perch controller`, run with the installed chart's arguments and as
// the chart's ServiceAccount (a TokenRequest token), walks Rollouts through every path that needs a
// grant (create, weights, analysis, rollback, drift, promotion, deletion, leader handover); the API
// server's audit log then shows every grant of the chart's (Cluster)Role used and no request refused.
// No kubelet runs here, so the Deployment's Pods never start: the controller runs as a local process
// with the Pod's identity and arguments instead.
import type { V1PolicyRule } from '@kubernetes/client-node';
import { expect } from 'chai';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ControlPlane } from '../../src/sandbox/control-plane/index.js';
import { waitFor } from '../../src/sandbox/wait.js';
import { sharedControlPlane, testNamespace, type AuditEvent } from '../support/control-plane.js';
import { startController, type ControllerProcess } from '../support/controller-process.js';
import { chartDir, helmBinary, helmOk, removeHelmHome } from '../support/helm.js';
import { kubectl, kubectlOk } from '../support/kubectl.js';
import { sharedPrometheus } from '../support/rollout-env.js';
import { serviceAccountUser, writeServiceAccountKubeconfig } from '../support/service-account.js';

/** An audit event with the fields this test reads beyond the shared type's. */
type Audited = AuditEvent & {
  auditID: string;
  objectRef?: AuditEvent['objectRef'] & { apiGroup?: string };
  responseStatus?: { code?: number; message?: string };
};

/** One verb on one resource (or subresource) that a rule grants, where and for which names. */
interface Grant {
  group: string;
  resource: string;
  subresource?: string;
  verb: string;
  namespace?: string;
  names?: string[];
}

const describeGrant = (g: Grant) =>
  `${g.verb} ${g.group || 'core'}/${g.resource}${g.subresource ? `/${g.subresource}` : ''}` +
  `${g.names ? ` named ${g.names.join(',')}` : ''}${g.namespace ? ` in ${g.namespace}` : ' cluster-wide'}`;

/**
 * Granted for admission checks, never sent: OwnerReferencesPermissionEnforcement asks RBAC whether the
 * controller may update a Rollout's finalizers when it creates a routing object owned with
 * blockOwnerDeletion, and whether it may delete a routing object whose ownerReferences it changes (the
 * release at deletion). The last test proves each needed by taking it away.
 */
const ADMISSION_CHECKED = [
  'update perch.dev/rollouts/finalizers',
  'delete split.smi-spec.io/trafficsplits',
  'delete gateway.networking.k8s.io/httproutes',
];
const admissionChecked = (g: Grant) =>
  ADMISSION_CHECKED.includes(`${g.verb} ${g.group}/${g.resource}${g.subresource ? `/${g.subresource}` : ''}`);

function grantsOf(rules: V1PolicyRule[], namespace?: string): Grant[] {
  return rules.flatMap((rule) =>
    (rule.apiGroups ?? []).flatMap((group) =>
      (rule.resources ?? []).flatMap((r) =>
        rule.verbs.map((verb) => {
          const [resource, subresource] = r.split('/') as [string, string | undefined];
          return {
            group,
            resource,
            verb,
            ...(subresource ? { subresource } : {}),
            ...(namespace ? { namespace } : {}),
            ...(rule.resourceNames ? { names: rule.resourceNames } : {}),
          };
        }),
      ),
    ),
  );
}

function usedBy(g: Grant, e: Audited): boolean {
  const o = e.objectRef;
  return (
    e.verb === g.verb &&
    (o?.apiGroup ?? '') === g.group &&
    o?.resource === g.resource &&
    o?.subresource === g.subresource &&
    (g.namespace === undefined || o?.namespace === g.namespace) &&
    (g.names === undefined || g.names.includes(o?.name ?? ''))
  );
}

/** The audit log's complete lines written after `offset` bytes. */
function auditSince(file: string, offset: number): Audited[] {
  const size = statSync(file).size;
  const buf = Buffer.alloc(size - offset);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, buf, 0, buf.length, offset);
  } finally {
    closeSync(fd);
  }
  const events: Audited[] = [];
  for (const line of buf.toString('utf8').split('\n')) {
    if (line.trim() === '') continue;
    try {
      events.push(JSON.parse(line) as Audited);
    } catch {
      // A line the API server is still writing.
    }
  }
  return events;
}

const json = async <T>(kubeconfig: string, args: string[]) =>
  JSON.parse(await kubectlOk(kubeconfig, [...args, '-o', 'json'])) as T;

describe('charts/perch: least privilege, proven from the audit log', function () {
  this.timeout(240_000);
  let cp: ControlPlane;
  let kubeconfig: string;
  let auditLog: string;
  let prometheusUrl: string;
  let dir: string;
  const controllers: ControllerProcess[] = [];

  before(async function () {
    this.timeout(900_000);
    await helmBinary();
    cp = await sharedControlPlane();
    kubeconfig = cp.kubeconfig;
    if (!cp.auditLog) throw new Error('the shared control plane runs without an audit log');
    auditLog = cp.auditLog;
    prometheusUrl = (await sharedPrometheus()).prometheus.url;
    dir = mkdtempSync(join(tmpdir(), 'perch-helm-lp-'));
  });

  afterEach(async function () {
    const failed = this.currentTest?.state === 'failed';
    for (const c of controllers.splice(0)) {
      await c.stop();
      // What the controller said about it, for the reader of a failed run.
      if (failed)
        for (const r of c.logs.slice(-40))
          process.stderr.write(`  [controller ${c.pid}] ${JSON.stringify(r)}\n`);
    }
  });

  after(() => {
    removeHelmHome();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Installs the chart into a fresh namespace; returns where, and a kubeconfig as its ServiceAccount. */
  async function install(prefix: string, set: string[]) {
    const releaseNs = await testNamespace(cp.kubeConfig(), prefix);
    const release = `lp-${releaseNs.slice(-6)}`;
    await helmOk(kubeconfig, [
      'install',
      release,
      chartDir,
      '--namespace',
      releaseNs,
      ...[
        `controller.prometheusUrl=${prometheusUrl}`,
        // Short leases, so the handover below takes seconds (the flags' values, exercised too).
        'leaderElection.leaseDuration=4s',
        'leaderElection.renewDeadline=3s',
        'leaderElection.retryPeriod=1s',
        ...set,
      ].flatMap((s) => ['--set', s]),
    ]);
    const sa = `${release}-perch`;
    const saKubeconfig = join(dir, `${release}.kubeconfig`);
    await writeServiceAccountKubeconfig(cp, releaseNs, sa, saKubeconfig);
    const whoami = await kubectlOk(saKubeconfig, [
      'auth',
      'whoami',
      '-o',
      'jsonpath={.status.userInfo.username}',
    ]);
    expect(whoami.trim()).to.equal(serviceAccountUser(releaseNs, sa));
    return { release, releaseNs, sa, user: whoami.trim(), saKubeconfig };
  }

  /** `perch controller` with the installed Deployment's arguments, as its Pod would run it. */
  async function startAsPod(releaseNs: string, release: string, saKubeconfig: string) {
    const deployment = await json<{
      spec: { template: { spec: { containers: { args: string[] }[] } } };
    }>(kubeconfig, ['get', 'deployment', `${release}-perch`, '-n', releaseNs]);
    const args = [...deployment.spec.template.spec.containers[0]!.args];
    expect(args[0]).to.equal('controller');
    // Loopback and a free port instead of the Pod's :8080 (startController sets them); the rest as rendered.
    const podArgs: string[] = [];
    for (let i = 1; i < args.length; i++) {
      if (args[i] === '--metrics-addr' || args[i] === '--log-format') i++;
      else podArgs.push(args[i]!);
    }
    const c = await startController(saKubeconfig, prometheusUrl, podArgs, {
      env: { POD_NAMESPACE: releaseNs },
    });
    controllers.push(c);
    return c;
  }

  async function leaderOf(cs: ControllerProcess[]): Promise<ControllerProcess> {
    return Promise.any(
      cs.map((c) =>
        c.waitForLog((r) => r.msg === 'started leading', 30_000, 'started leading').then(() => c),
      ),
    );
  }

  async function phaseOf(ns: string, name: string): Promise<string> {
    return (
      await kubectlOk(kubeconfig, ['-n', ns, 'get', 'prl', name, '-o', 'jsonpath={.status.phase}'])
    ).trim();
  }

  async function untilPhase(ns: string, name: string, phase: string, timeoutMs = 60_000): Promise<void> {
    await waitFor(async () => ((await phaseOf(ns, name)) === phase ? true : undefined), {
      what: `Rollout ${ns}/${name} ${phase}`,
      timeoutMs,
      intervalMs: 250,
    });
  }

  async function apply(ns: string, objects: object[]): Promise<void> {
    await kubectlOk(
      kubeconfig,
      ['-n', ns, 'apply', '-f', '-'],
      objects.map((o) => JSON.stringify(o)).join('\n'),
    );
  }

  /**
   * In `ns`: an SMI Rollout promoted after an analysis and a manual gate, its weights changed by hand
   * twice (restored, the repeated Event counted), a Gateway API Rollout rolled back by a failing metric,
   * the leader stopped mid-run and its standby finishing, then both Rollouts deleted (released).
   */
  async function fullRun(ns: string, releaseNs: string, release: string, saKubeconfig: string) {
    for (const svc of ['web', 'web-v1', 'web-v2'])
      await kubectlOk(kubeconfig, ['-n', ns, 'create', 'service', 'clusterip', svc, '--tcp=80']);
    const base = { service: 'web', stableService: 'web-v1', canaryService: 'web-v2' };
    await apply(ns, [
      {
        apiVersion: 'perch.dev/v1alpha1',
        kind: 'MetricTemplate',
        metadata: { name: 'healthy' },
        spec: { provider: { type: 'prometheus' }, query: 'vector(100)' },
      },
      {
        apiVersion: 'perch.dev/v1alpha1',
        kind: 'Rollout',
        metadata: { name: 'smi' },
        spec: {
          ...base,
          steps: [{ setWeight: 20 }, { analysis: { iterations: 2 } }, { pause: {} }, { setWeight: 100 }],
          analysis: {
            interval: '1s',
            metrics: [{ name: 'healthy', templateRef: { name: 'healthy' }, thresholdRange: { min: 99 } }],
          },
        },
      },
      {
        apiVersion: 'perch.dev/v1alpha1',
        kind: 'Rollout',
        metadata: { name: 'gw' },
        spec: {
          ...base,
          trafficRouting: { gatewayAPI: {} },
          steps: [{ setWeight: 30 }, { analysis: { iterations: 3 } }, { setWeight: 100 }],
          analysis: {
            interval: '1s',
            failureLimit: 0,
            metrics: [{ name: 'always-failing', query: 'vector(0)', thresholdRange: { min: 99 } }],
          },
        },
      },
    ]);

    const first = [
      await startAsPod(releaseNs, release, saKubeconfig),
      await startAsPod(releaseNs, release, saKubeconfig),
    ];
    const leader = await leaderOf(first);
    await untilPhase(ns, 'gw', 'Failed');
    await untilPhase(ns, 'smi', 'Paused');

    // Someone else's weights, twice the same: restored each time, the second TrafficDrift a count bump.
    const canaryWeight = async () => {
      const ts = await json<{ spec: { backends: { service: string; weight: number }[] } }>(kubeconfig, [
        '-n',
        ns,
        'get',
        'trafficsplits.split.smi-spec.io',
        'smi',
      ]);
      return ts.spec.backends.find((b) => b.service === 'web-v2')?.weight ?? 0;
    };
    for (let i = 0; i < 2; i++) {
      await kubectlOk(kubeconfig, [
        '-n',
        ns,
        'patch',
        'trafficsplits.split.smi-spec.io',
        'smi',
        '--type=merge',
        '-p',
        JSON.stringify({
          spec: {
            backends: [
              { service: 'web-v1', weight: 60 },
              { service: 'web-v2', weight: 40 },
            ],
          },
        }),
      ]);
      await waitFor(async () => ((await canaryWeight()) === 20 ? true : undefined), {
        what: 'the drifted weights restored',
        timeoutMs: 30_000,
        intervalMs: 250,
      });
    }
    await waitFor(
      async () => {
        const events = await json<{ items: { reason: string; count: number }[] }>(kubeconfig, [
          '-n',
          ns,
          'get',
          'events',
          '--field-selector',
          'involvedObject.name=smi,reason=TrafficDrift',
        ]);
        return events.items.some((e) => e.count >= 2) ? true : undefined;
      },
      { what: 'one TrafficDrift Event counted twice', timeoutMs: 30_000, intervalMs: 250 },
    );

    // The leader goes (a rolling update's SIGTERM): the standby takes the Lease and finishes the run.
    const standby = first.find((c) => c !== leader)!;
    await leader.stop();
    await standby.waitForLog((r) => r.msg === 'started leading', 30_000, 'the standby leading');
    await kubectlOk(kubeconfig, ['-n', ns, 'annotate', 'rollout', 'smi', 'perch.dev/resume=true']);
    await untilPhase(ns, 'smi', 'Succeeded');

    // Deletion: the finalizer holds each Rollout until its routing object is released at the live version.
    await kubectlOk(kubeconfig, ['-n', ns, 'delete', 'rollout', 'smi', 'gw', '--wait=true', '--timeout=60s']);
    const split = await json<{
      metadata: { annotations?: Record<string, string>; ownerReferences?: unknown[] };
      spec: { backends: { service: string; weight: number }[] };
    }>(kubeconfig, ['-n', ns, 'get', 'trafficsplits.split.smi-spec.io', 'smi']);
    expect(split.metadata.annotations?.['perch.dev/released-from']).to.equal('smi');
    expect(split.metadata.ownerReferences ?? []).to.deep.equal([]);
    expect(split.spec.backends).to.deep.equal([{ service: 'web-v2', weight: 100 }]);
    const route = await json<{
      metadata: { annotations?: Record<string, string> };
      spec: { rules: { backendRefs: { name: string; weight: number }[] }[] };
    }>(kubeconfig, ['-n', ns, 'get', 'httproutes.gateway.networking.k8s.io', 'gw']);
    expect(route.metadata.annotations?.['perch.dev/released-from']).to.equal('gw');
    expect(route.spec.rules[0]!.backendRefs.map((b) => [b.name, b.weight])).to.deep.equal([
      ['web-v1', 100],
      ['web-v2', 0],
    ]);
    await standby.stop();
  }

  /** Every grant of the installed chart's roles, with the namespace each holds in. */
  async function installedGrants(
    release: string,
    releaseNs: string,
    scope: 'cluster' | 'namespace',
    watched: string,
  ) {
    const name = `${release}-perch`;
    const main =
      scope === 'cluster'
        ? grantsOf((await json<{ rules: V1PolicyRule[] }>(kubeconfig, ['get', 'clusterrole', name])).rules)
        : grantsOf(
            (await json<{ rules: V1PolicyRule[] }>(kubeconfig, ['get', 'role', name, '-n', watched])).rules,
            watched,
          );
    const lease = grantsOf(
      (
        await json<{ rules: V1PolicyRule[] }>(kubeconfig, [
          'get',
          'role',
          `${name}-leader-election`,
          '-n',
          releaseNs,
        ])
      ).rules,
      releaseNs,
    );
    return [...main, ...lease];
  }

  /**
   * (a) every grant used by the controller (`user`, perch-controller's user agent) at least once, but
   * the admission-checked ones; (b) no request of `user` refused; (c) nothing deleted. Returns the
   * controller's requests.
   */
  async function expectEveryGrantUsedNoneRefused(user: string, grants: Grant[], since: number) {
    const checked = grants.filter((g) => !admissionChecked(g));
    expect(grants.filter(admissionChecked).length, 'the admission-checked grants').to.equal(
      ADMISSION_CHECKED.length,
    );
    let all: Audited[] = [];
    let controller: Audited[] = [];
    const unused = () => checked.filter((g) => !controller.some((e) => usedBy(g, e))).map(describeGrant);
    // The audit log is written as requests end: a watch's end comes when the stopped controller closed it.
    await waitFor(
      async () => {
        all = auditSince(auditLog, since).filter((e) => e.user?.username === user);
        controller = all.filter((e) => e.userAgent?.startsWith('perch-controller/') === true);
        return unused().length === 0 ? true : undefined;
      },
      { what: 'every grant used', timeoutMs: 10_000, intervalMs: 250 },
    ).catch(() => undefined);
    expect(controller.length, `requests by ${user} with perch-controller's user agent`).to.be.above(0);
    expect(unused(), `grants of the chart that ${user} never used`).to.deep.equal([]);
    const refused = all
      .filter((e) => e.responseStatus?.code === 403)
      .map((e) => `${e.verb} ${e.requestURI}: ${e.responseStatus?.message ?? ''}`);
    expect(refused, `requests of ${user} the API server refused`).to.deep.equal([]);
    const deletes = all.filter((e) => e.verb === 'delete').map((e) => e.requestURI);
    expect(deletes, `deletes sent by ${user}`).to.deep.equal([]);
    return controller;
  }

  it('rbac.scope=cluster: a full run as the chart ServiceAccount uses every ClusterRole and Lease grant, and nothing is refused', async () => {
    const since = statSync(auditLog).size;
    const { release, releaseNs, user, saKubeconfig } = await install('helm-lp-cluster', []);
    const ns = await testNamespace(cp.kubeConfig(), 'helm-lp-cluster-app');
    await fullRun(ns, releaseNs, release, saKubeconfig);
    const grants = await installedGrants(release, releaseNs, 'cluster', ns);
    await expectEveryGrantUsedNoneRefused(user, grants, since);
  });

  it('rbac.scope=namespace: a Role in the watched namespace alone, nothing cluster-wide but the CRDs, runs the same', async () => {
    const since = statSync(auditLog).size;
    const watched = await testNamespace(cp.kubeConfig(), 'helm-lp-watched');
    const elsewhere = await testNamespace(cp.kubeConfig(), 'helm-lp-elsewhere');
    const { release, releaseNs, user, saKubeconfig } = await install('helm-lp-ns', [
      'rbac.scope=namespace',
      `controller.namespace=${watched}`,
    ]);
    const manifest = await helmOk(kubeconfig, ['get', 'manifest', release, '-n', releaseNs]);
    expect(manifest).to.not.match(/^kind: Cluster/m);
    for (const [where, answer] of [
      [['--all-namespaces'], 'no'],
      [['-n', elsewhere], 'no'],
      [['-n', watched], 'yes'],
    ] as const) {
      const r = await kubectl(kubeconfig, [
        'auth',
        'can-i',
        'list',
        'rollouts.perch.dev',
        `--as=${user}`,
        ...where,
      ]);
      expect(r.stdout.trim(), `can ${user} list rollouts ${where.join(' ')}`).to.equal(answer);
    }
    // A Rollout outside the watched namespace: never touched (no finalizer, no status).
    await kubectlOk(
      kubeconfig,
      ['-n', elsewhere, 'apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'perch.dev/v1alpha1',
        kind: 'Rollout',
        metadata: { name: 'untouched' },
        spec: {
          service: 'web',
          stableService: 'web-v1',
          canaryService: 'web-v2',
          steps: [{ setWeight: 100 }],
        },
      }),
    );

    await fullRun(watched, releaseNs, release, saKubeconfig);
    const grants = await installedGrants(release, releaseNs, 'namespace', watched);
    const mine = await expectEveryGrantUsedNoneRefused(user, grants, since);
    const outside = mine
      .filter((e) => e.objectRef && ![watched, releaseNs].includes(e.objectRef.namespace ?? ''))
      .map((e) => `${e.verb} ${e.requestURI}`);
    expect(outside, 'requests outside the watched and the release namespace').to.deep.equal([]);
    const untouched = await json<{ metadata: { finalizers?: string[] }; status?: object }>(kubeconfig, [
      '-n',
      elsewhere,
      'get',
      'prl',
      'untouched',
    ]);
    expect(untouched.metadata.finalizers ?? []).to.deep.equal([]);
    expect(untouched.status ?? {}).to.deep.equal({});
  });

  it('needs each admission-checked grant: without it the API server refuses the request it guards, with it the run goes on', async () => {
    const since = statSync(auditLog).size;
    const { release, releaseNs, user, saKubeconfig } = await install('helm-lp-admission', ['replicaCount=1']);
    const ns = await testNamespace(cp.kubeConfig(), 'helm-lp-admission-app');
    const role = `${release}-perch`;
    /** Takes the matching rules out of the installed ClusterRole. */
    const withoutRules = async (what: string, match: (r: V1PolicyRule) => boolean) => {
      const rules = (await json<{ rules: V1PolicyRule[] }>(kubeconfig, ['get', 'clusterrole', role])).rules;
      const at = rules.flatMap((r, i) => (match(r) ? [i] : [])).reverse();
      expect(at, what).to.not.deep.equal([]);
      const patch = at.map((i) => ({ op: 'remove', path: `/rules/${i}` }));
      await kubectlOk(kubeconfig, ['patch', 'clusterrole', role, '--type=json', '-p', JSON.stringify(patch)]);
    };
    // `helm upgrade` puts the chart's ClusterRole back; a refused write then waits for its Rollout's spec
    // to change (src/controller/refusals.ts), as after a person's fix.
    let edits = 0;
    const restore = async (rollouts: string[]) => {
      await helmOk(kubeconfig, ['upgrade', release, chartDir, '--namespace', releaseNs, '--reuse-values']);
      const rules = (await json<{ rules: V1PolicyRule[] }>(kubeconfig, ['get', 'clusterrole', role])).rules;
      expect(grantsOf(rules).filter(admissionChecked).length).to.equal(ADMISSION_CHECKED.length);
      for (const name of rollouts)
        await kubectlOk(kubeconfig, [
          '-n',
          ns,
          'patch',
          'rollout',
          name,
          '--type=merge',
          '-p',
          JSON.stringify({ spec: { progressDeadlineSeconds: 600 + ++edits } }),
        ]);
    };
    const refused = (verb: string, resource: string) =>
      waitFor(
        async () =>
          auditSince(auditLog, since).find(
            (e) =>
              e.user?.username === user &&
              e.verb === verb &&
              e.objectRef?.resource === resource &&
              e.responseStatus?.code === 403,
          ),
        { what: `${verb} ${resource} refused`, timeoutMs: 30_000, intervalMs: 250 },
      );

    for (const svc of ['web', 'web-v1', 'web-v2'])
      await kubectlOk(kubeconfig, ['-n', ns, 'create', 'service', 'clusterip', svc, '--tcp=80']);
    await startAsPod(releaseNs, release, saKubeconfig);
    const rollouts = { smi: {}, gw: { gatewayAPI: {} } };

    // Without rollouts/finalizers update: no routing object can be created owned by its Rollout.
    await withoutRules('the finalizers rule', (r) => r.resources?.includes('rollouts/finalizers') === true);
    await apply(
      ns,
      Object.entries(rollouts).map(([name, trafficRouting]) => ({
        apiVersion: 'perch.dev/v1alpha1',
        kind: 'Rollout',
        metadata: { name },
        spec: {
          service: 'web',
          stableService: 'web-v1',
          canaryService: 'web-v2',
          trafficRouting,
          steps: [{ setWeight: 50 }, { setWeight: 100 }],
        },
      })),
    );
    for (const resource of ['trafficsplits', 'httproutes'])
      expect((await refused('create', resource)).responseStatus?.message).to.contain('blockOwnerDeletion');
    expect(
      (await kubectl(kubeconfig, ['-n', ns, 'get', 'trafficsplits.split.smi-spec.io', 'smi'])).code,
    ).to.equal(1);
    await restore(Object.keys(rollouts));
    for (const name of Object.keys(rollouts)) await untilPhase(ns, name, 'Succeeded');

    // Without delete on the routing objects: a deleted Rollout cannot release its object, and stays.
    await withoutRules('the delete rules', (r) => r.verbs.length === 1 && r.verbs[0] === 'delete');
    await kubectlOk(kubeconfig, ['-n', ns, 'delete', 'rollout', ...Object.keys(rollouts), '--wait=false']);
    for (const resource of ['trafficsplits', 'httproutes'])
      expect((await refused('patch', resource)).responseStatus?.message).to.contain(
        "cannot set an ownerRef on a resource you can't delete",
      );
    const held = await kubectlOk(kubeconfig, ['-n', ns, 'get', 'prl', '-o', 'name']);
    expect(held.trim().split('\n').sort()).to.deep.equal(['rollout.perch.dev/gw', 'rollout.perch.dev/smi']);
    await restore(Object.keys(rollouts));
    await waitFor(
      async () =>
        (await kubectlOk(kubeconfig, ['-n', ns, 'get', 'prl', '-o', 'name'])).trim() === ''
          ? true
          : undefined,
      { what: 'both Rollouts released and gone', timeoutMs: 30_000, intervalMs: 250 },
    );
  });
});
