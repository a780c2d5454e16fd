// The HTTPRoute router against the suite's real API server with the official Gateway API CRDs (v1, v1beta1).
// Requests are counted at a fault proxy (no faults) in front of it: a write Perch should not send is visible.
import {
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { expect } from 'chai';
import type { GatewayApiVersion, Rollout } from '../../src/api/v1alpha1.js';
import { readRoute } from '../../src/k8s/httproute/read.js';
import { HttpRouteRouter } from '../../src/k8s/httproute/router.js';
import type { BackendRef, Rule } from '../../src/k8s/httproute/rules.js';
import { sendJsonPatch, type HttpRouteTarget, type Router } from '../../src/k8s/router.js';
import { Routers } from '../../src/k8s/routers.js';
import type { FaultRecord } from '../../src/sandbox/faults/proxy.js';
import { sharedControlPlane, testNamespace } from '../support/control-plane.js';
import { proxyInFront, type ProxyInFront } from '../support/fault-proxy.js';

interface AnyRoute extends KubernetesObject {
  spec: { parentRefs?: object[]; hostnames?: string[]; rules: Rule[] };
  status?: object;
}

const GROUP = 'gateway.networking.k8s.io';
const ROLLOUTS = { group: 'perch.dev', version: 'v1alpha1', plural: 'rollouts' } as const;
const jsonPatch = setHeaderOptions('Content-Type', PatchStrategy.JsonPatch);
const PORT = 8080;

/** The weights of a rule's refs to stable and canary, in order (other refs left out). */
const weights = (rule: Rule | undefined) =>
  (rule?.backendRefs ?? [])
    .filter((r) => r.name === 'stable' || r.name === 'canary')
    .map((r) => [r.name, r.weight]);

/** A spec as JSON with the stable and canary weights of the chosen rules masked: all Perch may change. */
function masked(spec: AnyRoute['spec'], chosen: number[] = [0]): string {
  const copy = structuredClone(spec);
  for (const i of chosen) {
    for (const ref of copy.rules[i]?.backendRefs ?? []) {
      if (ref.name === 'stable' || ref.name === 'canary') (ref as { weight: unknown }).weight = '<masked>';
    }
  }
  return JSON.stringify(copy);
}

describe('HTTPRoute router on the real API server (official Gateway API CRDs)', function () {
  this.timeout(60_000);
  let kc: KubeConfig;
  let front: ProxyInFront;
  let custom: CustomObjectsApi;
  let router: HttpRouteRouter;

  before(async () => {
    const cp = await sharedControlPlane();
    kc = cp.kubeConfig();
    front = await proxyInFront(cp);
    custom = kc.makeApiClient(CustomObjectsApi);
    router = new HttpRouteRouter(front.kubeConfig);
  });

  after(async () => {
    await front?.proxy.close();
  });

  /** What reaches the API server (through the proxy) while `fn` runs. */
  async function requestsDuring<T>(fn: () => Promise<T>): Promise<{ result: T; requests: FaultRecord[] }> {
    const start = front.proxy.records().length;
    const result = await fn();
    return { result, requests: front.proxy.records().slice(start) };
  }

  /** A namespace with the Services stable, canary, root and legacy, and a Rollout "web" to own things. */
  async function world(prefix: string, version: GatewayApiVersion = `${GROUP}/v1`) {
    const namespace = await testNamespace(kc, prefix);
    const core = kc.makeApiClient(CoreV1Api);
    for (const name of ['stable', 'canary', 'root', 'legacy']) {
      // Headless: the suite's service IP range is small, and nothing here needs a cluster IP.
      await core.createNamespacedService({
        namespace,
        body: {
          metadata: { name },
          spec: { clusterIP: 'None', ports: [{ port: PORT }], selector: { app: name } },
        },
      });
    }
    const rollout = (await custom.createNamespacedCustomObject({
      ...ROLLOUTS,
      namespace,
      body: {
        apiVersion: 'perch.dev/v1alpha1',
        kind: 'Rollout',
        metadata: { name: 'web' },
        spec: {
          service: 'root',
          stableService: 'stable',
          canaryService: 'canary',
          trafficRouting: { gatewayAPI: { apiVersion: version } },
          steps: [{ setWeight: 10 }],
        },
      },
    })) as Rollout;
    const target: HttpRouteTarget = {
      kind: 'HTTPRoute',
      namespace,
      name: 'web',
      rootService: 'root',
      stableService: 'stable',
      canaryService: 'canary',
      apiVersion: version,
      rollout: { name: 'web', uid: rollout.metadata!.uid! },
      stablePort: PORT,
    };
    const routes = { group: GROUP, version: version.split('/')[1]!, plural: 'httproutes', namespace };
    return {
      namespace,
      target,
      getRoute: (name = 'web') => custom.getNamespacedCustomObject({ ...routes, name }) as Promise<AnyRoute>,
      /** Someone else's edit of the route `web`: a JSON patch. */
      editRoute: (ops: object[]) =>
        custom.patchNamespacedCustomObject({ ...routes, name: 'web', body: ops }, jsonPatch),
      createRoute: (body: object) =>
        custom.createNamespacedCustomObject({ ...routes, body }) as Promise<AnyRoute>,
    };
  }

  /** A person's route: header match, filters on the rule and on the stable ref, a rule of its own, two parents. */
  function usersRoute(
    version: string,
    annotations: Record<string, string> = { 'perch.dev/managed-by': 'web' },
  ) {
    return {
      apiVersion: `${GROUP}/${version}`,
      kind: 'HTTPRoute',
      metadata: { name: 'web', annotations: { ...annotations, team: 'checkout' } },
      spec: {
        parentRefs: [
          { name: 'public', sectionName: 'http' },
          { group: '', kind: 'Service', name: 'root', port: PORT },
        ],
        hostnames: ['web.example.com'],
        rules: [
          {
            name: 'api',
            matches: [
              { path: { type: 'PathPrefix', value: '/api' }, headers: [{ name: 'x-beta', value: 'yes' }] },
            ],
            filters: [
              {
                type: 'RequestHeaderModifier',
                requestHeaderModifier: { add: [{ name: 'x-via', value: 'web' }] },
              },
            ],
            backendRefs: [
              {
                name: 'stable',
                port: PORT,
                filters: [
                  {
                    type: 'RequestHeaderModifier',
                    requestHeaderModifier: { set: [{ name: 'x-version', value: 'stable' }] },
                  },
                ],
              },
              { name: 'legacy', port: PORT, weight: 0 },
            ],
          },
          { name: 'static', backendRefs: [{ name: 'legacy', port: PORT, weight: 3 }] },
        ],
      },
    };
  }

  it('is the router the factory gives for an HTTPRoute target', async () => {
    const w = await world('httproute-factory');
    const chosen = new Routers(front.kubeConfig).for(w.target) as Router<HttpRouteTarget>;
    expect(chosen).to.be.instanceOf(HttpRouteRouter);
    expect(chosen.resource(w.target)).to.deep.equal({
      apiVersion: `${GROUP}/v1`,
      kind: 'HTTPRoute',
      plural: 'httproutes',
    });
  });

  for (const version of ['v1', 'v1beta1'] as const) {
    it(`${version}: creates a one-rule route with the root Service as parent, then routes 90/10, 50/50, 0/100`, async () => {
      const w = await world(`httproute-create-${version}`, `${GROUP}/${version}`);
      const path = `/apis/${GROUP}/${version}/namespaces/${w.namespace}/httproutes`;

      const created = await requestsDuring(() => router.setWeights(w.target, 0, undefined));
      expect(created.result).to.include({ ok: true, outcome: 'created' });
      expect(created.requests.map((r) => [r.method, r.path.split('?')[0]])).to.deep.equal([['POST', path]]);
      let route = await w.getRoute();
      // The object as made, so a write that follows in the same reconcile carries its resourceVersion.
      expect(created.result.ok && created.result.created?.metadata?.resourceVersion).to.equal(
        route.metadata?.resourceVersion,
      );
      expect(route.apiVersion).to.equal(`${GROUP}/${version}`);
      expect(route.spec.parentRefs).to.deep.equal([{ group: '', kind: 'Service', name: 'root' }]);
      expect(route.spec.rules).to.have.length(1);
      expect(route.spec.rules[0]!.backendRefs).to.deep.equal([
        { group: '', kind: 'Service', name: 'stable', port: PORT, weight: 100 },
        { group: '', kind: 'Service', name: 'canary', port: PORT, weight: 0 },
      ]);
      expect(route.metadata?.ownerReferences).to.deep.equal([
        {
          apiVersion: 'perch.dev/v1alpha1',
          kind: 'Rollout',
          name: 'web',
          uid: w.target.rollout.uid,
          controller: true,
          blockOwnerDeletion: true,
        },
      ]);
      expect(route.metadata?.annotations).to.deep.equal({
        'perch.dev/managed-by': 'web',
        'perch.dev/routed-services': 'stable,canary',
        'perch.dev/canary-weight': '0',
      });
      expect(readRoute(route, w.target)).to.deep.equal({
        canaryWeight: 0,
        asPlanned: true,
        lastWritten: 0,
        owned: 'owner',
        reported: 'no mesh or gateway has accepted HTTPRoute web yet',
      });
      const createdSpec = masked(route.spec);

      for (const weight of [10, 50, 100]) {
        const patched = await requestsDuring(() => router.setWeights(w.target, weight, route));
        expect(patched.result, `canary ${weight}`).to.deep.equal({ ok: true, outcome: 'patched' });
        expect(patched.requests.map((r) => [r.method, r.path.split('?')[0]])).to.deep.equal([
          ['PATCH', `${path}/web`],
        ]);
        route = await w.getRoute();
        expect(weights(route.spec.rules[0])).to.deep.equal([
          ['stable', 100 - weight],
          ['canary', weight],
        ]);
        expect(masked(route.spec), `spec at canary ${weight}`).to.equal(createdSpec);
        expect(readRoute(route, w.target)).to.include({
          asPlanned: true,
          canaryWeight: weight,
          lastWritten: weight,
          owned: 'owner',
        });
      }
    });
  }

  it("changes only the two weights of a person's route (matches, filters, other refs, rules and parents kept)", async () => {
    const w = await world('httproute-users');
    await w.createRoute(usersRoute('v1'));
    let route = await w.getRoute();
    const original = structuredClone(route.spec);
    expect(readRoute(route, w.target)).to.include({ canaryWeight: 0, asPlanned: false, owned: 'annotated' });

    // The canary ref is added once, with the stable ref's port (and group and kind as the server stored them).
    const withCanary = structuredClone(original);
    withCanary.rules[0]!.backendRefs!.push({
      group: '',
      kind: 'Service',
      name: 'canary',
      port: PORT,
      weight: 0,
    });
    for (const weight of [10, 50, 100, 0]) {
      const r = await router.setWeights(w.target, weight, route);
      expect(r, `canary ${weight}`).to.deep.equal({ ok: true, outcome: 'patched' });
      route = await w.getRoute();
      const refs = route.spec.rules[0]!.backendRefs!;
      expect(refs.map((ref: BackendRef) => [ref.name, ref.weight])).to.deep.equal([
        ['stable', 100 - weight],
        ['legacy', 0],
        ['canary', weight],
      ]);
      expect(masked(route.spec), `spec at canary ${weight}`).to.equal(masked(withCanary));
      expect(route.metadata?.annotations).to.deep.equal({
        'perch.dev/managed-by': 'web',
        team: 'checkout',
        'perch.dev/routed-services': 'stable,canary',
        'perch.dev/canary-weight': String(weight),
      });
      expect(readRoute(route, w.target)).to.include({ asPlanned: true, canaryWeight: weight });
    }
    // Adopted, not taken over: no ownerReference (deleting the Rollout must not delete the person's route).
    expect(route.metadata?.ownerReferences).to.equal(undefined);
    // The rule chosen by name writes the same rule.
    const byName = { ...w.target, rules: ['api'] };
    expect(await router.setWeights(byName, 30, route)).to.deep.equal({ ok: true, outcome: 'patched' });
    route = await w.getRoute();
    expect(weights(route.spec.rules[0])).to.deep.equal([
      ['stable', 70],
      ['canary', 30],
    ]);
    expect(masked(route.spec)).to.equal(masked(withCanary));
  });

  it('adds no canary ref at 0, and adds one at a weight with the port of the stable ref', async () => {
    const w = await world('httproute-add-canary');
    const body = usersRoute('v1');
    body.spec.rules[0]!.backendRefs[0]!.port = 9090;
    await w.createRoute(body);
    let route = await w.getRoute();
    expect(await router.setWeights(w.target, 0, route)).to.deep.equal({ ok: true, outcome: 'patched' });
    route = await w.getRoute();
    expect(route.spec.rules[0]!.backendRefs!.map((r: BackendRef) => [r.name, r.weight])).to.deep.equal([
      ['stable', 100],
      ['legacy', 0],
    ]);
    expect(await router.setWeights(w.target, 20, route)).to.deep.equal({ ok: true, outcome: 'patched' });
    route = await w.getRoute();
    expect(route.spec.rules[0]!.backendRefs![2]).to.deep.equal({
      group: '',
      kind: 'Service',
      name: 'canary',
      port: 9090,
      weight: 20,
    });
  });

  it("sends nothing at all when the route already routes so and says so ('unchanged')", async () => {
    const w = await world('httproute-unchanged');
    await w.createRoute(usersRoute('v1'));
    expect(await router.setWeights(w.target, 50, await w.getRoute())).to.deep.equal({
      ok: true,
      outcome: 'patched',
    });
    const route = await w.getRoute();
    for (let i = 0; i < 3; i++) {
      const again = await requestsDuring(() => router.setWeights(w.target, 50, route));
      expect(again.result).to.deep.equal({ ok: true, outcome: 'unchanged' });
      expect(again.requests, 'requests for an unchanged route').to.deep.equal([]);
    }
    expect((await w.getRoute()).metadata?.resourceVersion).to.equal(route.metadata?.resourceVersion);
  });

  describe('a concurrent edit between read and write', () => {
    const edits: [string, (canaryIndex: number) => object[], (route: AnyRoute) => unknown][] = [
      [
        'a weight',
        (canary) => [{ op: 'replace', path: `/spec/rules/0/backendRefs/${canary}/weight`, value: 33 }],
        (route) => weights(route.spec.rules[0]),
      ],
      [
        "a filter of the stable ref's",
        () => [
          {
            op: 'add',
            path: '/spec/rules/0/backendRefs/0/filters/0/requestHeaderModifier/remove',
            value: ['x-debug'],
          },
        ],
        (route) => route.spec.rules[0]!.backendRefs![0]!.filters,
      ],
      [
        'a backendRef added',
        () => [
          { op: 'add', path: '/spec/rules/0/backendRefs/-', value: { name: 'root', port: PORT, weight: 1 } },
        ],
        (route) => route.spec.rules[0]!.backendRefs!.map((r: BackendRef) => r.name),
      ],
    ];

    for (const [what, edit, edited] of edits) {
      it(`of ${what}: the patch fails its test (a conflict), the edit is kept; a fresh read then writes`, async () => {
        const w = await world('httproute-concurrent');
        await w.createRoute(usersRoute('v1'));
        expect(await router.setWeights(w.target, 10, await w.getRoute())).to.deep.equal({
          ok: true,
          outcome: 'patched',
        });
        const stale = await w.getRoute();
        await w.editRoute(edit(2));
        const theirs = await w.getRoute();

        const r = await requestsDuring(() => router.setWeights(w.target, 50, stale));
        expect(r.result).to.have.nested.property('error.kind', 'conflict');
        expect(r.requests.map((x) => x.method)).to.deep.equal(['PATCH']);
        const after = await w.getRoute();
        expect(after.metadata?.resourceVersion).to.equal(theirs.metadata?.resourceVersion);
        expect(after.spec).to.deep.equal(theirs.spec);

        expect(await router.setWeights(w.target, 50, after)).to.deep.equal({ ok: true, outcome: 'patched' });
        const fresh = await w.getRoute();
        expect(weights(fresh.spec.rules[0])).to.deep.equal([
          ['stable', 50],
          ['canary', 50],
        ]);
        if (what !== 'a weight') expect(edited(fresh)).to.deep.equal(edited(theirs));
        expect(masked(fresh.spec)).to.equal(masked(theirs.spec));
      });
    }

    it('elsewhere (a label, the other rule) does not stand in the way, and is kept', async () => {
      const w = await world('httproute-concurrent-elsewhere');
      await w.createRoute(usersRoute('v1'));
      const stale = await w.getRoute();
      await w.editRoute([
        { op: 'add', path: '/metadata/labels', value: { tier: 'front' } },
        { op: 'replace', path: '/spec/rules/1/backendRefs/0/weight', value: 7 },
      ]);
      expect(await router.setWeights(w.target, 10, stale)).to.deep.equal({ ok: true, outcome: 'patched' });
      const after = await w.getRoute();
      expect(after.metadata?.labels).to.deep.equal({ tier: 'front' });
      expect(after.spec.rules[1]!.backendRefs![0]!.weight).to.equal(7);
      expect(weights(after.spec.rules[0])).to.deep.equal([
        ['stable', 90],
        ['canary', 10],
      ]);
    });
  });

  it('refuses a route that is not its own with NotOwned, sending nothing', async () => {
    const w = await world('httproute-foreign');
    await w.createRoute(usersRoute('v1', {}));
    await w.createRoute({
      ...usersRoute('v1'),
      metadata: { name: 'other', annotations: { 'perch.dev/managed-by': 'another' } },
    });
    for (const name of ['web', 'other']) {
      const route = await w.getRoute(name);
      const target = { ...w.target, name };
      expect(readRoute(route, target).owned).to.equal('foreign');
      for (const call of [() => router.setWeights(target, 10, route), () => router.release(target, route)]) {
        const refused = await requestsDuring(call);
        expect(refused.result).to.have.nested.property('error.kind', 'notOwned');
        expect(refused.result).to.have.nested.property('error.reason', 'NotOwned');
        expect(refused.requests).to.deep.equal([]);
      }
      expect((await w.getRoute(name)).metadata?.resourceVersion).to.equal(route.metadata?.resourceVersion);
    }
  });

  it('releases a route: its ownerReference gone, perch.dev/released-from set, weights kept', async () => {
    const w = await world('httproute-release');
    await router.setWeights(w.target, 0);
    await router.setWeights(w.target, 100, await w.getRoute());
    const keeper = await kc
      .makeApiClient(CoreV1Api)
      .createNamespacedConfigMap({ namespace: w.namespace, body: { metadata: { name: 'keeper' } } });
    const other = { apiVersion: 'v1', kind: 'ConfigMap', name: 'keeper', uid: keeper.metadata!.uid! };
    await w.editRoute([{ op: 'add', path: '/metadata/ownerReferences/0', value: other }]);
    const before = await w.getRoute();
    expect(await router.release(w.target, before)).to.deep.equal({ ok: true, outcome: 'patched' });
    const after = await w.getRoute();
    expect(after.metadata?.ownerReferences).to.deep.equal([other]);
    expect(after.metadata?.annotations).to.deep.equal({
      'perch.dev/managed-by': 'web',
      'perch.dev/routed-services': 'stable,canary',
      'perch.dev/canary-weight': '100',
      'perch.dev/released-from': 'web',
    });
    expect(weights(after.spec.rules[0])).to.deep.equal([
      ['stable', 0],
      ['canary', 100],
    ]);
    const noop = await requestsDuring(() => router.release(w.target, after));
    expect(noop.result).to.deep.equal({ ok: true, outcome: 'unchanged' });
    expect(noop.requests).to.deep.equal([]);
  });

  it('classifies a create that finds the route already there as a conflict (the cache was behind)', async () => {
    const w = await world('httproute-exists');
    expect(await router.setWeights(w.target, 0)).to.include({ ok: true, outcome: 'created' });
    const again = await router.setWeights(w.target, 10);
    expect(again).to.have.nested.property('error.kind', 'conflict');
    expect(again).to.have.nested.property('error.code', 409);
  });

  it('classifies a patch the schema refuses as invalid, not as a conflict', async () => {
    const w = await world('httproute-invalid');
    await router.setWeights(w.target, 0);
    const resource = router.resource(w.target);
    for (const value of [-1, 2_000_000, 'ten']) {
      const ops = [{ op: 'replace', path: '/spec/rules/0/backendRefs/1/weight', value }];
      const r = await sendJsonPatch(
        front.kubeConfig.makeApiClient(CustomObjectsApi),
        resource,
        w.target,
        ops,
        'perch-test',
      );
      expect(r, `weight ${JSON.stringify(value)}`).to.have.nested.property('error.kind', 'invalid');
      expect(r).to.have.nested.property('error.code', 422);
      expect(r).to.have.nested.property('error.message').that.contains('weight');
    }
    expect(weights((await w.getRoute()).spec.rules[0])).to.deep.equal([
      ['stable', 100],
      ['canary', 0],
    ]);
  });

  it('refuses a target its route cannot carry before sending anything', async () => {
    const w = await world('httproute-problem');
    await w.createRoute(usersRoute('v1'));
    const route = await w.getRoute();
    for (const rules of [[5], ['static'], ['nope']]) {
      const target = { ...w.target, rules };
      expect(router.problem(target, route)).to.be.a('string');
      const r = await requestsDuring(() => router.setWeights(target, 10, route));
      expect(r.result).to.have.nested.property('error.kind', 'invalid');
      expect(r.requests).to.deep.equal([]);
    }
    const halfway = await requestsDuring(() => router.setWeights(w.target, 10.5, route));
    expect(halfway.result).to.have.nested.property('error.kind', 'invalid');
    expect(halfway.requests).to.deep.equal([]);
  });
});
