// deploy/grafana/perch-dashboard.json against the real thing: a controller taken through a promotion, a
// rollback and a pause, a real Prometheus scraping its --metrics-addr, and every panel's query asked of it.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startPrometheus, type PrometheusServer } from '../../src/sandbox/prometheus/launcher.js';
import { waitFor } from '../../src/sandbox/wait.js';
import { startController, type ControllerProcess } from '../support/controller-process.js';
import { analysis, canaryTraffic, HEALTHY, RolloutEnv, sharedPrometheus } from '../support/rollout-env.js';

const DASHBOARD = fileURLToPath(new URL('../../../deploy/grafana/perch-dashboard.json', import.meta.url));
/** The scrape job's name here; in a cluster, the ServiceMonitor's or scrape config's. */
const JOB = 'perch-controller';
const SCRAPE = '1s';

interface Target {
  refId: string;
  expr: string;
  instant?: boolean;
  datasource?: { uid?: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { uid?: string };
  targets?: Target[];
  panels?: Panel[];
}
interface Variable {
  name: string;
  type: string;
  query: string | { query: string };
}
interface Dashboard {
  uid: string;
  panels: Panel[];
  templating: { list: Variable[] };
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
/** Every panel, those inside collapsed rows too, with its queries. */
const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).filter((p) => p.type !== 'row');

interface Series {
  metric: Record<string, string>;
  values?: [number, string][];
  value?: [number, string];
}
type Answer =
  { status: 'success'; data: { resultType: string; result: Series[] } } | { status: 'error'; error: string };

async function api(
  prometheus: PrometheusServer,
  path: string,
  params: Record<string, string>,
): Promise<Answer> {
  const res = await fetch(`${prometheus.url}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(params),
  });
  return (await res.json()) as Answer;
}

const finite = (v: string) => Number.isFinite(Number(v));

describe('Grafana dashboard (deploy/grafana/perch-dashboard.json) over a real controller and Prometheus', function () {
  this.timeout(240_000);
  let env: RolloutEnv;
  let controller: ControllerProcess;
  let scraper: PrometheusServer;
  let startedAt: number;
  /** Grafana's variables as a person with "All" selected would have them, this test's namespace chosen. */
  let substitute: (expr: string) => string;

  before(async () => {
    env = await RolloutEnv.create('grafana-dashboard', ['web', 'web-v1', 'web-v2', 'web-v3']);
    const { prometheus: meshPrometheus } = await sharedPrometheus();
    controller = await startController(env.cp.kubeconfig, meshPrometheus.url, ['--namespace', env.ns]);
    scraper = await startPrometheus({
      jobs: [{ name: JOB, targets: [controller.metricsAddress] }],
      scrapeInterval: SCRAPE,
    });
    startedAt = Date.now();
    await canaryTraffic(env, HEALTHY, 'web-v2');
    await canaryTraffic(env, { rps: 50, errorRate: 1, latencyMs: 20 }, 'web-v3');
    // The held Rollout first: the namespace's run counters (and the duration histogram) must be scraped at
    // 0 before any run ends, or increase() has no step to see. On a loaded machine a scrape can miss, and a
    // rollback of a canary failing every request ends seconds after it starts.
    await env.createRollout('held', { steps: [{ setWeight: 10 }, { pause: {} }], analysis: analysis() });
    await waitFor(
      async () => {
        const a = await api(scraper, '/api/v1/query', {
          query:
            `count(perch_rollout_runs_total{job="${JOB}", namespace="${env.ns}"} == 0) == 3 and on() ` +
            `(sum(perch_rollout_run_duration_seconds_count{job="${JOB}"}) == 0)`,
        });
        return a.status === 'success' && a.data.result.length === 1 ? true : undefined;
      },
      { what: 'the scraper to see the run counters at 0', timeoutMs: 30_000, intervalMs: 250 },
    );
    const checked = [{ setWeight: 20 }, { analysis: { iterations: 2 } }, { setWeight: 60 }];
    await env.createRollout('promoted', {
      steps: [...checked, { analysis: { iterations: 2 } }],
      analysis: analysis(),
    });
    await env.createRollout('rolled-back', { canaryService: 'web-v3', steps: checked, analysis: analysis() });
    await env.phase('promoted', 'Succeeded');
    await env.phase('rolled-back', 'Failed');
    await env.phase('held', 'Paused');
    // The scraper has seen both ends once both run counters read 1 (their zeros were scraped first).
    await waitFor(
      async () => {
        const a = await api(scraper, '/api/v1/query', {
          query: `count(perch_rollout_runs_total{job="${JOB}", namespace="${env.ns}"} == 1) == 2`,
        });
        return a.status === 'success' && a.data.result.length === 1 ? true : undefined;
      },
      { what: 'the scraper to see the promotion and the rollback', timeoutMs: 30_000, intervalMs: 250 },
    );
    // The dashboard's time range is the whole test so far, at the moment of each query: a later test's
    // window must still hold the run's first moments (the rollback's counter step comes early).
    substitute = (expr) =>
      expr
        .replaceAll('$__rate_interval', '4s')
        .replaceAll('$__interval', SCRAPE)
        .replaceAll('$__range', `${Math.ceil((Date.now() - startedAt) / 1000) + 5}s`)
        .replaceAll('$job', JOB)
        .replaceAll('$instance', '.*')
        .replaceAll('$namespace', env.ns);
  });

  after(async () => {
    await controller?.stop();
    await scraper?.stop();
    env?.close();
  });

  it('has panels for phases, weights, runs, checks, reconcile latency, API requests, Prometheus queries, CPU and memory, each on the chosen data source', () => {
    const exprs = panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)).join('\n');
    for (const metric of [
      'perch_rollout_info',
      'perch_rollout_canary_weight',
      'perch_analysis_checks_total',
      'perch_rollout_runs_total',
      'perch_rollout_run_duration_seconds_bucket',
      'perch_reconcile_duration_seconds_bucket',
      'perch_kube_requests_total',
      'perch_prometheus_queries_total',
      'process_cpu_seconds_total',
      'process_resident_memory_bytes',
    ])
      expect(exprs, metric).to.contain(metric);
    for (const p of panels) {
      expect((p.targets ?? []).length, p.title).to.be.greaterThan(0);
      expect(p.datasource?.uid, p.title).to.equal('${datasource}');
      for (const t of p.targets ?? [])
        expect(t.datasource?.uid, `${p.title} ${t.refId}`).to.equal('${datasource}');
    }
    expect(new Set(panels.map((p) => p.id)).size).to.equal(panels.length);
    expect(dashboard.templating.list.map((v) => v.name)).to.deep.equal([
      'datasource',
      'job',
      'instance',
      'namespace',
    ]);
  });

  it('every panel query parses in Prometheus and returns data during or after the run', async () => {
    const empty: string[] = [];
    for (const p of panels) {
      for (const t of p.targets ?? []) {
        const expr = substitute(t.expr);
        const what = `"${p.title}" ${t.refId}: ${expr}`;
        // A variable this test does not know would reach Prometheus as text: name it here instead.
        expect(expr, what).to.not.match(/\$/);
        const parsed = await api(scraper, '/api/v1/query', { query: expr });
        expect(parsed.status, `${what}: ${parsed.status === 'error' ? parsed.error : ''}`).to.equal(
          'success',
        );
        const now = Date.now() / 1000;
        const ranged = await api(scraper, '/api/v1/query_range', {
          query: expr,
          start: String(startedAt / 1000),
          end: String(now),
          step: '1',
        });
        expect(ranged.status, what).to.equal('success');
        const samples = ranged.status === 'success' ? ranged.data.result.flatMap((s) => s.values ?? []) : [];
        if (!samples.some(([, v]) => finite(v))) empty.push(what);
      }
    }
    expect(empty, 'panel queries with no data at any moment of the run').to.deep.equal([]);
  });

  it('shows what happened: one Rollout in each of Succeeded, Failed and Paused, one run of each outcome, checks that passed and failed', async () => {
    const byLabel = async (title: string, label: string) => {
      const target = panels.find((p) => p.title === title)!.targets![0]!;
      const a = await api(scraper, '/api/v1/query', { query: substitute(target.expr) });
      expect(a.status, title).to.equal('success');
      const out: Record<string, number> = {};
      for (const s of a.status === 'success' ? a.data.result : [])
        out[s.metric[label]!] = Number(s.value![1]);
      return out;
    };
    const phases = await byLabel('Rollouts by phase', 'phase');
    expect({ Succeeded: phases.Succeeded, Failed: phases.Failed, Paused: phases.Paused }).to.deep.equal({
      Succeeded: 1,
      Failed: 1,
      Paused: 1,
    });
    const runs = await byLabel('Runs in the time range', 'outcome');
    expect(runs.Succeeded, 'Succeeded runs').to.be.within(0.9, 1.5);
    expect(runs.Failed, 'Failed runs').to.be.within(0.9, 1.5);
    expect(runs.Aborted, 'Aborted runs').to.equal(0);
    const checks = panels.find((p) => p.title === 'Checks per Rollout and metric')!.targets![0]!;
    const a = await api(scraper, '/api/v1/query', { query: substitute(checks.expr) });
    const verdicts =
      a.status === 'success' ? a.data.result.map((s) => `${s.metric.name} ${s.metric.verdict}`) : [];
    expect(verdicts).to.include.members(['promoted Pass', 'rolled-back Fail', 'held Pass']);
  });

  it("offers the controller's job, its replica and the test's namespace in the template variables", async () => {
    for (const [name, want] of [
      ['job', JOB],
      ['instance', controller.metricsAddress],
      ['namespace', env.ns],
    ] as const) {
      const v = dashboard.templating.list.find((x) => x.name === name)!;
      const query = typeof v.query === 'string' ? v.query : v.query.query;
      const m = /^label_values\((.+), (\w+)\)$/.exec(query);
      expect(m, `${name}: ${query}`).to.not.equal(null);
      const match = m![1]!.replaceAll('$job', JOB);
      const res = await fetch(
        `${scraper.url}/api/v1/label/${m![2]}/values?${new URLSearchParams({ 'match[]': match })}`,
      );
      const body = (await res.json()) as { status: string; data: string[] };
      expect(body.status, name).to.equal('success');
      expect(body.data, name).to.include(want);
    }
  });
});
