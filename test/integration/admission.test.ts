// Who gets in (SPEC §2, §6): `perch controller` as a child process with --allowed-prometheus-urls and
// --template-namespace, the real API server and the real Prometheus. Nothing outside them is ever used.
import { expect } from 'chai';
import type { MetricSpec, Rollout } from '../../src/api/v1alpha1.js';
import { sharedControlPlane, testNamespace } from '../support/control-plane.js';
import { useController } from '../support/controller-suite.js';
import { together } from '../support/together.js';
import type { RolloutEnv } from '../support/rollout-env.js';
import { analysis, canaryTraffic, sharedPrometheus, SUCCESS_RATE } from '../support/rollout-env.js';

/** A Prometheus no test runs: the default address must not be what makes any run here work. */
const NOWHERE = 'http://127.0.0.1:9';
const STEPS = [{ setWeight: 50 }, { analysis: { iterations: 1 } }, { setWeight: 100 }];

const valid = (r: Rollout) => r.status?.conditions?.find((c) => c.type === 'Valid');

async function createTemplate(e: RolloutEnv, namespace: string, name: string, address?: string) {
  await e.api.createNamespacedCustomObject({
    group: 'perch.dev',
    version: 'v1alpha1',
    namespace,
    plural: 'metrictemplates',
    body: {
      apiVersion: 'perch.dev/v1alpha1',
      kind: 'MetricTemplate',
      metadata: { name },
      spec: { provider: { type: 'prometheus', ...(address ? { address } : {}) }, query: SUCCESS_RATE },
    },
  });
}

/** The TrafficSplit `name` as the API server has it now, or undefined when there is none. */
async function splitOf(e: RolloutEnv, name: string): Promise<unknown> {
  return e.api
    .getNamespacedCustomObject({
      group: 'split.smi-spec.io',
      version: 'v1alpha2',
      namespace: e.ns,
      plural: 'trafficsplits',
      name,
    })
    .catch((err: { code?: number }) => {
      if (err.code === 404) return undefined;
      throw err;
    });
}

/** A Rollout that reaches Succeeded only if its checks pass against the real Prometheus. */
async function expectChecked(e: RolloutEnv, name: string, metrics: string[]): Promise<Rollout> {
  const done = await e.phase(name, 'Succeeded', 90_000);
  for (const metric of metrics) {
    expect(
      done.status?.analysis?.measurements.some((m) => m.metric === metric && m.verdict === 'Pass'),
      `${name}: a passing ${metric} check`,
    ).to.equal(true);
  }
  expect(e.weights(name)).to.deep.equal([0, 50, 100]);
  return done;
}

describe('admission: allowed Prometheus servers and template namespaces (sandbox + real Prometheus)', function () {
  this.timeout(180_000);
  let promUrl = '';
  let catalogue = '';

  describe('a controller watching every namespace', () => {
    const suite = useController({
      prometheusUrl: NOWHERE,
      args: async () => {
        promUrl = (await sharedPrometheus()).prometheus.url;
        catalogue = await testNamespace((await sharedControlPlane()).kubeConfig(), 'catalogue');
        return [
          '--allowed-prometheus-urls',
          `http://127.0.0.1:1,${promUrl}`,
          '--template-namespace',
          catalogue,
        ];
      },
    });
    const env = (prefix: string) => suite.env(prefix);

    // Side by side: they share nothing but the servers, and mostly wait on 1 s checks.
    together((test) => {
      test('reports a Rollout naming a Prometheus outside the allowed prefixes Invalid, and routes nothing for it', async () => {
        const e = await env('prom-not-allowed');
        await canaryTraffic(e);
        // The real Prometheus under another name: reachable, but not a prefix the controller was given.
        const elsewhere = promUrl.replace('127.0.0.1', 'localhost');
        await e.createRollout('web', {
          steps: STEPS,
          analysis: analysis({ prometheus: { address: elsewhere } }),
        });
        const r = await e.phase('web', 'Invalid');
        expect(valid(r)).to.deep.include({ status: 'False', reason: 'PrometheusNotAllowed' });
        expect(valid(r)?.message).to.equal(
          `spec.analysis.prometheus.address: Prometheus ${elsewhere} is not one this controller may query; ` +
            `add it (or a prefix of it) to the controller's --allowed-prometheus-urls, ` +
            `or leave the field out to use --prometheus-url`,
        );
        // Another Rollout of the namespace runs to the end meanwhile: the controller has long been done with
        // this one, and an invalid Rollout stops no other.
        await e.createRollout('other', {
          trafficRouting: { smi: { trafficSplitName: 'other' } },
          steps: STEPS,
          analysis: analysis({ prometheus: { address: promUrl } }),
        });
        await expectChecked(e, 'other', ['request-success-rate']);
        expect(e.splits.seen.filter((s) => s.name === 'web')).to.deep.equal([]);
        expect(await splitOf(e, 'web')).to.equal(undefined);
        expect((await e.get('web')).status?.phase).to.equal('Invalid');
      });

      test('runs a Rollout naming an allowed Prometheus (the prefix given with --allowed-prometheus-urls)', async () => {
        const e = await env('prom-allowed');
        await canaryTraffic(e);
        await e.createRollout('web', {
          steps: STEPS,
          analysis: analysis({ prometheus: { address: `${promUrl}/` } }),
        });
        const done = await expectChecked(e, 'web', ['request-success-rate']);
        expect(valid(done)).to.deep.include({ status: 'True' });
      });

      test('reports a templateRef to a third namespace Invalid, though the template is there and allowed', async () => {
        const e = await env('template-elsewhere');
        await canaryTraffic(e);
        const third = await testNamespace(e.kc, 'third');
        await createTemplate(e, third, 'success-rate', promUrl);
        await e.createRollout('web', {
          steps: STEPS,
          analysis: analysis({
            metrics: [
              {
                name: 'request-success-rate',
                templateRef: { name: 'success-rate', namespace: third },
                thresholdRange: { min: 99 },
              },
            ],
          }),
        });
        const r = await e.phase('web', 'Invalid');
        expect(valid(r)).to.deep.include({ status: 'False', reason: 'TemplateNamespaceNotAllowed' });
        expect(valid(r)?.message).to.equal(
          `spec.analysis.metrics[0].templateRef.namespace: namespace ${third} is neither the Rollout's (${e.ns}) ` +
            `nor the controller's --template-namespace (${catalogue}); use a MetricTemplate of ${e.ns} or ${catalogue}`,
        );
        expect(await splitOf(e, 'web')).to.equal(undefined);
      });

      test('reports a MetricTemplate whose spec.provider.address is not allowed, naming the template', async () => {
        const e = await env('template-prom');
        await canaryTraffic(e);
        const elsewhere = promUrl.replace('127.0.0.1', 'localhost');
        await createTemplate(e, e.ns, 'success-rate', elsewhere);
        await e.createRollout('web', {
          steps: STEPS,
          analysis: analysis({
            prometheus: { address: promUrl },
            metrics: [
              {
                name: 'request-success-rate',
                templateRef: { name: 'success-rate' },
                thresholdRange: { min: 99 },
              },
            ],
          }),
        });
        const r = await e.phase('web', 'Invalid');
        expect(valid(r)).to.deep.include({ status: 'False', reason: 'PrometheusNotAllowed' });
        expect(valid(r)?.message).to.equal(
          `spec.analysis.metrics[0].templateRef: MetricTemplate ${e.ns}/success-rate spec.provider.address: ` +
            `Prometheus ${elsewhere} is not one this controller may query; add it (or a prefix of it) to the ` +
            `controller's --allowed-prometheus-urls`,
        );
        expect(await splitOf(e, 'web')).to.equal(undefined);
      });

      test('uses a template of the --template-namespace catalogue, named or found after its own namespace', async () => {
        const e = await env('catalogue-all');
        await canaryTraffic(e);
        await createTemplate(e, catalogue, 'success-rate', promUrl);
        const metrics: MetricSpec[] = [
          { name: 'found', templateRef: { name: 'success-rate' }, thresholdRange: { min: 99 } },
          {
            name: 'named',
            templateRef: { name: 'success-rate', namespace: catalogue },
            thresholdRange: { min: 99 },
          },
        ];
        await e.createRollout('web', { steps: STEPS, analysis: analysis({ metrics }) });
        await expectChecked(e, 'web', ['found', 'named']);
      });
    });
  });

  describe('a controller watching one namespace', () => {
    let e: RolloutEnv;
    const suite = useController({
      prometheusUrl: NOWHERE,
      args: async () => {
        promUrl = (await sharedPrometheus()).prometheus.url;
        e = await suite.env('catalogue-one');
        catalogue = await testNamespace((await sharedControlPlane()).kubeConfig(), 'catalogue');
        await createTemplate(e, catalogue, 'success-rate', promUrl);
        return ['--namespace', e.ns, '--allowed-prometheus-urls', promUrl, '--template-namespace', catalogue];
      },
    });

    it('still reads the --template-namespace catalogue, and its checks pass', async () => {
      await canaryTraffic(e);
      await e.createRollout('web', {
        steps: STEPS,
        analysis: analysis({
          metrics: [
            {
              name: 'request-success-rate',
              templateRef: { name: 'success-rate' },
              thresholdRange: { min: 99 },
            },
          ],
        }),
      });
      await expectChecked(e, 'web', ['request-success-rate']);
    });
  });
});
