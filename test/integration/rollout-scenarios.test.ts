// More of the rollout engine end to end: validation, promotion windows, every SMI version, Flagger-shaped
// templates and shorthand; then, over each router at once, deletion, objects that are not Perch's, and drift.
import { CustomObjectsApi } from '@kubernetes/client-node';
import { expect } from 'chai';
import type { Rollout, RolloutSpec, SmiApiVersion } from '../../src/api/v1alpha1.js';
import { eachRouter, useController } from '../support/controller-suite.js';
import { kubectl } from '../support/kubectl.js';
import {
  analysis,
  canaryTraffic,
  HEALTHY,
  sharedPrometheus,
  type RolloutEnv,
} from '../support/rollout-env.js';
import type { RouterKind } from '../support/route-under-test.js';
import { together } from '../support/together.js';

const valid = (r: Rollout) => r.status?.conditions?.find((c) => c.type === 'Valid');

describe('rollout scenarios (sandbox + real Prometheus)', function () {
  this.timeout(180_000);
  const suite = useController();
  const env = suite.env;

  // Side by side: they share nothing but the servers, and mostly wait on 1 s checks. The frozen
  // Prometheus comes after them, alone.
  together((test) => {
    test('8. refuses or reports Invalid every broken spec, never touching traffic, while another Rollout progresses', async () => {
      const e = await env('invalid', ['web', 'web-v1', 'web-v2']);
      await canaryTraffic(e);
      await e.createRollout('good', {
        steps: [{ setWeight: 20 }, { analysis: { iterations: 3 } }, { setWeight: 100 }],
        analysis: analysis(),
      });
      const steps: RolloutSpec['steps'] = [{ setWeight: 10 }, { setWeight: 100 }];
      const reported: [string, Partial<RolloutSpec>, string, string][] = [
        [
          'root in another namespace',
          { service: 'web.elsewhere.svc.cluster.local', steps },
          'InvalidService',
          'spec.service',
        ],
        ['missing root Service', { service: 'nothing-here', steps }, 'ServiceNotFound', 'spec.service'],
        [
          'missing stable Service',
          { stableService: 'no-stable', steps },
          'ServiceNotFound',
          'spec.stableService',
        ],
        [
          'missing canary Service',
          { canaryService: 'no-canary', steps },
          'ServiceNotFound',
          'spec.canaryService',
        ],
        [
          'unresolved templateRef',
          {
            steps,
            analysis: analysis({
              metrics: [{ name: 'm', templateRef: { name: 'absent' }, thresholdRange: { min: 1 } }],
            }),
          },
          'MetricTemplateNotFound',
          'spec.analysis.metrics[0].templateRef',
        ],
        [
          'unknown query variable',
          {
            steps,
            analysis: analysis({
              metrics: [{ name: 'm', query: 'up{job="{{ cluster }}"}', thresholdRange: { min: 1 } }],
            }),
          },
          'InvalidQuery',
          'cluster',
        ],
        [
          'undefined templateVariables key',
          {
            steps,
            analysis: analysis({
              metrics: [{ name: 'm', query: 'up{job="{{ variables.job }}"}', thresholdRange: { min: 1 } }],
            }),
          },
          'InvalidQuery',
          'variables.job',
        ],
        [
          'bad window schedule',
          { steps, window: { schedule: '* 25 * * *' } },
          'InvalidWindow',
          'spec.window.schedule',
        ],
        [
          'bad window time zone',
          { steps, window: { schedule: '* * * * *', timeZone: 'Mars/Olympus' } },
          'InvalidWindow',
          'spec.window.timeZone',
        ],
      ];
      for (const [i, [, spec]] of reported.entries()) await e.createRollout(`bad-${i}`, spec);
      for (const [i, [what, , reason, field]] of reported.entries()) {
        const r = await e.phase(`bad-${i}`, 'Invalid');
        expect(valid(r), what).to.include({ status: 'False', reason });
        expect(valid(r)?.message, what).to.contain(field);
        expect(
          e.splits.seen.some((s) => s.name === `bad-${i}`),
          `${what}: no TrafficSplit`,
        ).to.equal(false);
      }
      // Refused by the API server itself, naming the field.
      const refused: [string, Record<string, unknown>, string][] = [
        ['weight 101', { steps: [{ setWeight: 101 }] }, 'setWeight'],
        ['decreasing weights', { steps: [{ setWeight: 50 }, { setWeight: 20 }] }, 'spec.steps'],
        ['neither steps nor shorthand', {}, 'spec'],
        [
          'query and templateRef',
          {
            steps,
            analysis: analysis({ metrics: [{ name: 'm', query: 'up', templateRef: { name: 't' } }] }),
          },
          'spec.analysis.metrics[0]',
        ],
      ];
      for (const [what, spec, field] of refused) {
        const manifest = JSON.stringify({
          apiVersion: 'perch.dev/v1alpha1',
          kind: 'Rollout',
          metadata: { name: 'refused', namespace: e.ns },
          spec: { service: 'web', stableService: 'web-v1', canaryService: 'web-v2', ...spec },
        });
        const r = await kubectl(e.cp.kubeconfig, ['apply', '-f', '-'], manifest);
        expect(r.code, what).to.not.equal(0);
        expect(r.stderr, what).to.contain('is invalid').and.to.contain(field);
      }
      // The good one went on undisturbed; a missing Service created later makes its Rollout valid.
      await e.phase('good', 'Succeeded');
      expect(e.weights('good')).to.deep.equal([0, 20, 100]);
      await e.service('no-canary');
      await e.until(
        'bad-3',
        (r) => r.status?.phase !== 'Invalid' && valid(r)?.status === 'True',
        'valid once its Service exists',
      );
    });

    test('9. a window that excludes now holds the run; one that includes now lets it advance', async () => {
      const e = await env('window');
      await canaryTraffic(e);
      const spec = { steps: [{ setWeight: 10 }, { setWeight: 100 }], analysis: analysis() };
      const away = (new Date().getUTCHours() + 12) % 24; // an hour that is certainly not now
      await e.createRollout('closed', { ...spec, window: { schedule: `* ${away} * * *` } });
      await e.createRollout('open', {
        ...spec,
        window: { schedule: '* * * * *', timeZone: 'Europe/Berlin' },
      });
      await e.phase('open', 'Succeeded');
      const held = await e.until(
        'closed',
        (r) => (r.status?.message ?? '').includes('outside the promotion window'),
        'held by the window',
      );
      expect(held.status?.phase).to.equal('Progressing');
      expect(held.status?.canaryWeight).to.equal(0);
      expect(e.weights('closed')).to.deep.equal([0]);
    });

    test('9b. a failing check outside the window still rolls back', async () => {
      const e = await env('window-fail');
      await canaryTraffic(e);
      await e.createRollout('web', {
        steps: [{ setWeight: 10 }, { pause: {} }, { setWeight: 100 }],
        analysis: analysis({ failureLimit: 0 }),
      });
      await e.until('web', (r) => r.status?.pauseReason === 'PauseStep', 'at 10% in the pause');
      // A window closed now, added by an edit: it applies to the run where it stands (no new run), so the
      // canary stays at 10% outside the window, with no clock to wait for.
      const closed = (new Date().getUTCHours() + 12) % 24;
      await e.patchSpec('web', { window: { schedule: `* ${closed} * * *` } });
      await e.until('web', (r) => r.status?.observedGeneration === 2, 'the edit observed');
      (await sharedPrometheus()).target.set(e.ns, 'web-v2', { rps: 50, errorRate: 0.5, latencyMs: 20 });
      await e.phase('web', 'Failed');
      expect(e.weights('web')).to.deep.equal([0, 10, 0]);
      expect((await e.events('web')).filter((ev) => ev.reason === 'RunStarted')).to.have.length(1);
    });

    test('10. drives each TrafficSplit version v1alpha1–v1alpha4 through one healthy run', async () => {
      const e = await env('versions');
      await canaryTraffic(e);
      const versions: SmiApiVersion[] = [
        'split.smi-spec.io/v1alpha1',
        'split.smi-spec.io/v1alpha2',
        'split.smi-spec.io/v1alpha3',
        'split.smi-spec.io/v1alpha4',
      ];
      for (const [i, apiVersion] of versions.entries()) {
        await e.createRollout(`v${i + 1}`, {
          steps: [{ setWeight: 25 }, { analysis: { iterations: 1 } }, { setWeight: 75 }],
          analysis: analysis(),
          trafficRouting: { smi: { apiVersion } },
        });
      }
      const api = e.kc.makeApiClient(CustomObjectsApi);
      for (const [i, apiVersion] of versions.entries()) {
        await e.phase(`v${i + 1}`, 'Succeeded');
        expect(e.weights(`v${i + 1}`), apiVersion).to.deep.equal([0, 25, 75, 100]);
        const ts = (await api.getNamespacedCustomObject({
          group: 'split.smi-spec.io',
          version: apiVersion.split('/')[1]!,
          namespace: e.ns,
          plural: 'trafficsplits',
          name: `v${i + 1}`,
        })) as { apiVersion: string; spec: { service: string; backends: unknown[] } };
        expect(ts.apiVersion).to.equal(apiVersion);
        expect(ts.spec.service).to.equal(`web.${e.ns}.svc.cluster.local`);
        expect(ts.spec.backends).to.deep.equal([{ service: 'web-v2', weight: 100 }]);
      }
    });

    test('11. a Flagger-shaped MetricTemplate through templateRef, and stepWeight/maxWeight, reach Succeeded', async () => {
      const e = await env('flagger');
      await canaryTraffic(e);
      await e.api.createNamespacedCustomObject({
        group: 'perch.dev',
        version: 'v1alpha1',
        namespace: e.ns,
        plural: 'metrictemplates',
        body: {
          apiVersion: 'perch.dev/v1alpha1',
          kind: 'MetricTemplate',
          metadata: { name: 'osm-request-success-rate' },
          spec: {
            provider: { type: 'prometheus', address: (await sharedPrometheus()).prometheus.url },
            query:
              '(sum(rate(osm_request_total{destination_namespace="{{ namespace }}",destination_name="{{ target }}",response_code!~"5.*"}[{{ interval }}])) or vector(0))' +
              ' / sum(rate(osm_request_total{destination_namespace="{{ namespace }}",destination_name="{{ target }}"}[{{ interval }}])) * 100',
          },
        },
      });
      await e.createRollout('web', {
        stepWeight: 30,
        maxWeight: 60,
        analysis: analysis({
          interval: '3s',
          metrics: [
            {
              name: 'request-success-rate',
              templateRef: { name: 'osm-request-success-rate' },
              thresholdRange: { min: 99 },
            },
          ],
        }),
      });
      const done = await e.phase('web', 'Succeeded');
      expect(e.weights('web')).to.deep.equal([0, 30, 60, 100]);
      expect(
        done.status?.analysis?.measurements.some(
          (m) => m.metric === 'request-success-rate' && m.verdict === 'Pass',
        ),
      ).to.equal(true);
    });
  });

  it('a Prometheus that does not answer never holds up the abort of a Rollout', async () => {
    const e = await env('prom-frozen');
    await canaryTraffic(e);
    const names = Array.from({ length: 8 }, (_, i) => `r-${i}`);
    for (const name of names) {
      await e.createRollout(name, {
        trafficRouting: { smi: { trafficSplitName: name } },
        steps: [{ setWeight: 10 }, { pause: {} }, { setWeight: 100 }],
        analysis: analysis({ prometheus: { timeout: '10s' } }),
      });
    }
    for (const name of names)
      await e.until(name, (r) => r.status?.pauseReason === 'PauseStep', 'its pause step');
    const { prometheus } = await sharedPrometheus();
    // SIGSTOP makes the real Prometheus accept connections and never answer: every query hangs 10 s.
    process.kill(prometheus.pid(), 'SIGSTOP');
    try {
      // Two check intervals (a clock, not an event): every Rollout now has a round of checks hanging.
      await new Promise((r) => setTimeout(r, 2000));
      await e.annotate('r-0', { 'perch.dev/abort': 'true' });
      await e.phase('r-0', 'Aborted', 30_000);
      // No hung round has come back yet: the abort did not wait for Prometheus.
      for (const name of names) {
        const r = await e.get(name);
        expect(
          r.status?.analysis?.measurements.filter((m) => m.verdict === 'Error'),
          name,
        ).to.deep.equal([]);
      }
    } finally {
      process.kill(prometheus.pid(), 'SIGCONT');
    }
  });
});

// What every router must do alike (SPEC §3): deletion, ownership, drift; over each router side by side,
// in a namespace each, under one controller.
describe('routing object scenarios over smi and gatewayapi (sandbox + real Prometheus)', function () {
  this.timeout(180_000);
  const suite = useController();
  const overEachRouter = async (
    prefix: string,
    scenario: (e: RolloutEnv, router: RouterKind) => Promise<void>,
  ) => eachRouter(await suite.routerEnvs(prefix), scenario);

  // Side by side: they share nothing but the servers, and mostly wait on watches and 1 s checks.
  together((test) => {
    test('12a. a Rollout deleted mid-run writes stable 100, then releases its routing object, which outlives it', () =>
      overEachRouter('delete', async (e, router) => {
        await canaryTraffic(e);
        // The routing object is Perch's own here (created, with an ownerReference), so it has one to release.
        await e.createRollout('web', {
          steps: [{ setWeight: 40 }, { pause: {} }, { setWeight: 100 }],
          analysis: analysis(),
          ...(router === 'gatewayapi' ? { trafficRouting: { gatewayAPI: {} } } : {}),
        });
        await e.until('web', (r) => r.status?.pauseReason === 'PauseStep', 'at 40% in the pause');
        await e.deleteAndAwaitGarbageCollector('web');
        const route = await e.route('web');
        expect(route, 'the routing object outlives its Rollout').to.not.equal(undefined);
        expect(route!.metadata?.ownerReferences ?? []).to.deep.equal([]);
        expect(route!.metadata?.annotations?.['perch.dev/released-from']).to.equal('web');
        const history = e.splits.seen.filter((s) => s.name === 'web').map((s) => `${s.type} ${s.backends}`);
        expect(history.at(-1)).to.equal('update web-v1=100');
        expect(history.filter((h) => h.startsWith('delete'))).to.deep.equal([]);
        expect(e.weights('web')).to.deep.equal([0, 40, 0]);
      }));

    test("12b. never touches a routing object that is not Perch's (TrafficRouted=False, NotOwned)", () =>
      overEachRouter('not-owned', async (e) => {
        await e.createForeignRoute('web', 70, 30);
        await e.createRollout('web', {
          steps: [{ setWeight: 10 }, { setWeight: 100 }],
          analysis: analysis(),
        });
        const r = await e.until(
          'web',
          (x) =>
            x.status?.conditions?.some((c) => c.type === 'TrafficRouted' && c.reason === 'NotOwned') ?? false,
          'TrafficRouted NotOwned',
        );
        expect(r.status?.conditions?.find((c) => c.type === 'TrafficRouted')?.status).to.equal('False');
        expect(e.splits.seen.filter((s) => s.name === 'web').map((s) => s.backends)).to.deep.equal([
          'web-v1=70,web-v2=30',
        ]);
        const route = await e.route('web');
        expect(route?.metadata?.ownerReferences).to.equal(undefined);
      }));

    test("12c. undoes someone else's weight change, with a TrafficDrift Event", () =>
      overEachRouter('drift', async (e) => {
        await canaryTraffic(e, HEALTHY);
        await e.createRollout('web', {
          steps: [{ setWeight: 20 }, { pause: {} }, { setWeight: 100 }],
          analysis: analysis(),
        });
        await e.until('web', (r) => r.status?.pauseReason === 'PauseStep', 'at 20% in the pause');
        await e.setWeightsByHand('web', 50, 50);
        await e.splits.find((s) => s.name === 'web' && s.canary === 50, 10_000, 'the hand-made 50/50');
        const restored = await e.splits.find(
          (s) =>
            s.name === 'web' &&
            s.canary === 20 &&
            e.splits.seen.indexOf(s) > e.splits.seen.findIndex((x) => x.canary === 50),
          20_000,
          'weights restored to 80/20',
        );
        expect(restored.backends).to.equal('web-v1=80,web-v2=20');
        const events = await e.eventsUntil('web', 'TrafficDrift');
        expect(events.find((x) => x.reason === 'TrafficDrift')?.type).to.equal('Warning');
      }));
  });
});
