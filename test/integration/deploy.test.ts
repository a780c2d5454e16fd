// deploy/ (the kustomize base) against the real API server: it renders, the server accepts it, and the
// ServiceAccount's RBAC is exactly what `perch controller` sends: every verb it needs, nothing else.
// No kubelet runs here, so the Deployment's Pod never starts; the controller runs as a local process
// with the ServiceAccount's token instead, which proves the grants by use and not only by `can-i`.
import { loadAllYaml, type KubernetesObject } from '@kubernetes/client-node';
import { expect } from 'chai';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VERSION } from '../../src/k8s/client-config.js';
import type { ControlPlane } from '../../src/sandbox/control-plane/index.js';
import { repoRoot } from '../../src/sandbox/repo.js';
import { sharedControlPlane, testNamespace } from '../support/control-plane.js';
import { startController, type ControllerProcess } from '../support/controller-process.js';
import { kubectl, kubectlOk } from '../support/kubectl.js';

const DEPLOY = join(repoRoot, 'deploy');
const NS = 'perch-system';
const SA = `system:serviceaccount:${NS}:perch-controller`;

/** [verb, resource, namespace flag (-A for all namespaces, else -n NS)] and the answer `can-i` must give. */
type Ask = { verb: string; resource: string; where: 'all' | typeof NS | 'default'; subresource?: string };

const ALLOWED: Ask[] = [
  { verb: 'list', resource: 'rollouts.perch.dev', where: 'all' },
  { verb: 'watch', resource: 'rollouts.perch.dev', where: 'all' },
  { verb: 'patch', resource: 'rollouts.perch.dev', where: 'all' },
  { verb: 'patch', resource: 'rollouts.perch.dev', where: 'all', subresource: 'status' },
  { verb: 'update', resource: 'rollouts.perch.dev', where: 'all', subresource: 'finalizers' },
  { verb: 'list', resource: 'metrictemplates.perch.dev', where: 'all' },
  { verb: 'watch', resource: 'metrictemplates.perch.dev', where: 'all' },
  { verb: 'list', resource: 'services', where: 'all' },
  { verb: 'watch', resource: 'services', where: 'all' },
  { verb: 'list', resource: 'trafficsplits.split.smi-spec.io', where: 'all' },
  { verb: 'watch', resource: 'trafficsplits.split.smi-spec.io', where: 'all' },
  { verb: 'create', resource: 'trafficsplits.split.smi-spec.io', where: 'all' },
  { verb: 'patch', resource: 'trafficsplits.split.smi-spec.io', where: 'all' },
  { verb: 'list', resource: 'httproutes.gateway.networking.k8s.io', where: 'all' },
  { verb: 'watch', resource: 'httproutes.gateway.networking.k8s.io', where: 'all' },
  { verb: 'create', resource: 'httproutes.gateway.networking.k8s.io', where: 'all' },
  { verb: 'patch', resource: 'httproutes.gateway.networking.k8s.io', where: 'all' },
  // Never sent: OwnerReferencesPermissionEnforcement's check when the release removes Perch's ownerReference.
  { verb: 'delete', resource: 'trafficsplits.split.smi-spec.io', where: 'all' },
  { verb: 'delete', resource: 'httproutes.gateway.networking.k8s.io', where: 'all' },
  { verb: 'create', resource: 'events', where: 'all' },
  { verb: 'patch', resource: 'events', where: 'all' },
  { verb: 'create', resource: 'leases.coordination.k8s.io', where: NS },
  { verb: 'get', resource: 'leases.coordination.k8s.io/perch-controller', where: NS },
  { verb: 'update', resource: 'leases.coordination.k8s.io/perch-controller', where: NS },
];

const DENIED: Ask[] = [
  { verb: 'get', resource: 'secrets', where: NS },
  { verb: 'list', resource: 'secrets', where: 'all' },
  { verb: 'get', resource: 'configmaps', where: 'default' },
  { verb: 'create', resource: 'rollouts.perch.dev', where: 'all' },
  { verb: 'delete', resource: 'rollouts.perch.dev', where: 'all' },
  { verb: 'update', resource: 'rollouts.perch.dev', where: 'all' },
  { verb: 'patch', resource: 'metrictemplates.perch.dev', where: 'all' },
  { verb: 'update', resource: 'trafficsplits.split.smi-spec.io', where: 'all' },
  { verb: 'patch', resource: 'httproutes.gateway.networking.k8s.io', where: 'all', subresource: 'status' },
  { verb: 'list', resource: 'gateways.gateway.networking.k8s.io', where: 'all' },
  { verb: 'patch', resource: 'services', where: 'all' },
  { verb: 'delete', resource: 'services', where: 'all' },
  { verb: 'delete', resource: 'events', where: 'all' },
  { verb: 'list', resource: 'pods', where: 'all' },
  { verb: 'patch', resource: 'deployments.apps', where: 'all' },
  // The Lease grants are for perch-system and for the Lease named perch-controller only.
  { verb: 'create', resource: 'leases.coordination.k8s.io', where: 'default' },
  { verb: 'get', resource: 'leases.coordination.k8s.io/kube-controller-manager', where: NS },
  { verb: 'update', resource: 'leases.coordination.k8s.io/other', where: NS },
  { verb: 'delete', resource: 'leases.coordination.k8s.io/perch-controller', where: NS },
  { verb: 'create', resource: 'clusterrolebindings.rbac.authorization.k8s.io', where: 'all' },
  { verb: 'impersonate', resource: 'serviceaccounts', where: 'all' },
];

const describeAsk = (a: Ask) =>
  `${a.verb} ${a.resource}${a.subresource ? ` (subresource ${a.subresource})` : ''} in ${a.where === 'all' ? 'all namespaces' : a.where}`;

/** `kubectl auth can-i ... --as=<the ServiceAccount>`: 'yes' or 'no'. */
async function canI(kubeconfig: string, a: Ask): Promise<string> {
  const args = ['auth', 'can-i', a.verb, a.resource, `--as=${SA}`];
  args.push(...(a.where === 'all' ? ['--all-namespaces'] : ['-n', a.where]));
  if (a.subresource) args.push(`--subresource=${a.subresource}`);
  // can-i exits 1 for "no"; anything else on stderr (an unknown resource) is a test failure.
  const r = await kubectl(kubeconfig, args);
  if (r.code !== 0 && r.stdout.trim() !== 'no') throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('deploy/: the kustomize base against the real API server', function () {
  this.timeout(120_000);
  let cp: ControlPlane;
  let kubeconfig: string;

  before(async function () {
    this.timeout(180_000);
    cp = await sharedControlPlane();
    kubeconfig = cp.kubeconfig;
  });

  after(async function () {
    // Whatever a failed test left behind; a passing run deleted it already.
    await kubectl(kubeconfig, ['delete', '-k', DEPLOY, '--ignore-not-found', '--wait=false']);
  });

  it('kubectl kustomize deploy/ renders the namespace, ServiceAccount, RBAC, Deployment and Service', async () => {
    const objects = loadAllYaml(await kubectlOk(kubeconfig, ['kustomize', DEPLOY])) as KubernetesObject[];
    const names = objects.map((o) => `${o.kind}/${o.metadata?.name}`).sort();
    expect(names).to.deep.equal([
      'ClusterRole/perch-controller',
      'ClusterRoleBinding/perch-controller',
      'Deployment/perch-controller',
      'Namespace/perch-system',
      'Role/perch-controller-leader-election',
      'RoleBinding/perch-controller-leader-election',
      'Service/perch-controller-metrics',
      'ServiceAccount/perch-controller',
    ]);
    for (const o of objects) {
      if (!o.kind?.startsWith('Cluster') && o.kind !== 'Namespace')
        expect(o.metadata?.namespace).to.equal(NS);
    }

    type Container = {
      image: string;
      args: string[];
      env: { name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
      ports: { name: string; containerPort: number }[];
      livenessProbe: { httpGet: { path: string; port: string } };
      readinessProbe: { httpGet: { path: string; port: string } };
      resources: { requests: object; limits: object };
      securityContext: {
        readOnlyRootFilesystem: boolean;
        allowPrivilegeEscalation: boolean;
        capabilities: { drop: string[] };
      };
    };
    const deployment = objects.find((o) => o.kind === 'Deployment') as unknown as {
      spec: {
        replicas: number;
        template: {
          spec: {
            serviceAccountName: string;
            securityContext: { runAsNonRoot: boolean };
            containers: Container[];
          };
        };
      };
    };
    expect(deployment.spec.replicas).to.equal(1);
    const pod = deployment.spec.template.spec;
    expect(pod.serviceAccountName).to.equal('perch-controller');
    expect(pod.securityContext.runAsNonRoot).to.equal(true);
    expect(pod.containers).to.have.length(1);
    const c = pod.containers[0]!;
    // The name and tag tools/image/build gives the image it builds.
    expect(c.image).to.equal(`localhost/perch-controller:${VERSION}`);
    expect(c.args).to.deep.equal([
      'controller',
      '--leader-elect',
      '--metrics-addr',
      ':8080',
      '--prometheus-url',
      'http://prometheus.monitoring:9090',
      '--log-format',
      'json',
    ]);
    expect(c.env.find((e) => e.name === 'POD_NAMESPACE')?.valueFrom?.fieldRef?.fieldPath).to.equal(
      'metadata.namespace',
    );
    expect(c.ports).to.deep.include({ name: 'http-metrics', containerPort: 8080, protocol: 'TCP' });
    expect(c.livenessProbe.httpGet).to.deep.equal({ path: '/healthz', port: 'http-metrics' });
    expect(c.readinessProbe.httpGet).to.deep.equal({ path: '/readyz', port: 'http-metrics' });
    expect(c.resources.requests).to.have.keys('cpu', 'memory');
    expect(c.resources.limits).to.have.keys('cpu', 'memory');
    expect(c.securityContext).to.deep.include({
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
    });
    expect(c.securityContext.capabilities.drop).to.deep.equal(['ALL']);

    const service = objects.find((o) => o.kind === 'Service') as unknown as {
      spec: { selector: Record<string, string>; ports: { name: string; port: number }[] };
    };
    expect(service.spec.ports.map((p) => [p.name, p.port])).to.deep.equal([['http-metrics', 8080]]);
    const podLabels = (
      deployment.spec.template as unknown as { metadata: { labels: Record<string, string> } }
    ).metadata.labels;
    expect(podLabels).to.deep.include(service.spec.selector);
  });

  it('kubectl apply -k deploy/ --dry-run=server is accepted and creates nothing', async () => {
    // A server dry run cannot put objects into a namespace that the same dry run only pretends to create,
    // so the namespace is dry-run on its own first, then everything against a real, empty perch-system.
    const ns = await kubectlOk(kubeconfig, [
      'apply',
      '--dry-run=server',
      '-f',
      join(DEPLOY, 'namespace.yaml'),
    ]);
    expect(ns).to.contain('namespace/perch-system created (server dry run)');
    expect((await kubectl(kubeconfig, ['get', 'namespace', NS])).code).to.equal(1);

    await kubectlOk(kubeconfig, ['create', 'namespace', NS]);
    const out = await kubectlOk(kubeconfig, ['apply', '-k', DEPLOY, '--dry-run=server']);
    for (const line of [
      'serviceaccount/perch-controller created (server dry run)',
      'role.rbac.authorization.k8s.io/perch-controller-leader-election created (server dry run)',
      'clusterrole.rbac.authorization.k8s.io/perch-controller created (server dry run)',
      'rolebinding.rbac.authorization.k8s.io/perch-controller-leader-election created (server dry run)',
      'clusterrolebinding.rbac.authorization.k8s.io/perch-controller created (server dry run)',
      'service/perch-controller-metrics created (server dry run)',
      'deployment.apps/perch-controller created (server dry run)',
    ]) {
      expect(out).to.contain(line);
    }
    const left = await kubectlOk(kubeconfig, ['get', 'deploy,svc,role,rolebinding', '-n', NS, '-o', 'name']);
    expect(left.trim()).to.equal('');
    expect(
      (await kubectl(kubeconfig, ['get', 'serviceaccount', 'perch-controller', '-n', NS])).code,
    ).to.equal(1);
    expect((await kubectl(kubeconfig, ['get', 'clusterrole', 'perch-controller'])).code).to.equal(1);
    // The empty perch-system stays for the next test's apply -k, which keeps it as it is: deleting it here
    // would cost the namespace controller's 5 s grace period for nothing. The last test deletes it.
  });

  it('kubectl apply -k deploy/ gives perch-controller every permission the controller uses and no other', async function () {
    this.timeout(180_000);
    const applied = await kubectlOk(kubeconfig, ['apply', '-k', DEPLOY]);
    expect(applied).to.contain('deployment.apps/perch-controller created');
    const deployment = JSON.parse(
      await kubectlOk(kubeconfig, ['get', 'deployment', 'perch-controller', '-n', NS, '-o', 'json']),
    ) as { spec: { replicas: number } };
    expect(deployment.spec.replicas).to.equal(1);

    const answers = await Promise.all([...ALLOWED, ...DENIED].map((a) => canI(kubeconfig, a)));
    const got = [...ALLOWED, ...DENIED].map((a, i) => `${describeAsk(a)}: ${answers[i]}`);
    const want = [
      ...ALLOWED.map((a) => `${describeAsk(a)}: yes`),
      ...DENIED.map((a) => `${describeAsk(a)}: no`),
    ];
    expect(got).to.deep.equal(want);
  });

  it('perch controller --leader-elect, as the ServiceAccount, takes the Lease and runs a rollout to Succeeded', async function () {
    this.timeout(120_000);
    // Its own kubeconfig: the sandbox's cluster and CA, the ServiceAccount's token instead of the admin's.
    const dir = mkdtempSync(join(tmpdir(), 'perch-deploy-sa-'));
    const saKubeconfig = join(dir, 'kubeconfig');
    copyFileSync(kubeconfig, saKubeconfig);
    const token = (
      await kubectlOk(kubeconfig, ['create', 'token', 'perch-controller', '-n', NS, '--duration=1h'])
    ).trim();
    await kubectlOk(saKubeconfig, ['config', 'set-credentials', 'perch-controller', `--token=${token}`]);
    await kubectlOk(saKubeconfig, ['config', 'set-context', '--current', '--user=perch-controller']);
    expect(
      (
        await kubectlOk(saKubeconfig, ['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}'])
      ).trim(),
    ).to.equal(SA);

    const ns = await testNamespace(cp.kubeConfig(), 'deploy-sa');
    for (const svc of ['web', 'web-v1', 'web-v2'])
      await kubectlOk(kubeconfig, ['-n', ns, 'create', 'service', 'clusterip', svc, '--tcp=80']);

    let controller: ControllerProcess | undefined;
    try {
      controller = await startController(saKubeconfig, 'http://127.0.0.1:9', [
        '--leader-elect',
        '--leader-elect-namespace',
        NS,
      ]);
      await controller.waitForLog((r) => r.msg === 'controller started', 30_000, 'controller started');
      const lease = JSON.parse(
        await kubectlOk(kubeconfig, ['get', 'lease', 'perch-controller', '-n', NS, '-o', 'json']),
      ) as { spec: { holderIdentity: string } };
      expect(lease.spec.holderIdentity).to.be.a('string').with.length.above(0);

      // One Rollout per router: the grants are proven by use for TrafficSplits and HTTPRoutes alike.
      const routers = { web: {}, 'web-gw': { gatewayAPI: {} } };
      for (const [name, trafficRouting] of Object.entries(routers))
        await kubectlOk(
          kubeconfig,
          ['-n', ns, 'apply', '-f', '-'],
          JSON.stringify({
            apiVersion: 'perch.dev/v1alpha1',
            kind: 'Rollout',
            metadata: { name },
            spec: {
              service: 'web',
              stableService: 'web-v1',
              canaryService: 'web-v2',
              trafficRouting,
              steps: [{ setWeight: 50 }, { pause: {} }, { setWeight: 100 }],
            },
          }),
        );
      const phase = async (name: string) =>
        (
          await kubectlOk(kubeconfig, ['-n', ns, 'get', 'prl', name, '-o', 'jsonpath={.status.phase}'])
        ).trim();
      for (const name of Object.keys(routers)) {
        await eventually(`${name} Paused`, async () => ((await phase(name)) === 'Paused' ? true : undefined));
        // A one-shot annotation: the controller patches the Rollout to remove it, and records an Event.
        await kubectlOk(kubeconfig, ['-n', ns, 'annotate', 'rollout', name, 'perch.dev/resume=true']);
        await eventually(`${name} Succeeded`, async () =>
          (await phase(name)) === 'Succeeded' ? true : undefined,
        );
      }
      const route = JSON.parse(
        await kubectlOk(kubeconfig, [
          '-n',
          ns,
          'get',
          'httproutes.gateway.networking.k8s.io',
          'web-gw',
          '-o',
          'json',
        ]),
      ) as { spec: { rules: { backendRefs: { name: string; weight: number }[] }[] } };
      expect(route.spec.rules[0]!.backendRefs.map((b) => [b.name, b.weight])).to.deep.equal([
        ['web-v1', 0],
        ['web-v2', 100],
      ]);

      const rollout = JSON.parse(
        await kubectlOk(kubeconfig, ['-n', ns, 'get', 'prl', 'web', '-o', 'json']),
      ) as {
        metadata: { uid: string; finalizers?: string[]; annotations?: Record<string, string> };
      };
      expect(rollout.metadata.finalizers ?? []).to.include('perch.dev/traffic');
      expect(rollout.metadata.annotations ?? {}).not.to.have.property('perch.dev/resume');
      const split = JSON.parse(await kubectlOk(kubeconfig, ['-n', ns, 'get', 'ts', 'web', '-o', 'json'])) as {
        metadata: { ownerReferences: { uid: string; blockOwnerDeletion: boolean }[] };
        spec: { backends: { service: string; weight: number }[] };
      };
      expect(split.metadata.ownerReferences).to.deep.include.members([
        {
          apiVersion: 'perch.dev/v1alpha1',
          kind: 'Rollout',
          name: 'web',
          uid: rollout.metadata.uid,
          controller: true,
          blockOwnerDeletion: true,
        },
      ]);
      expect(split.spec.backends).to.deep.equal([{ service: 'web-v2', weight: 100 }]);
      const events = await kubectlOk(kubeconfig, [
        '-n',
        ns,
        'get',
        'events',
        '--field-selector',
        'involvedObject.kind=Rollout,involvedObject.name=web',
        '-o',
        'jsonpath={.items[*].reason}',
      ]);
      expect(events.trim()).not.to.equal('');
      // Deleting the Rollouts releases their routing objects (ownerReference removed) before they go.
      await kubectlOk(kubeconfig, ['-n', ns, 'delete', 'rollout', ...Object.keys(routers), '--timeout=60s']);
      for (const [type, name] of [
        ['ts', 'web'],
        ['httproutes.gateway.networking.k8s.io', 'web-gw'],
      ] as const) {
        const released = JSON.parse(
          await kubectlOk(kubeconfig, ['-n', ns, 'get', type, name, '-o', 'json']),
        ) as {
          metadata: { annotations?: Record<string, string>; ownerReferences?: unknown[] };
        };
        expect(released.metadata.annotations?.['perch.dev/released-from'], `${type}/${name}`).to.equal(name);
        expect(released.metadata.ownerReferences ?? [], `${type}/${name}`).to.deep.equal([]);
      }
      // Not one request of the controller was refused: no warning or error mentions a 403 Forbidden.
      const refused = controller.logs
        .filter((r) => r.level === 'warn' || r.level === 'error')
        .map((r) => JSON.stringify(r))
        .filter((l) => /forbidden/i.test(l));
      expect(refused).to.deep.equal([]);
    } finally {
      await controller?.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('kubectl delete -k deploy/ removes everything it applied', async () => {
    const out = await kubectlOk(kubeconfig, ['delete', '-k', DEPLOY, '--timeout=90s']);
    expect(out).to.contain('namespace "perch-system" deleted');
    for (const kind of [
      'namespace/perch-system',
      'clusterrole/perch-controller',
      'clusterrolebinding/perch-controller',
    ]) {
      const r = await kubectl(kubeconfig, ['get', kind]);
      expect(r.code, `${kind} is gone`).to.equal(1);
      expect(r.stderr).to.contain('NotFound');
    }
  });
});
