// The controller's counters start at 0 where their label values are few, so Prometheus sees the first
// increment (a series born at 1 shows no increase(): a dashboard would never show a namespace's first failure).
import { expect } from 'chai';
import { ControllerMetrics } from '../../src/controller/metrics.js';

const series = async (m: ControllerMetrics, name: string) =>
  (await m.registry.metrics()).split('\n').filter((l) => l.startsWith(`${name}{`));

describe('controller metrics: counters born at 0', () => {
  it('counts every Prometheus query outcome from 0 before the first query', async () => {
    const m = new ControllerMetrics();
    expect(await series(m, 'perch_prometheus_queries_total')).to.have.members([
      'perch_prometheus_queries_total{outcome="success"} 0',
      'perch_prometheus_queries_total{outcome="unreachable"} 0',
      'perch_prometheus_queries_total{outcome="timeout"} 0',
      'perch_prometheus_queries_total{outcome="http"} 0',
      'perch_prometheus_queries_total{outcome="bad-response"} 0',
      'perch_prometheus_queries_total{outcome="query"} 0',
    ]);
    m.countQuery('timeout');
    expect(await series(m, 'perch_prometheus_queries_total')).to.include(
      'perch_prometheus_queries_total{outcome="timeout"} 1',
    );
  });

  it("counts a namespace's run outcomes from 0 once one of its Rollouts is seen, before any run ends", async () => {
    const m = new ControllerMetrics();
    expect(await series(m, 'perch_rollout_runs_total')).to.deep.equal([]);
    m.observeRollout('shop', 'web', 'Progressing', 10);
    m.observeRollout('shop', 'api', 'Pending', 0);
    expect(await series(m, 'perch_rollout_runs_total')).to.have.members([
      'perch_rollout_runs_total{namespace="shop",outcome="Succeeded"} 0',
      'perch_rollout_runs_total{namespace="shop",outcome="Failed"} 0',
      'perch_rollout_runs_total{namespace="shop",outcome="Aborted"} 0',
    ]);
    m.countRun('shop', 'Failed', 42);
    expect(await series(m, 'perch_rollout_runs_total')).to.include(
      'perch_rollout_runs_total{namespace="shop",outcome="Failed"} 1',
    );
  });
});
