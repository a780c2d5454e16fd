// Rollouts over a Gateway API HTTPRoute where it differs from SMI: v1beta1, what the route's parents report
// in TrafficRouted, a cluster without the Gateway API CRDs, and a person's edit landing between Perch's read
// and its write (held open in the fault proxy), which Perch's `test` operations refuse to overwrite.
import {
  ApiextensionsV1Api,
  PatchStrategy,
  setHeaderOptions,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { expect } from 'chai';
import type { Rollout } from '../../src/api/v1alpha1.js';
import { installCrds } from '../../src/sandbox/control-plane/crds.js';
import { prepareGatewayApiCrds } from '../../src/sandbox/control-plane/gateway-api.js';
import { waitFor } from '../../src/sandbox/wait.js';
import { sharedControlPlane } from '../support/control-plane.js';
import { startController } from '../support/controller-process.js';
import { useController } from '../support/controller-suite.js';
import { proxyInFront } from '../support/fault-proxy.js';
import { analysis, canaryTraffic, RolloutEnv, sharedPrometheus } from '../support/rollout-env.js';
import { HTTPROUTE, personsRoute } from '../support/route-under-test.js';

const condition = (r: Rollout, type: string) => r.status?.conditions?.find((c) => c.type === type);
const HEALTHY_RUN = {
  steps: [{ setWeight: 30 }, { analysis: { iterations: 1 } }, { setWeight: 100 }],
  analysis: analysis(),
};
const ROUTE = { group: HTTPROUTE.group, plural: HTTPROUTE.plural };

interface RuleShape {
  backendRefs?: { name?: string; weight?: number }[];
}
const weightsOf = (route: KubernetesObject | undefined, rule = 0) =>
  Object.fromEntries(
    ((route as { spec?: { rules?: RuleShape[] } })?.spec?.rules?.[rule]?.backendRefs ?? []).map((b) => [
      b.name,
      b.weight ?? 1,
    ]),
  );

describe('Rollouts over an HTTPRoute (sandbox + real Prometheus)', function () {
  this.timeout(180_000);
  const suite = useController({ router: 'gatewayapi' });

  it('drives a gateway.networking.k8s.io/v1beta1 HTTPRoute (Linkerd 2.15-2.17) through one healthy run', async () => {
    const e = await suite.env('httproute-v1beta1');
    await canaryTraffic(e);
    await e.createRollout('web', {
      ...HEALTHY_RUN,
      trafficRouting: { gatewayAPI: { apiVersion: 'gateway.networking.k8s.io/v1beta1' } },
    });
    await e.phase('web', 'Succeeded');
    expect(e.weights('web')).to.deep.equal([0, 30, 100]);
    const route = (await e.api.getNamespacedCustomObject({
      ...ROUTE,
      version: 'v1beta1',
      namespace: e.ns,
      name: 'web',
    })) as KubernetesObject & { spec: { parentRefs: unknown[] } };
    expect(route.apiVersion).to.equal('gateway.networking.k8s.io/v1beta1');
    expect(route.spec.parentRefs).to.deep.equal([{ group: '', kind: 'Service', name: 'web' }]);
    expect(weightsOf(route)).to.deep.equal({ 'web-v1': 0, 'web-v2': 100 });
  });

  it("shows what the route's parents report (status.parents) in TrafficRouted", async () => {
    const e = await suite.env('httproute-parents');
    await canaryTraffic(e);
    await e.createRollout('web', HEALTHY_RUN);
    const done = await e.phase('web', 'Succeeded');
    const before = condition(done, 'TrafficRouted');
    expect(before).to.include({ status: 'True', reason: 'Routed' });
    // A mesh that has not accepted the route (its parent Service has no mesh sidecar, say).
    const now = new Date().toISOString();
    const parentCondition = (type: string, status: string, reason: string, message: string) => ({
      type,
      status,
      reason,
      message,
      lastTransitionTime: now,
      observedGeneration: 1,
    });
    await e.api.patchNamespacedCustomObjectStatus(
      {
        ...ROUTE,
        version: 'v1',
        namespace: e.ns,
        name: 'web',
        body: {
          status: {
            parents: [
              {
                parentRef: { group: '', kind: 'Service', name: 'web', port: 80 },
                controllerName: 'example.com/mesh',
                conditions: [
                  parentCondition('Accepted', 'False', 'NotAllowedByListeners', 'no sidecar on web'),
                  parentCondition('ResolvedRefs', 'True', 'ResolvedRefs', ''),
                ],
              },
            ],
          },
        },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    const shown = await e.until(
      'web',
      (r) => (condition(r, 'TrafficRouted')?.message ?? '').includes('example.com/mesh'),
      "TrafficRouted naming the parent's controller",
    );
    const message = condition(shown, 'TrafficRouted')?.message ?? '';
    expect(message).to.contain('Accepted=False').and.to.contain('NotAllowedByListeners');
    expect(message).to.contain('ResolvedRefs=True');
  });

  it('chosen rules the route does not have make the Rollout Invalid (InvalidRoute), naming the field; nothing is written', async () => {
    const e = await suite.env('httproute-invalid-rules');
    await canaryTraffic(e);
    await e.createRoute(personsRoute('web', 'web'));
    await e.createRollout('web', { ...HEALTHY_RUN, trafficRouting: { gatewayAPI: { rules: ['checkout'] } } });
    const invalid = await e.phase('web', 'Invalid');
    expect(condition(invalid, 'Valid')).to.include({ status: 'False', reason: 'InvalidRoute' });
    expect(condition(invalid, 'Valid')?.message)
      .to.contain('spec.trafficRouting.gatewayAPI')
      .and.to.contain('checkout');
    expect(e.splits.seen.filter((v) => v.name === 'web').map((v) => v.type)).to.deep.equal(['add']);
    // Fixed by an edit naming a rule that exists (the person's route has one called default): it runs.
    await e.patchSpec('web', { trafficRouting: { gatewayAPI: { rules: ['default'] } } });
    await e.phase('web', 'Succeeded');
    // Only the chosen rule moved: the beta testers' rule still sends everything to stable.
    const route = await e.route('web');
    expect(weightsOf(route, 2)).to.deep.equal({ 'web-v1': 0, 'web-v2': 100, 'web-v3': 0 });
    expect(weightsOf(route, 0)).to.deep.equal({ 'web-v1': 100, 'web-v2': 0, 'web-v3': 0 });
  });

  it('a cluster without the Gateway API CRDs gives Invalid/NotServed; installing them lets the run go on', async () => {
    const cp = await sharedControlPlane();
    const ext = cp.kubeConfig().makeApiClient(ApiextensionsV1Api);
    const name = `${HTTPROUTE.plural}.${HTTPROUTE.group}`;
    const crd = (await prepareGatewayApiCrds()).crds.find((c) => c.metadata?.name === name)!;
    const e = await suite.env('httproute-not-served');
    await canaryTraffic(e);
    await ext.deleteCustomResourceDefinition({ name });
    try {
      await waitFor(
        () =>
          ext
            .readCustomResourceDefinition({ name })
            .then(() => undefined)
            .catch((err: { code?: number }) => (err.code === 404 ? true : undefined)),
        { what: `CRD ${name} gone`, timeoutMs: 60_000, intervalMs: 250 },
      );
      await e.createRollout('web', { ...HEALTHY_RUN, trafficRouting: { gatewayAPI: {} } });
      const reported = await e.until(
        'web',
        (r) => condition(r, 'TrafficRouted')?.reason === 'NotServed',
        'TrafficRouted=False NotServed',
      );
      expect(reported.status?.phase).to.equal('Invalid');
      expect(condition(reported, 'Valid')).to.include({ status: 'False', reason: 'NotServed' });
      expect(condition(reported, 'TrafficRouted')?.message).to.contain('gateway.networking.k8s.io/v1');
    } finally {
      await installCrds(cp.kubeConfig(), [crd]);
    }
    // Served again: the same Rollout becomes valid and runs, with no restart of the controller.
    await e.phase('web', 'Succeeded', 90_000);
    expect(e.weights('web').at(-1)).to.equal(100);
  });
});

describe('a person edits the HTTPRoute between Perch read and write (fault proxy holds the write)', function () {
  this.timeout(180_000);

  it('the held patch fails its test, Perch reads again and routes by name, keeping the edit', async () => {
    const cp = await sharedControlPlane();
    const front = await proxyInFront(cp);
    const controller = await startController(front.kubeconfig, (await sharedPrometheus()).prometheus.url);
    const e = await RolloutEnv.create('httproute-held-write', undefined, 'gatewayapi');
    try {
      await canaryTraffic(e);
      const path = `/namespaces/${e.ns}/httproutes/web`;
      const held = front.proxy.holdNext((method, p) => method === 'PATCH' && p.includes(path));
      await e.createRollout('web', {
        steps: [{ setWeight: 20 }, { pause: {} }, { setWeight: 100 }],
        analysis: analysis(),
      });
      const write = await held;
      // While Perch's write waits, a person puts a new version's backendRef first in the rule: a patch by
      // index without its `test` would now give web-v1's weight to web-v0.
      await e.api.patchNamespacedCustomObject(
        {
          ...ROUTE,
          version: 'v1',
          namespace: e.ns,
          name: 'web',
          body: [
            {
              op: 'add',
              path: '/spec/rules/0/backendRefs/0',
              value: { name: 'web-v0', port: 80, weight: 0 },
            },
          ],
        },
        setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
      );
      expect(await write.release(), 'the held patch is refused: its test no longer holds').to.equal(422);
      await e.until('web', (r) => r.status?.pauseReason === 'PauseStep', 'at 20% in the pause');
      const route = await waitFor(
        async () => {
          const r = await e.route('web');
          return weightsOf(r)['web-v2'] === 20 ? r : undefined;
        },
        { what: 'the route at canary 20', timeoutMs: 30_000, intervalMs: 250 },
      );
      expect(weightsOf(route)).to.deep.equal({ 'web-v0': 0, 'web-v1': 80, 'web-v2': 20, 'web-v3': 0 });
      // The person's own edit is the one change beyond weights the recording watch saw.
      expect(e.routeChanges).to.have.length(1);
      expect(e.routeChanges[0]).to.contain('web-v0');
    } finally {
      e.close();
      await controller.stop();
      await front.proxy.close();
    }
  });
});
