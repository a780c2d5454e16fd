// The rollout engine end to end, over each router at once: `perch controller` as a child process against
// the real API server, a real Prometheus scraping OSM metrics the test steers, and a watch recording every
// version of the TrafficSplit, or of a person's HTTPRoute (which must change only in its two weights).
import { expect } from 'chai';
import { eachRouter, useController } from '../support/controller-suite.js';
import {
  analysis,
  canaryTraffic,
  HEALTHY,
  sharedPrometheus,
  type RolloutEnv,
} from '../support/rollout-env.js';
import type { RouterKind } from '../support/route-under-test.js';
import { together } from '../support/together.js';

// Each scenario runs over SMI and over the Gateway API side by side, in a namespace each, under one
// controller: the runs mostly wait on their 1 s checks.
describe('rollout controller over smi and gatewayapi (sandbox + real Prometheus)', function () {
  this.timeout(120_000);
  const suite = useController();
  const overEachRouter = async (
    prefix: string,
    scenario: (e: RolloutEnv, router: RouterKind) => Promise<void>,
  ) => eachRouter(await suite.routerEnvs(prefix), scenario);
  /** Test 1's environment of each router, whose metrics a later test reads. */
  const healthy = new Map<RouterKind, RolloutEnv>();

  // The scenarios that share nothing but the servers run side by side (their runs mostly wait on 1 s
  // checks); the controller's totals and the Prometheus restart come after them, alone.
  together((test) => {
    test('1. promotes a healthy canary: stable 100 → 90/10 → 50/50 → canary 100, events in order', () =>
      overEachRouter('healthy', async (e, router) => {
        healthy.set(router, e);
        await canaryTraffic(e);
        await e.createRollout('web', {
          steps: [
            { setWeight: 10 },
            { analysis: { iterations: 2 } },
            { setWeight: 50 },
            { pause: { duration: '2s' } },
            { setWeight: 100 },
          ],
          analysis: analysis(),
        });
        const done = await e.phase('web', 'Succeeded');
        expect(done.status?.canaryWeight).to.equal(100);
        expect(e.weights('web')).to.deep.equal([0, 10, 50, 100]);
        const last = e.splits.seen.filter((s) => s.name === 'web').at(-1)!;
        expect(last.backends).to.equal('web-v2=100');
        const first = e.splits.seen.find((s) => s.name === 'web')!;
        expect(first.backends).to.equal('web-v1=100');
        const reasons = (await e.eventsUntil('web', 'Promoted'))
          .map((x) => x.reason)
          .filter((r) => r !== 'AnalysisPassed');
        expect(reasons).to.deep.equal([
          'RunStarted',
          // Over SMI the run creates its TrafficSplit at stable 100 and writes step 1's weight on it in
          // the same look, told by RunStarted; over the Gateway API it takes over a person's HTTPRoute,
          // which it brings to stable 100 first, and step 1 follows once that is seen.
          ...(e.router === 'smi' ? [] : ['WeightChanged']),
          'WeightChanged',
          'Paused',
          'Resumed',
          'WeightChanged',
          // The round at 100 % starts the promotion and ends it: one Event tells both.
          'Promoted',
        ]);
      }));

    test('2. rolls a canary at 20% errors back at the first failing check, naming metric, value and range', () =>
      overEachRouter('faulty', async (e) => {
        await canaryTraffic(e, { rps: 50, errorRate: 0.2, latencyMs: 20 });
        await e.createRollout('web', {
          steps: [{ setWeight: 10 }, { analysis: { iterations: 2 } }, { setWeight: 100 }],
          analysis: analysis(),
        });
        const failed = await e.phase('web', 'Failed');
        expect(e.weights('web')).to.deep.equal([0, 10, 0]);
        const named = /request-success-rate ([\d.]+) is below the minimum 99/.exec(
          failed.status?.message ?? '',
        );
        expect(named, failed.status?.message).to.not.equal(null);
        // 20 % answer 500: about 80, a request or two either way as the target's counters carry between scrapes.
        expect(Number(named![1])).to.be.closeTo(80, 3);
        expect(failed.status?.canaryWeight).to.equal(0);
      }));

    test('3. without canary traffic pauses AnalysisInconclusive, never promotes, and goes on when traffic comes', () =>
      overEachRouter('no-traffic', async (e) => {
        await e.createRollout('web', {
          steps: [{ setWeight: 20 }, { analysis: { iterations: 2 } }, { setWeight: 100 }],
          analysis: analysis(),
        });
        const paused = await e.until(
          'web',
          (r) => r.status?.pauseReason === 'AnalysisInconclusive',
          'an inconclusive pause',
        );
        expect(paused.status?.phase).to.equal('Paused');
        expect(paused.status?.canaryWeight).to.equal(20);
        await canaryTraffic(e);
        await e.phase('web', 'Succeeded');
        expect(e.weights('web')).to.deep.equal([0, 20, 100]);
        expect(
          e.rollouts.seen.filter((r) => r.metadata?.name === 'web' && r.status?.phase === 'Succeeded').length,
        ).to.be.greaterThan(0);
      }));

    test('5a. perch.dev/paused holds the weight, and a failing check while paused still rolls back', () =>
      overEachRouter('paused-fail', async (e) => {
        await canaryTraffic(e);
        await e.createRollout(
          'web',
          {
            steps: [{ setWeight: 10 }, { analysis: { iterations: 1000 } }, { setWeight: 100 }],
            analysis: analysis(),
          },
          { 'perch.dev/paused': 'false' },
        );
        await e.until('web', (r) => r.status?.canaryWeight === 10, 'weight 10');
        await e.annotate('web', { 'perch.dev/paused': 'true' });
        await e.until('web', (r) => r.status?.pauseReason === 'Manual', 'a manual pause');
        (await sharedPrometheus()).target.set(e.ns, 'web-v2', { rps: 50, errorRate: 0.5, latencyMs: 20 });
        const failed = await e.phase('web', 'Failed');
        expect(failed.metadata?.annotations?.['perch.dev/paused']).to.equal('true');
        expect(e.weights('web')).to.deep.equal([0, 10, 0]);
      }));

    test('5b. removing perch.dev/paused resumes; pause: {} waits for perch.dev/resume, which is removed', () =>
      overEachRouter('pause-resume', async (e) => {
        await canaryTraffic(e);
        await e.createRollout(
          'web',
          { steps: [{ setWeight: 10 }, { pause: {} }, { setWeight: 100 }], analysis: analysis() },
          { 'perch.dev/paused': 'true' },
        );
        await e.until(
          'web',
          (r) => r.status?.pauseReason === 'Manual' || r.status?.phase === 'Paused',
          'paused',
        );
        expect(e.weights('web')).to.deep.equal([0]);
        await e.annotate('web', { 'perch.dev/paused': null });
        await e.until('web', (r) => r.status?.pauseReason === 'PauseStep', 'the pause step');
        expect(e.weights('web')).to.deep.equal([0, 10]);
        await e.annotate('web', { 'perch.dev/resume': 'true' });
        const done = await e.phase('web', 'Succeeded');
        expect(done.metadata?.annotations?.['perch.dev/resume']).to.equal(undefined);
        const reasons = (await e.eventsUntil('web', 'Promoted')).map((x) => x.reason);
        expect(reasons).to.include('Resumed');
        // The resume was acted on once: no later reconcile saw it again (cache behind our removal).
        expect(reasons).to.not.include('AnnotationIgnored');
      }));

    test('5c. perch.dev/promote promotes now (also out of an inconclusive pause) and is removed', () =>
      overEachRouter('promote', async (e) => {
        await e.createRollout('web', {
          steps: [{ setWeight: 10 }, { analysis: { iterations: 5 } }, { setWeight: 50 }],
          analysis: analysis(),
        });
        await e.until(
          'web',
          (r) => r.status?.pauseReason === 'AnalysisInconclusive',
          'an inconclusive pause',
        );
        await e.annotate('web', { 'perch.dev/promote': 'true' });
        const done = await e.phase('web', 'Succeeded');
        expect(done.metadata?.annotations?.['perch.dev/promote']).to.equal(undefined);
        expect(e.weights('web')).to.deep.equal([0, 10, 100]);
      }));

    test('5d. perch.dev/abort gives Aborted at stable 100; perch.dev/retry starts again from step 0', () =>
      overEachRouter('abort-retry', async (e) => {
        await canaryTraffic(e);
        await e.createRollout('web', {
          steps: [{ setWeight: 30 }, { pause: {} }, { setWeight: 100 }],
          analysis: analysis(),
        });
        await e.until('web', (r) => r.status?.pauseReason === 'PauseStep', 'the pause step');
        await e.annotate('web', { 'perch.dev/abort': 'true' });
        const aborted = await e.phase('web', 'Aborted');
        expect(aborted.metadata?.annotations?.['perch.dev/abort']).to.equal(undefined);
        expect(e.weights('web')).to.deep.equal([0, 30, 0]);
        await e.annotate('web', { 'perch.dev/retry': 'true' });
        const again = await e.until(
          'web',
          (r) =>
            r.status?.runStartedAt !== aborted.status?.runStartedAt && r.status?.pauseReason === 'PauseStep',
          'the new run at its pause step',
        );
        expect(again.status?.currentStepIndex).to.equal(1);
        await e.until('web', (r) => !r.metadata?.annotations?.['perch.dev/retry'], 'retry removed');
        expect(e.weights('web')).to.deep.equal([0, 30, 0, 30]);
      }));

    test('7. a new generation mid-run (another canaryService) starts again from stable 100', () =>
      overEachRouter('new-generation', async (e) => {
        await e.service('web-v3');
        await canaryTraffic(e);
        await canaryTraffic(e, HEALTHY, 'web-v3');
        await e.createRollout('web', {
          steps: [{ setWeight: 40 }, { pause: {} }, { setWeight: 100 }],
          analysis: analysis(),
        });
        await e.until('web', (r) => r.status?.pauseReason === 'PauseStep', 'the pause step');
        e.canaryServices.set('web', 'web-v3');
        await e.patchSpec('web', { canaryService: 'web-v3' });
        const restarted = await e.until(
          'web',
          (r) => r.status?.observedGeneration === 2 && r.status.pauseReason === 'PauseStep',
          'generation 2 at its pause step',
        );
        expect(restarted.status?.canaryWeight).to.equal(40);
        // After the spec change, stable 100 came before the new canary's 40: the old canary kept nothing.
        const history = e.splits.seen.filter((s) => s.name === 'web').map((s) => s.backends);
        const last40 = history.lastIndexOf('web-v1=60,web-v2=40');
        expect(last40, 'the first generation at 40%').to.be.greaterThan(-1);
        expect(history.slice(last40 + 1)).to.deep.equal(['web-v1=100', 'web-v1=60,web-v3=40']);
      }));
  });

  it('serves SPEC metrics with real values, /healthz and /readyz', async () => {
    const get = async (path: string) => {
      const res = await fetch(`http://${suite.controller().metricsAddress}${path}`);
      return { status: res.status, body: await res.text() };
    };
    expect(await get('/healthz')).to.deep.equal({ status: 200, body: 'ok' });
    expect(await get('/readyz')).to.deep.equal({ status: 200, body: 'ok' });
    const { body } = await get('/metrics');
    const value = (pattern: RegExp) => Number(pattern.exec(body)?.[1] ?? NaN);
    expect([...healthy.keys()]).to.have.members(['smi', 'gatewayapi']);
    for (const [router, e] of healthy) {
      const ns = e.ns;
      expect(
        value(new RegExp(`perch_rollout_info\\{namespace="${ns}",name="web",phase="Succeeded"\\} (\\S+)`)),
        router,
      ).to.equal(1);
      expect(
        value(new RegExp(`perch_rollout_info\\{namespace="${ns}",name="web",phase="Progressing"\\} (\\S+)`)),
        router,
      ).to.equal(0);
      expect(
        value(new RegExp(`perch_rollout_canary_weight\\{namespace="${ns}",name="web"\\} (\\S+)`)),
        router,
      ).to.equal(100);
      expect(
        value(
          new RegExp(
            `perch_analysis_checks_total\\{namespace="${ns}",name="web",metric="request-success-rate",verdict="Pass"\\} (\\S+)`,
          ),
        ),
        router,
      ).to.be.at.least(2);
      expect(
        value(new RegExp(`perch_rollout_runs_total\\{namespace="${ns}",outcome="Succeeded"\\} (\\S+)`)),
        router,
      ).to.equal(1);
    }
    expect(value(/perch_rollout_run_duration_seconds_count (\S+)/)).to.be.at.least(2);
    expect(value(/perch_reconcile_duration_seconds_count (\S+)/)).to.be.greaterThan(10);
    expect(
      value(/perch_kube_requests_total\{verb="patch",resource="rollouts\/status",code="200"\} (\S+)/),
    ).to.be.greaterThan(6);
    // Over SMI the split is Perch's own (created); over the Gateway API, a person's route handed over (patched).
    expect(
      value(/perch_kube_requests_total\{verb="create",resource="trafficsplits",code="201"\} (\S+)/),
    ).to.be.at.least(1);
    expect(
      value(/perch_kube_requests_total\{verb="patch",resource="httproutes",code="200"\} (\S+)/),
    ).to.be.at.least(1);
    expect(value(/perch_prometheus_queries_total\{outcome="success"\} (\S+)/)).to.be.at.least(4);
    expect(body).to.contain('process_cpu_user_seconds_total');
  });

  it('4. with Prometheus stopped pauses MetricsUnavailable without rolling back, and completes once it is back', async () => {
    // One Prometheus for both routers: both runs are at their first passing check before it stops.
    const envs = await suite.routerEnvs('prom-down');
    const { prometheus } = await sharedPrometheus();
    await eachRouter(envs, (e) => canaryTraffic(e));
    await eachRouter(envs, async (e) => {
      await e.createRollout('web', {
        // Four passes to promote: room for the other router's run to reach its first before Prometheus stops.
        steps: [{ setWeight: 10 }, { analysis: { iterations: 4 } }, { setWeight: 100 }],
        analysis: analysis({ errorLimit: 1 }),
      });
      await e.until(
        'web',
        (r) => r.status?.canaryWeight === 10 && (r.status.analysis?.passed ?? 0) >= 1,
        'a first passing check at 10%',
      );
    });
    await prometheus.restart(() =>
      eachRouter(envs, async (e) => {
        const held = await e.until(
          'web',
          (r) => r.status?.pauseReason === 'MetricsUnavailable',
          'a MetricsUnavailable pause',
        );
        expect(held.status?.canaryWeight).to.equal(10);
      }),
    );
    await eachRouter(envs, async (e) => {
      await e.phase('web', 'Succeeded');
      expect(e.weights('web')).to.deep.equal([0, 10, 100]);
      expect(
        e.rollouts.seen.some(
          (r) =>
            r.metadata?.name === 'web' && (r.status?.phase === 'RollingBack' || r.status?.phase === 'Failed'),
        ),
      ).to.equal(false);
    });
  });
});
