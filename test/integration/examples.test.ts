// Every examples/<dir> applies cleanly with the real kubectl to the real API server, and the objects
// it declares exist afterwards; manual-gate and gateway-api-ingress (which needs no traffic: the sandbox has
// no Gateway implementation, so what runs is Perch's weight writing) then run under `perch controller` to
// Succeeded. (flagger-style, blue-green and gateway-api-mesh, which need traffic and Prometheus, run in
// examples-run.test.ts.)
import { expect } from 'chai';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { readExample } from '../../src/sandbox/examples.js';
import { repoRoot } from '../../src/sandbox/repo.js';
import { waitFor } from '../../src/sandbox/wait.js';
import { sharedControlPlane } from '../support/control-plane.js';
import { startController, type ControllerProcess } from '../support/controller-process.js';
import { kubectl, kubectlOk, type KubectlResult } from '../support/kubectl.js';

const EXAMPLES = join(repoRoot, 'examples');

interface Example {
  dir: string;
  namespace: string;
  /** kind/name of every object the example declares, Namespace included. */
  objects: string[];
}

/** Kinds without a namespace; the example's other objects must all be in its namespace. */
const CLUSTER_SCOPED = new Set(['Namespace', 'GatewayClass']);

const examples: Example[] = [
  {
    dir: 'bookstore',
    namespace: 'bookstore',
    objects: [
      'Namespace/bookstore',
      'Service/bookstore',
      'Service/bookstore-v1',
      'Service/bookstore-v2',
      'Service/bookstore-v3',
      'MetricTemplate/osm-request-success-rate',
      'MetricTemplate/osm-request-duration',
      'Rollout/bookstore',
    ],
  },
  {
    dir: 'manual-gate',
    namespace: 'manual-gate',
    objects: ['Namespace/manual-gate', 'Service/web', 'Service/web-v1', 'Service/web-v2', 'Rollout/web'],
  },
  {
    dir: 'flagger-style',
    namespace: 'flagger-style',
    objects: [
      'Namespace/flagger-style',
      'Service/podinfo',
      'Service/podinfo-primary',
      'Service/podinfo-canary',
      'MetricTemplate/osm-request-success-rate',
      'Rollout/podinfo',
    ],
  },
  {
    dir: 'blue-green',
    namespace: 'blue-green',
    objects: [
      'Namespace/blue-green',
      'Service/app',
      'Service/app-blue',
      'Service/app-green',
      'MetricTemplate/osm-request-success-rate',
      'Rollout/app',
    ],
  },
  {
    dir: 'gateway-api-mesh',
    namespace: 'gateway-api-mesh',
    objects: [
      'Namespace/gateway-api-mesh',
      'Service/bookstore',
      'Service/bookstore-v1',
      'Service/bookstore-v2',
      'Service/bookstore-v3',
      'MetricTemplate/osm-request-success-rate',
      'MetricTemplate/osm-request-duration',
      'HTTPRoute/bookstore',
      'Rollout/bookstore',
    ],
  },
  {
    dir: 'gateway-api-ingress',
    namespace: 'gateway-api-ingress',
    objects: [
      'Namespace/gateway-api-ingress',
      'GatewayClass/eg',
      'Gateway/edge',
      'Service/shop',
      'Service/shop-v1',
      'Service/shop-v2',
      'HTTPRoute/shop',
      'Rollout/shop',
    ],
  },
  {
    // No Rollout: the shared MetricTemplate catalogue (run against each mesh's series in mesh-templates.test.ts).
    dir: 'metric-templates',
    namespace: 'perch-templates',
    objects: [
      'Namespace/perch-templates',
      'MetricTemplate/osm-request-success-rate',
      'MetricTemplate/osm-request-duration',
      'MetricTemplate/linkerd-request-success-rate',
      'MetricTemplate/linkerd-request-duration',
      'MetricTemplate/istio-request-success-rate',
      'MetricTemplate/istio-request-duration',
    ],
  },
];

interface Listed {
  items: { kind: string; metadata: { name: string; namespace?: string; generation?: number } }[];
}

/**
 * Deletes the namespace; with `wait`, returns once it is gone, so the next apply starts from nothing.
 * (The namespace controller starts on a deleted namespace only after a 5 s grace period: a wait that
 * nothing needs is 5 s lost.)
 */
async function deleteNamespace(kubeconfig: string, namespace: string, wait = true): Promise<void> {
  await kubectl(kubeconfig, [
    'delete',
    'namespace',
    namespace,
    '--ignore-not-found',
    wait ? '--timeout=90s' : '--wait=false',
  ]);
}

/** Deletes what an example declares outside its namespace (a GatewayClass). */
async function deleteClusterScoped(kubeconfig: string, example: Example): Promise<void> {
  for (const o of example.objects.filter((o) => o.startsWith('GatewayClass/'))) {
    await kubectl(kubeconfig, ['delete', o.toLowerCase(), '--ignore-not-found']);
  }
}

/** kubectl's answer to an example's first apply, and what `get -f` lists after it and after a second. */
interface AppliedTwice {
  applied: KubectlResult;
  /** Undefined when the first apply failed. */
  listed?: Listed;
  after?: Listed;
}

/** An example applied to an empty namespace, then again; deleted after (without waiting) whatever happens. */
async function applyTwice(kubeconfig: string, example: Example): Promise<AppliedTwice> {
  const dir = join(EXAMPLES, example.dir);
  const list = async () =>
    JSON.parse(await kubectlOk(kubeconfig, ['get', '-f', `${dir}/`, '-o', 'json'])) as Listed;
  await deleteNamespace(kubeconfig, example.namespace);
  try {
    const applied = await kubectl(kubeconfig, ['apply', '-f', `${dir}/`]);
    if (applied.code !== 0) return { applied };
    const listed = await list();
    await kubectlOk(kubeconfig, ['apply', '-f', `${dir}/`]);
    return { applied, listed, after: await list() };
  } finally {
    // Not awaited: nothing here needs it gone, and a test that applies it again first waits for that.
    await deleteNamespace(kubeconfig, example.namespace, false);
    await deleteClusterScoped(kubeconfig, example);
  }
}

describe('examples/ (kubectl apply against the sandbox)', function () {
  this.timeout(180_000);
  let kubeconfig: string;

  before(async () => {
    kubeconfig = (await sharedControlPlane()).kubeconfig;
  });

  it('covers every directory of examples/, each with a README.md', () => {
    const dirs = readdirSync(EXAMPLES, { withFileTypes: true }).filter((d) => d.isDirectory());
    expect(dirs.map((d) => d.name).sort()).to.deep.equal(examples.map((e) => e.dir).sort());
    for (const d of dirs) expect(readdirSync(join(EXAMPLES, d.name))).to.include('README.md');
  });

  /**
   * Each example's apply, the objects listed after, and the same after applying it again, each in its
   * own namespace; the examples go side by side from before(), and each test checks its own.
   */
  const appliedTwice = new Map<string, Promise<AppliedTwice>>();
  before(() => {
    for (const example of examples) {
      const run = applyTwice(kubeconfig, example);
      // Awaited by its test; a failure before then is that test's, not an unhandled rejection.
      run.catch(() => undefined);
      appliedTwice.set(example.dir, run);
    }
  });

  for (const example of examples) {
    it(`${example.dir}: applies cleanly and every object exists`, async () => {
      const { applied, listed, after } = await appliedTwice.get(example.dir)!;
      expect(applied.stderr, 'kubectl apply stderr').to.equal('');
      expect(applied.code).to.equal(0);
      expect(listed!.items.map((o) => `${o.kind}/${o.metadata.name}`)).to.have.members(example.objects);
      for (const o of listed!.items.filter((i) => !CLUSTER_SCOPED.has(i.kind))) {
        expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).to.equal(example.namespace);
      }
      // Applying again must not start a new run: a Rollout's run restarts when its generation changes.
      // (kubectl may still say "configured": it resends lists whose items the server defaulted.)
      const generations = after!.items.filter((o) => o.kind === 'Rollout').map((o) => o.metadata.generation);
      const rollouts = example.objects.filter((o) => o.startsWith('Rollout/'));
      expect(generations).to.deep.equal(rollouts.map(() => 1));
    });
  }

  describe('manual-gate and gateway-api-ingress under perch controller (no Prometheus needed)', () => {
    let controller: ControllerProcess | undefined;
    const ns = 'manual-gate';
    const get = (jsonpath: string) =>
      kubectlOk(kubeconfig, ['-n', ns, 'get', 'rollout', 'web', '-o', `jsonpath=${jsonpath}`]);

    before(async () => {
      // Both namespaces gone (the apply tests above leave them terminating) side by side, not one per test.
      await Promise.all([ns, 'gateway-api-ingress'].map((n) => deleteNamespace(kubeconfig, n)));
      // No metric is ever queried: nothing listens on port 9 (discard), and nothing needs to.
      controller = await startController(kubeconfig, 'http://127.0.0.1:9');
    });
    after(async () => {
      // Delete while the controller runs: its perch.dev/traffic finalizer must be released by it.
      await Promise.all([ns, 'gateway-api-ingress'].map((n) => deleteNamespace(kubeconfig, n)));
      await kubectl(kubeconfig, ['delete', 'gatewayclass', 'eg', '--ignore-not-found']);
      await controller?.stop();
    });

    it('manual-gate: pauses at 20% until perch.dev/resume, then promotes to Succeeded', async () => {
      await deleteNamespace(kubeconfig, ns);
      await kubectlOk(kubeconfig, ['apply', '-f', `${join(EXAMPLES, 'manual-gate')}/`]);
      const phaseIs = (want: string) => async () =>
        (await get('{.status.phase}')) === want ? true : undefined;

      await waitFor(phaseIs('Paused'), { what: 'Rollout web Paused', timeoutMs: 30_000 });
      expect(await get('{.status.pauseReason} {.status.canaryWeight} {.status.step}')).to.equal(
        'PauseStep 20 2/3',
      );
      const split = await kubectlOk(kubeconfig, [
        '-n',
        ns,
        'get',
        'trafficsplits.split.smi-spec.io',
        'web',
        '-o',
        'jsonpath={range .spec.backends[*]}{.service}={.weight} {end}',
      ]);
      expect(split.trim()).to.equal('web-v1=80 web-v2=20');

      await kubectlOk(kubeconfig, ['-n', ns, 'annotate', 'rollout', 'web', 'perch.dev/resume=true']);
      await waitFor(phaseIs('Succeeded'), { what: 'Rollout web Succeeded', timeoutMs: 30_000 });
      expect(await get('{.status.canaryWeight}')).to.equal('100');
      // The one-shot annotation was consumed.
      expect(await get('{.metadata.annotations.perch\\.dev/resume}')).to.equal('');
    });

    it("gateway-api-ingress: the Gateway's HTTPRoute carries 10, 50, then 100 in both rules, the person's matches, filters, hostnames and parentRefs byte-identical", async () => {
      const ingress = 'gateway-api-ingress';
      const example = readExample(ingress);
      await deleteNamespace(kubeconfig, ingress);
      const k = (...args: string[]) => kubectlOk(kubeconfig, ['-n', ingress, ...args]);
      // The route as applied, before any Rollout names it (the controller is already running).
      for (const f of example.setupFiles) await kubectlOk(kubeconfig, ['apply', '-f', f]);
      const applied = JSON.parse(await k('get', 'httproute', 'shop', '-o', 'json')) as IngressRoute;
      await kubectlOk(kubeconfig, ['apply', '-f', '-'], JSON.stringify(example.rollout));

      const rollout = (jsonpath: string) => k('get', 'rollout', 'shop', '-o', `jsonpath=${jsonpath}`);
      const pausedAt = (weight: number) => async () =>
        (await rollout('{.status.phase} {.status.canaryWeight}')) === `Paused ${weight}` ? true : undefined;
      // Each rule's backendRefs as name=weight, what a person reads with kubectl.
      const weights = async () =>
        (
          await k(
            'get',
            'httproute',
            'shop',
            '-o',
            'jsonpath={range .spec.rules[*]}{.name}:{range .backendRefs[*]} {.name}={.weight}{end};{end}',
          )
        )
          .split(';')
          .filter(Boolean);

      await waitFor(pausedAt(10), { what: 'Rollout shop Paused at 10', timeoutMs: 30_000 });
      expect(await rollout('{.status.pauseReason} {.status.step}')).to.equal('PauseStep 2/5');
      expect(await weights()).to.deep.equal([
        'legacy-api: shop-v1=90 shop-v2=10',
        'storefront: shop-v1=90 shop-v2=10',
      ]);
      // No Gateway implementation here writes status.parents: TrafficRouted says nobody accepted the route.
      expect(await rollout('{.status.conditions[?(@.type=="TrafficRouted")].message}')).to.include(
        'no mesh or gateway has accepted HTTPRoute shop yet',
      );

      await k('annotate', 'rollout', 'shop', 'perch.dev/resume=true');
      await waitFor(pausedAt(50), { what: 'Rollout shop Paused at 50', timeoutMs: 30_000 });
      expect(await weights()).to.deep.equal([
        'legacy-api: shop-v1=50 shop-v2=50',
        'storefront: shop-v1=50 shop-v2=50',
      ]);

      await k('annotate', 'rollout', 'shop', 'perch.dev/resume=true');
      await waitFor(async () => ((await rollout('{.status.phase}')) === 'Succeeded' ? true : undefined), {
        what: 'Rollout shop Succeeded',
        timeoutMs: 30_000,
      });
      expect(await weights()).to.deep.equal([
        'legacy-api: shop-v1=0 shop-v2=100',
        'storefront: shop-v1=0 shop-v2=100',
      ]);

      // Everything of the person's, as the API server serialises it, byte for byte.
      const after = JSON.parse(await k('get', 'httproute', 'shop', '-o', 'json')) as IngressRoute;
      const persons = (r: IngressRoute) =>
        JSON.stringify({
          parentRefs: r.spec.parentRefs,
          hostnames: r.spec.hostnames,
          rules: r.spec.rules.map((rule) => ({
            name: rule.name,
            matches: rule.matches,
            filters: rule.filters,
            // The ref the person wrote, its weight aside: Perch writes only that.
            stable: { ...rule.backendRefs[0], weight: undefined },
          })),
        });
      expect(persons(after)).to.equal(persons(applied));
      expect(after.spec.rules.map((r) => r.matches)).to.deep.equal(applied.spec.rules.map((r) => r.matches));
      expect(JSON.stringify(after.spec.rules[0]!.filters)).to.equal(
        '[{"type":"URLRewrite","urlRewrite":{"path":{"replacePrefixMatch":"/api","type":"ReplacePrefixMatch"}}}]',
      );
      // The canary's ref Perch added: the stable one's port, in the same rule, and nothing else.
      expect(after.spec.rules.map((r) => r.backendRefs[1])).to.deep.equal([
        { group: '', kind: 'Service', name: 'shop-v2', port: 8080, weight: 100 },
        { group: '', kind: 'Service', name: 'shop-v2', port: 8080, weight: 100 },
      ]);
    });
  });
});

interface IngressRoute {
  spec: {
    parentRefs: unknown;
    hostnames: unknown;
    rules: { name: string; matches: unknown; filters: unknown; backendRefs: Record<string, unknown>[] }[];
  };
}
