// `perch uninstall --crds` as a Job would run it, under deploy/uninstall/rbac.yaml's ServiceAccount, on a
// control plane of its own (it deletes Perch's CRDs): refused writes keep the CRDs, every grant is used, none refused.
import { CustomObjectsApi, loadAllYaml, type KubernetesObject } from '@kubernetes/client-node';
import { expect } from 'chai';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startControlPlane, type ControlPlane } from '../../src/sandbox/control-plane/index.js';
import { repoRoot } from '../../src/sandbox/repo.js';
import { runProcess } from '../../src/sandbox/run-process.js';
import { waitFor } from '../../src/sandbox/wait.js';
import { readAuditLog } from '../support/control-plane.js';
import { startController, type ControllerProcess } from '../support/controller-process.js';
import { kubectl, kubectlOk } from '../support/kubectl.js';
import { backendsOf, type RouterKind } from '../support/route-under-test.js';

const PERCH = fileURLToPath(new URL('../../src/cli/perch.js', import.meta.url));
const RBAC = join(repoRoot, 'deploy', 'uninstall', 'rbac.yaml');
const SA = 'system:serviceaccount:perch-system:perch-uninstall';
const NS = 'shop';

function perch(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = { ...process.env };
  delete env.KUBECONFIG;
  return runProcess(process.execPath, [PERCH, ...args], { env });
}

const rollout = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'perch.dev/v1alpha1',
  kind: 'Rollout',
  metadata: { name, namespace: NS },
  spec: { service: 'web', stableService: 'web-v1', canaryService: 'web-v2', ...spec },
});
const MID_RUN = { steps: [{ setWeight: 20 }, { pause: {} }, { setWeight: 100 }] };

/** Refuses every update of a TrafficSplit labelled frozen: an admission webhook's refusal, built in. */
const FROZEN_POLICY = [
  {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingAdmissionPolicy',
    metadata: { name: 'frozen-splits' },
    spec: {
      failurePolicy: 'Fail',
      matchConstraints: {
        resourceRules: [
          {
            apiGroups: ['split.smi-spec.io'],
            apiVersions: ['*'],
            operations: ['UPDATE'],
            resources: ['trafficsplits'],
          },
        ],
      },
      validations: [
        {
          expression: "!has(oldObject.metadata.labels) || !('frozen' in oldObject.metadata.labels)",
          message: 'this TrafficSplit is frozen',
        },
      ],
    },
  },
  {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingAdmissionPolicyBinding',
    metadata: { name: 'frozen-splits' },
    spec: { policyName: 'frozen-splits', validationActions: ['Deny'] },
  },
];

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

describe('perch uninstall --crds under deploy/uninstall/rbac.yaml (e2e: a control plane of its own)', function () {
  this.timeout(300_000);
  let cp: ControlPlane;
  let dir: string;
  let controller: ControllerProcess | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'perch-e2e-uninstall-rbac-'));
    cp = await startControlPlane({ auditLog: join(dir, 'audit.log') });
  });

  after(async () => {
    await controller?.stop();
    await cp?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a refused write keeps its finalizer and the CRDs; run again, the CRDs go and every route outlives its Rollout; every grant used, none refused', async () => {
    const admin = cp.kubeconfig;
    await kubectlOk(admin, ['create', 'namespace', 'perch-system']);
    await kubectlOk(admin, ['create', 'namespace', NS]);
    await kubectlOk(admin, ['apply', '-f', RBAC]);
    const saKubeconfig = join(dir, 'uninstall.kubeconfig');
    copyFileSync(admin, saKubeconfig);
    const token = (
      await kubectlOk(admin, ['create', 'token', 'perch-uninstall', '-n', 'perch-system'])
    ).trim();
    await kubectlOk(saKubeconfig, ['config', 'set-credentials', 'perch-uninstall', `--token=${token}`]);
    await kubectlOk(saKubeconfig, ['config', 'set-context', '--current', '--user=perch-uninstall']);
    for (const svc of ['web', 'web-v1', 'web-v2'])
      await kubectlOk(admin, ['-n', NS, 'create', 'service', 'clusterip', svc, '--tcp=80']);

    controller = await startController(admin, 'http://127.0.0.1:9', [
      '--leader-elect',
      '--leader-elect-namespace',
      'perch-system',
    ]);
    const rollouts = [
      rollout('mid', MID_RUN),
      rollout('done', { steps: [{ setWeight: 50 }, { setWeight: 100 }] }),
      rollout('gw', { ...MID_RUN, trafficRouting: { gatewayAPI: {} } }),
      rollout('frozen', MID_RUN),
    ];
    await kubectlOk(
      admin,
      ['apply', '-f', '-'],
      JSON.stringify({ apiVersion: 'v1', kind: 'List', items: rollouts }),
    );
    const custom = cp.kubeConfig().makeApiClient(CustomObjectsApi);
    const phase = async (name: string) =>
      (
        (await custom.getNamespacedCustomObject({
          group: 'perch.dev',
          version: 'v1alpha1',
          plural: 'rollouts',
          namespace: NS,
          name,
        })) as { status?: { phase?: string } }
      ).status?.phase;
    for (const [name, want] of [
      ['mid', 'Paused'],
      ['done', 'Succeeded'],
      ['gw', 'Paused'],
      ['frozen', 'Paused'],
    ] as const)
      await waitFor(async () => ((await phase(name)) === want ? true : undefined), {
        what: `${name} ${want}`,
        timeoutMs: 60_000,
        intervalMs: 250,
      });
    await controller.stop();
    controller = undefined;
    // A ConfigMap owned by mid: its removal by the garbage collector says the collector acted on mid's deletion.
    const midUid = (
      await kubectlOk(admin, ['-n', NS, 'get', 'rollout', 'mid', '-o', 'jsonpath={.metadata.uid}'])
    ).trim();
    await kubectlOk(
      admin,
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: {
          name: 'gc-sentinel',
          namespace: NS,
          ownerReferences: [{ apiVersion: 'perch.dev/v1alpha1', kind: 'Rollout', name: 'mid', uid: midUid }],
        },
      }),
    );
    await kubectlOk(admin, ['-n', NS, 'label', 'trafficsplit', 'frozen', 'frozen=true']);
    await kubectlOk(
      admin,
      ['apply', '-f', '-'],
      JSON.stringify({ apiVersion: 'v1', kind: 'List', items: FROZEN_POLICY }),
    );
    // The policy is in force once an update of the frozen split is refused.
    await waitFor(
      async () =>
        (await kubectl(admin, ['-n', NS, 'annotate', 'trafficsplit', 'frozen', 'probe=1', '--overwrite']))
          .code !== 0
          ? true
          : undefined,
      { what: 'the frozen-splits policy in force', timeoutMs: 30_000, intervalMs: 250 },
    );

    const first = await perch(['uninstall', '--crds', '--kubeconfig', saKubeconfig]);
    expect(first.code, first.stderr).to.equal(1);
    const lines = first.stdout.split('\n');
    expect(lines).to.include.members([
      `${NS}/done: released TrafficSplit done at canary 100 (web-v2), finalizer removed`,
      `${NS}/gw: released HTTPRoute gw at stable 100 (web-v1), was canary 20, finalizer removed`,
      `${NS}/mid: released TrafficSplit mid at stable 100 (web-v1), was canary 20, finalizer removed`,
      `4 Rollouts: 3 released, 1 failed (their finalizer stays; run again once fixed)`,
    ]);
    expect(first.stdout).to.match(
      new RegExp(`^${NS}/frozen: FAILED: .*this TrafficSplit is frozen.*; the finalizer stays$`, 'm'),
    );
    expect(first.stdout).to.match(
      /^Lease perch-system\/perch-controller taken: no controller can start leading until this ends$/m,
    );
    expect(first.stdout).to.not.contain('deleted the CRDs');
    await kubectlOk(admin, ['get', 'crd', 'rollouts.perch.dev', 'metrictemplates.perch.dev']);
    expect(
      await kubectlOk(admin, ['-n', NS, 'get', 'rollout', 'frozen', '-o', 'jsonpath={.metadata.finalizers}']),
    ).to.contain('perch.dev/traffic');

    await kubectlOk(admin, ['delete', 'validatingadmissionpolicybinding', 'frozen-splits']);
    await waitFor(
      async () =>
        (await kubectl(admin, ['-n', NS, 'annotate', 'trafficsplit', 'frozen', 'probe=2', '--overwrite']))
          .code === 0
          ? true
          : undefined,
      { what: 'the frozen-splits policy lifted', timeoutMs: 30_000, intervalMs: 250 },
    );
    const second = await perch(['uninstall', '--crds', '--kubeconfig', saKubeconfig]);
    expect(second.code, second.stderr).to.equal(0);
    expect(second.stdout.split('\n')).to.include.members([
      `${NS}/done: nothing to do (no perch.dev/traffic finalizer)`,
      `${NS}/frozen: released TrafficSplit frozen at stable 100 (web-v1), was canary 20, finalizer removed`,
      `4 Rollouts: 1 released, 3 with nothing to do`,
      'deleted the CRDs rollouts.perch.dev, metrictemplates.perch.dev (and every Rollout and MetricTemplate with them)',
    ]);
    for (const crd of ['rollouts.perch.dev', 'metrictemplates.perch.dev'])
      expect((await kubectl(admin, ['get', 'crd', crd])).code, crd).to.equal(1);
    // The mesh's CRDs stay.
    await kubectlOk(admin, [
      'get',
      'crd',
      'trafficsplits.split.smi-spec.io',
      'httproutes.gateway.networking.k8s.io',
    ]);

    // The garbage collector has acted on the Rollouts' deletion, and left every released route at its live version.
    await waitFor(
      async () =>
        (await kubectl(admin, ['-n', NS, 'get', 'configmap', 'gc-sentinel'])).code === 1 ? true : undefined,
      { what: 'the garbage collector to act on the deleted Rollouts', timeoutMs: 60_000, intervalMs: 250 },
    );
    const live: [string, RouterKind, string, string][] = [
      ['mid', 'smi', 'trafficsplit', 'web-v1'],
      ['done', 'smi', 'trafficsplit', 'web-v2'],
      ['frozen', 'smi', 'trafficsplit', 'web-v1'],
      ['gw', 'gatewayapi', 'httproute', 'web-v1'],
    ];
    for (const [name, router, resource, service] of live) {
      const route = JSON.parse(
        await kubectlOk(admin, ['-n', NS, 'get', resource, name, '-o', 'json']),
      ) as KubernetesObject;
      expect(backendsOf(router, route, 'web-v1'), name).to.deep.equal([{ service, weight: 100 }]);
      expect(route.metadata?.ownerReferences ?? [], name).to.deep.equal([]);
      expect(route.metadata?.annotations?.['perch.dev/released-from'], name).to.equal(name);
    }

    // Least privilege: every request of the ServiceAccount allowed, and every grant used (an Event's repeat aside).
    const audit = readAuditLog(cp.auditLog!).filter(
      // perch uninstall's own requests (kubectl, given the same token above, asks /version).
      (e) =>
        e.stage === 'ResponseComplete' &&
        e.user?.username === SA &&
        /perch-uninstall_/.test(e.userAgent ?? ''),
    ) as (ReturnType<typeof readAuditLog>[number] & { objectRef?: { apiGroup?: string } })[];
    const refused = audit
      .filter((e) => e.responseStatus?.code === 403)
      .map((e) => `${e.verb} ${e.requestURI}`);
    expect(refused, 'requests refused by RBAC').to.deep.equal([]);
    // A request without a resource is a non-resource URL (discovery), which every authenticated user may read.
    const nonResource = audit.filter((e) => e.objectRef?.resource === undefined).map((e) => e.requestURI);
    const used = new Set(
      audit
        .filter((e) => e.objectRef?.resource !== undefined)
        .map((e) => `${e.verb} ${e.objectRef?.apiGroup ?? ''}/${e.objectRef?.resource}`),
    );
    const rules = (loadAllYaml(readFileSync(RBAC, 'utf8')) as { kind: string; rules?: Rule[] }[]).find(
      (o) => o.kind === 'ClusterRole',
    )!.rules!;
    const granted = rules.flatMap((r) =>
      r.apiGroups.flatMap((g) => r.resources.flatMap((res) => r.verbs.map((v) => `${v} ${g}/${res}`))),
    );
    // Never sent, but checked by OwnerReferencesPermissionEnforcement as the release removes the ownerReference.
    const admissionOnly = [
      'delete split.smi-spec.io/trafficsplits',
      'delete gateway.networking.k8s.io/httproutes',
    ];
    expect(
      granted.filter((g) => !used.has(g) && g !== 'patch /events' && !admissionOnly.includes(g)),
    ).to.deep.equal([]);
    expect([...used].filter((u) => !granted.includes(u))).to.deep.equal([]);
    expect(nonResource).to.deep.equal([]);
  });
});
