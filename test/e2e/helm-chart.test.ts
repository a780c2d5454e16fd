// charts/perch with the real Helm and the real API server: it lints, every controller flag is a value,
// its render is accepted by a server dry run, and `helm install` creates every object it renders.
import { loadAllYaml, type KubernetesObject } from '@kubernetes/client-node';
import { expect } from 'chai';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ControlPlane } from '../../src/sandbox/control-plane/index.js';
import { crdsDir, repoRoot } from '../../src/sandbox/repo.js';
import { sharedControlPlane, testNamespace } from '../support/control-plane.js';
import { chartDir, helm, helmBinary, helmOk, removeHelmHome } from '../support/helm.js';
import { kubectl, kubectlOk } from '../support/kubectl.js';
import { serviceMonitorCrdFile } from '../support/prometheus-operator.js';

interface Container {
  args: string[];
  image: string;
  imagePullPolicy: string;
  env: { name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  ports: { name: string; containerPort: number }[];
  livenessProbe: { httpGet: { path: string; port: string } };
  readinessProbe: { httpGet: { path: string; port: string } };
  resources: { requests: Record<string, string>; limits: Record<string, string> };
  securityContext: {
    allowPrivilegeEscalation: boolean;
    readOnlyRootFilesystem: boolean;
    capabilities: { drop: string[] };
  };
}

interface PodSpec {
  serviceAccountName: string;
  securityContext: { runAsNonRoot: boolean; runAsUser: number; seccompProfile: { type: string } };
  containers: Container[];
  affinity?: { podAntiAffinity: Record<string, unknown> };
}

interface Deployment extends KubernetesObject {
  spec: { replicas: number; template: { metadata: { labels: Record<string, string> }; spec: PodSpec } };
}

/** The flags `perch controller` parses, read off its parser's table (src/cli/controller.ts FLAGS). */
function controllerFlags(): string[] {
  const source = readFileSync(join(repoRoot, 'src', 'cli', 'controller.ts'), 'utf8');
  const table = /const FLAGS = \{([\s\S]*?)\} as const;/.exec(source)?.[1];
  if (!table) throw new Error('src/cli/controller.ts has no `const FLAGS = {...} as const` table');
  return [...table.matchAll(/^\s*'?([a-z][a-z-]*)'?\s*:/gm)].map((m) => m[1]!).filter((f) => f !== 'help');
}

/**
 * Each flag's value in values.yaml: what to set, and the argument the Deployment must then carry.
 * A flag added to the controller without a line here (and a value in the chart) fails the test below.
 */
const FLAG_VALUES: Record<string, { set: string[]; arg: string[] }> = {
  kubeconfig: { set: ['controller.kubeconfig=/etc/perch/kubeconfig'], arg: ['/etc/perch/kubeconfig'] },
  namespace: { set: ['controller.namespace=team-a'], arg: ['team-a'] },
  'prometheus-url': {
    set: ['controller.prometheusUrl=http://prom.example:9090'],
    arg: ['http://prom.example:9090'],
  },
  'allowed-prometheus-urls': {
    set: ['controller.allowedPrometheusUrls={http://a.example:9090,http://b.example:9090}'],
    arg: ['http://a.example:9090,http://b.example:9090'],
  },
  'template-namespace': { set: ['controller.templateNamespace=catalogue'], arg: ['catalogue'] },
  'metrics-addr': { set: ['metrics.port=9102'], arg: [':9102'] },
  'request-timeout': { set: ['controller.requestTimeout=45s'], arg: ['45s'] },
  'kube-api-qps': { set: ['controller.kubeApiQps=50'], arg: ['50'] },
  'kube-api-burst': { set: ['controller.kubeApiBurst=80'], arg: ['80'] },
  workers: { set: ['controller.workers=6'], arg: ['6'] },
  'leader-elect': { set: ['leaderElection.enabled=true'], arg: [] },
  'leader-elect-namespace': { set: ['leaderElection.namespace=leases'], arg: ['leases'] },
  'leader-elect-lease-duration': { set: ['leaderElection.leaseDuration=20s'], arg: ['20s'] },
  'leader-elect-renew-deadline': { set: ['leaderElection.renewDeadline=12s'], arg: ['12s'] },
  'leader-elect-retry-period': { set: ['leaderElection.retryPeriod=3s'], arg: ['3s'] },
  'log-level': { set: ['controller.logLevel=debug'], arg: ['debug'] },
  'log-format': { set: ['controller.logFormat=text'], arg: ['text'] },
};

const objectsOf = (yaml: string) =>
  (loadAllYaml(yaml) as (KubernetesObject | null)[]).filter((o): o is KubernetesObject => !!o?.kind);
const named = (objects: KubernetesObject[]) => objects.map((o) => `${o.kind}/${o.metadata?.name}`).sort();
const deploymentOf = (objects: KubernetesObject[]) =>
  objects.find((o) => o.kind === 'Deployment') as Deployment;

describe('charts/perch: the Helm chart', function () {
  this.timeout(120_000);
  let cp: ControlPlane;
  let kubeconfig: string;

  before(async function () {
    // A first run builds helm (a few minutes); ./run builds it before the suite.
    this.timeout(900_000);
    await helmBinary();
    cp = await sharedControlPlane();
    kubeconfig = cp.kubeconfig;
  });

  after(() => removeHelmHome());

  const template = async (release: string, namespace: string, set: string[] = []) =>
    objectsOf(
      await helmOk(kubeconfig, [
        'template',
        release,
        chartDir,
        '--namespace',
        namespace,
        ...set.flatMap((s) => ['--set', s]),
      ]),
    );

  it("holds package.json's version as appVersion, and exactly the Rollout and MetricTemplate CRDs of crds/", () => {
    const chart = readFileSync(join(chartDir, 'Chart.yaml'), 'utf8');
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    expect(/^appVersion: '?([^'\n]+)'?$/m.exec(chart)?.[1]).to.equal(pkg.version);
    expect(readdirSync(join(chartDir, 'crds')).sort()).to.deep.equal(['metrictemplate.yaml', 'rollout.yaml']);
    for (const file of ['rollout.yaml', 'metrictemplate.yaml']) {
      expect(
        readFileSync(join(chartDir, 'crds', file), 'utf8'),
        `charts/perch/crds/${file} differs from crds/${file}: cp crds/${file} charts/perch/crds/`,
      ).to.equal(readFileSync(join(crdsDir, file), 'utf8'));
    }
  });

  it('passes helm lint --strict, cluster-wide and namespace-scoped', async () => {
    for (const set of [[], ['rbac.scope=namespace', 'controller.templateNamespace=catalogue']]) {
      const out = await helmOk(kubeconfig, [
        'lint',
        '--strict',
        chartDir,
        ...set.flatMap((s) => ['--set', s]),
      ]);
      expect(out).to.contain('1 chart(s) linted, 0 chart(s) failed');
    }
  });

  it('has a value for every `perch controller` flag, each rendered as that flag', async () => {
    const flags = controllerFlags();
    expect(flags).to.include.members(['prometheus-url', 'leader-elect', 'log-format']);
    const missing = flags.filter((f) => !(f in FLAG_VALUES));
    expect(
      missing,
      'flags with no chart value: add one to charts/perch (values.yaml, deployment.yaml) and here',
    ).to.deep.equal([]);
    // Each value on its own, so a flag rendered from the wrong value is seen.
    for (const flag of flags) {
      const { set, arg } = FLAG_VALUES[flag]!;
      const args = deploymentOf(await template('flags', 'perch-system', set)).spec.template.spec
        .containers[0]!.args;
      const at = args.indexOf(`--${flag}`);
      expect(at, `--${flag} after --set ${set.join(' ')}: ${args.join(' ')}`).to.be.above(0);
      expect(args.slice(at + 1, at + 1 + arg.length), `--${flag}'s value`).to.deep.equal(arg);
    }
    // An empty value leaves its flag out: the controller's own default applies.
    const plain = deploymentOf(await template('flags', 'perch-system')).spec.template.spec.containers[0]!
      .args;
    expect(plain).to.deep.equal([
      'controller',
      '--metrics-addr',
      ':8080',
      '--prometheus-url',
      'http://prometheus.monitoring:9090',
      '--leader-elect',
      '--log-level',
      'info',
      '--log-format',
      'json',
    ]);
  });

  it('renders a non-root, read-only, capability-less controller with probes, 2 replicas, a PDB and anti-affinity', async () => {
    const objects = await template('shape', 'perch-system');
    expect(named(objects)).to.deep.equal([
      'ClusterRole/shape-perch',
      'ClusterRoleBinding/shape-perch',
      'Deployment/shape-perch',
      'PodDisruptionBudget/shape-perch',
      'Role/shape-perch-leader-election',
      'RoleBinding/shape-perch-leader-election',
      'Service/shape-perch-metrics',
      'ServiceAccount/shape-perch',
    ]);
    const d = deploymentOf(objects);
    expect(d.spec.replicas).to.equal(2);
    const pod = d.spec.template.spec;
    expect(pod.serviceAccountName).to.equal('shape-perch');
    expect(pod.securityContext).to.deep.include({ runAsNonRoot: true, runAsUser: 65532 });
    expect(pod.securityContext.seccompProfile).to.deep.equal({ type: 'RuntimeDefault' });
    const c = pod.containers[0]!;
    expect(c.image).to.equal('localhost/perch-controller:0.1.0');
    expect(c.securityContext).to.deep.include({
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
    });
    expect(c.securityContext.capabilities.drop).to.deep.equal(['ALL']);
    expect(c.livenessProbe.httpGet).to.deep.equal({ path: '/healthz', port: 'http-metrics' });
    expect(c.readinessProbe.httpGet).to.deep.equal({ path: '/readyz', port: 'http-metrics' });
    expect(c.ports).to.deep.include({ name: 'http-metrics', containerPort: 8080, protocol: 'TCP' });
    expect(c.resources.requests).to.have.keys('cpu', 'memory');
    expect(c.resources.limits).to.have.keys('cpu', 'memory');
    expect(c.env.find((e) => e.name === 'POD_NAMESPACE')?.valueFrom?.fieldRef?.fieldPath).to.equal(
      'metadata.namespace',
    );
    expect(pod.affinity?.podAntiAffinity).to.have.key('preferredDuringSchedulingIgnoredDuringExecution');
    const hard = deploymentOf(await template('shape', 'perch-system', ['podAntiAffinity=hard']));
    expect(hard.spec.template.spec.affinity?.podAntiAffinity).to.have.key(
      'requiredDuringSchedulingIgnoredDuringExecution',
    );
    const single = await template('shape', 'perch-system', [
      'replicaCount=1',
      'podAntiAffinity=none',
      'leaderElection.enabled=false',
    ]);
    expect(named(single)).to.not.include('PodDisruptionBudget/shape-perch');
    expect(named(single)).to.not.include('Role/shape-perch-leader-election');
    expect(deploymentOf(single).spec.template.spec.affinity).to.equal(undefined);
    expect(deploymentOf(single).spec.template.spec.containers[0]!.args).to.not.include('--leader-elect');

    // The metrics Service selects the pods; the optional ServiceMonitor scrapes its port.
    const service = objects.find((o) => o.kind === 'Service') as unknown as {
      metadata: { labels: Record<string, string> };
      spec: { selector: Record<string, string>; ports: { name: string; port: number }[] };
    };
    expect(d.spec.template.metadata.labels).to.deep.include(service.spec.selector);
    expect(service.spec.ports.map((p) => [p.name, p.port])).to.deep.equal([['http-metrics', 8080]]);
    expect(named(objects)).to.not.include('ServiceMonitor/shape-perch');
    const monitored = await template('shape', 'perch-system', [
      'metrics.serviceMonitor.enabled=true',
      'metrics.serviceMonitor.labels.release=kube-prometheus',
    ]);
    const monitor = monitored.find((o) => o.kind === 'ServiceMonitor') as unknown as {
      apiVersion: string;
      metadata: { labels: Record<string, string> };
      spec: {
        selector: { matchLabels: Record<string, string> };
        namespaceSelector: { matchNames: string[] };
        endpoints: { port: string; path: string }[];
      };
    };
    expect(monitor.apiVersion).to.equal('monitoring.coreos.com/v1');
    expect(monitor.metadata.labels.release).to.equal('kube-prometheus');
    expect(service.metadata.labels).to.deep.include(monitor.spec.selector.matchLabels);
    expect(monitor.spec.namespaceSelector.matchNames).to.deep.equal(['perch-system']);
    expect(monitor.spec.endpoints).to.deep.equal([
      { port: 'http-metrics', path: '/metrics', interval: '30s', honorLabels: true },
    ]);
  });

  it("grants what deploy/rbac.yaml grants, no more: the ClusterRole's rules and the Lease Role's", async () => {
    type Rules = {
      rules: { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }[];
    };
    // Each rule as the set of single grants it makes (RBAC rules are cross products), sorted.
    const grants = (o: KubernetesObject | undefined) =>
      (o as unknown as Rules).rules
        .flatMap((r) =>
          r.apiGroups.flatMap((g) =>
            r.resources.flatMap((res) =>
              r.verbs.map((v) => `${v} ${g}/${res} ${(r.resourceNames ?? []).join(',')}`),
            ),
          ),
        )
        .sort();
    const deploy = objectsOf(readFileSync(join(repoRoot, 'deploy', 'rbac.yaml'), 'utf8'));
    const chart = await template('same', 'perch-system');
    expect(grants(chart.find((o) => o.kind === 'ClusterRole'))).to.deep.equal(
      grants(deploy.find((o) => o.kind === 'ClusterRole')),
    );
    expect(grants(chart.find((o) => o.kind === 'Role'))).to.deep.equal(
      grants(deploy.find((o) => o.kind === 'Role')),
    );
    const scoped = await template('same', 'perch-system', ['rbac.scope=namespace']);
    expect(grants(scoped.find((o) => o.kind === 'Role' && o.metadata?.name === 'same-perch'))).to.deep.equal(
      grants(deploy.find((o) => o.kind === 'ClusterRole')),
    );
  });

  it('refuses values that cannot work, naming the value and the fix', async () => {
    const refusals: [string[], RegExp][] = [
      [['rbac.scope=cluster-wide'], /rbac\.scope: "cluster-wide" is neither cluster nor namespace/],
      [['leaderElection.enabled=false'], /replicaCount: 2 replicas without leaderElection\.enabled/],
      [['podAntiAffinity=always'], /podAntiAffinity: "always" is none of soft, hard, none/],
      [['controller.logFormat=xml'], /controller\.logFormat: "xml" is neither json nor text/],
      [['controller.allowedPrometheusUrls=http://a:9090'], /controller\.allowedPrometheusUrls: give a list/],
      [
        ['metrics.serviceMonitor.enabled=true', 'metrics.service.enabled=false'],
        /metrics\.serviceMonitor\.enabled: a ServiceMonitor scrapes the metrics Service/,
      ],
      [['serviceAccount.create=false'], /serviceAccount\.name: name the existing ServiceAccount/],
    ];
    for (const [set, message] of refusals) {
      const r = await helm(kubeconfig, ['template', 'bad', chartDir, ...set.flatMap((s) => ['--set', s])]);
      expect(r.code, set.join(' ')).to.equal(1);
      expect(r.stderr).to.match(message);
    }
  });

  for (const scope of ['cluster', 'namespace'] as const) {
    it(`helm template (rbac.scope=${scope}) | kubectl apply --dry-run=server is accepted and creates nothing`, async () => {
      const ns = await testNamespace(cp.kubeConfig(), `helm-dry-${scope}`);
      const release = `dry-${scope}`;
      const rendered = await helmOk(kubeconfig, [
        'template',
        release,
        chartDir,
        '--namespace',
        ns,
        '--include-crds',
        '--set',
        `rbac.scope=${scope}`,
      ]);
      const objects = objectsOf(rendered);
      expect(named(objects)).to.include.members([
        'CustomResourceDefinition/rollouts.perch.dev',
        'CustomResourceDefinition/metrictemplates.perch.dev',
        `Deployment/${release}-perch`,
      ]);
      const out = await kubectlOk(kubeconfig, ['apply', '--dry-run=server', '-f', '-'], rendered);
      for (const o of objects) {
        if (o.kind === 'CustomResourceDefinition') continue;
        expect(out).to.match(
          new RegExp(`^${o.kind!.toLowerCase()}[^/]*/${o.metadata!.name} created \\(server dry run\\)$`, 'm'),
        );
      }
      // The CRDs are the sandbox's already (from crds/): the chart's are the same, so nothing changes.
      expect(out).to.contain('customresourcedefinition.apiextensions.k8s.io/rollouts.perch.dev');
      const left = await kubectlOk(kubeconfig, [
        'get',
        'all,sa,role,rolebinding,pdb',
        '-n',
        ns,
        '-o',
        'name',
      ]);
      expect(left.trim()).to.equal('');
      expect((await kubectl(kubeconfig, ['get', 'clusterrole', `${release}-perch`])).code).to.equal(1);
    });
  }

  it("its ServiceMonitor passes the Prometheus Operator's own CRD (server dry run), which refuses a broken one", async () => {
    // The CRD as the Prometheus Operator publishes it (tools/prometheus-operator pins the release).
    await kubectlOk(kubeconfig, ['apply', '--server-side', '-f', await serviceMonitorCrdFile()]);
    await kubectlOk(kubeconfig, [
      'wait',
      '--for=condition=Established',
      'crd/servicemonitors.monitoring.coreos.com',
      '--timeout=60s',
    ]);
    const ns = await testNamespace(cp.kubeConfig(), 'helm-monitor');
    const rendered = await helmOk(kubeconfig, [
      'template',
      'mon',
      chartDir,
      '--namespace',
      ns,
      ...[
        'metrics.serviceMonitor.enabled=true',
        'metrics.serviceMonitor.labels.release=kube-prometheus',
      ].flatMap((x) => ['--set', x]),
    ]);
    const monitor = objectsOf(rendered).find((o) => o.kind === 'ServiceMonitor')!;
    const out = await kubectlOk(
      kubeconfig,
      ['apply', '--dry-run=server', '-f', '-'],
      JSON.stringify(monitor),
    );
    expect(out.trim()).to.equal('servicemonitor.monitoring.coreos.com/mon-perch created (server dry run)');
    // The schema is in force: an endpoint whose port is not a string is refused.
    const broken = structuredClone(monitor) as KubernetesObject & {
      spec: { endpoints: { port: unknown }[] };
    };
    broken.spec.endpoints[0]!.port = { name: 'http-metrics' };
    const refused = await kubectl(
      kubeconfig,
      ['apply', '--dry-run=server', '-f', '-'],
      JSON.stringify(broken),
    );
    expect(refused.code).to.not.equal(0);
    expect(refused.stderr).to.match(/spec\.endpoints\[0\]\.port/);
  });

  for (const scope of ['cluster', 'namespace'] as const) {
    it(`helm install (rbac.scope=${scope}) creates every object the chart renders`, async () => {
      const ns = await testNamespace(cp.kubeConfig(), `helm-install-${scope}`);
      const release = `inst-${scope}-${ns.slice(-6)}`;
      const out = await helmOk(kubeconfig, [
        'install',
        release,
        chartDir,
        '--namespace',
        ns,
        '--set',
        `rbac.scope=${scope}`,
      ]);
      expect(out).to.contain('STATUS: deployed');
      // NOTES.txt: what it watches and with which grant.
      expect(out).to.contain(
        scope === 'cluster'
          ? 'It watches every namespace, with a ClusterRole.'
          : `It watches the namespace ${ns}, with a Role in ${ns} (nothing cluster-wide but the CRDs).`,
      );
      try {
        const manifest = objectsOf(await helmOk(kubeconfig, ['get', 'manifest', release, '-n', ns]));
        const kinds = manifest.map((o) => o.kind!);
        expect(kinds).to.include.members(['Deployment', 'ServiceAccount', 'Service', 'Role', 'RoleBinding']);
        if (scope === 'cluster') expect(kinds).to.include.members(['ClusterRole', 'ClusterRoleBinding']);
        else expect(kinds.filter((k) => k.startsWith('Cluster'))).to.deep.equal([]);
        for (const o of manifest) {
          const where = o.metadata?.namespace ? ['-n', o.metadata.namespace] : [];
          const got = JSON.parse(
            await kubectlOk(kubeconfig, ['get', typeOf(o), o.metadata!.name!, ...where, '-o', 'json']),
          ) as KubernetesObject;
          expect(
            got.metadata?.labels?.['app.kubernetes.io/instance'],
            `${o.kind}/${o.metadata?.name}`,
          ).to.equal(release);
        }
        for (const crd of ['rollouts.perch.dev', 'metrictemplates.perch.dev'])
          await kubectlOk(kubeconfig, ['get', 'crd', crd]);
      } finally {
        await helmOk(kubeconfig, ['uninstall', release, '-n', ns, '--wait']);
      }
      expect((await kubectl(kubeconfig, ['get', 'clusterrole', `${release}-perch`])).code).to.equal(1);
    });
  }
});

/** An object's type as `kubectl get` takes it: KIND.GROUP, or KIND alone for the core group. */
function typeOf(o: KubernetesObject): string {
  const apiVersion = o.apiVersion ?? 'v1';
  return apiVersion.includes('/') ? `${o.kind}.${apiVersion.split('/')[0]}` : o.kind!;
}
