// Analysis against a real Prometheus scraping OSM-style metrics every second: the SPEC queries rendered
// from templates, their verdicts as traffic changes, a stopped Prometheus, and a restart on the same data.
import { expect } from 'chai';
import {
  PrometheusClient,
  type QueryOutcome,
  type QueryResult,
} from '../../src/analysis/prometheus-client.js';
import { renderQuery, type TemplateValues } from '../../src/analysis/template.js';
import type { CheckResult, ThresholdRange } from '../../src/analysis/types.js';
import { checkMetric } from '../../src/analysis/verdict.js';
import { startOsmMetricsTarget, type OsmMetricsTarget } from '../../src/sandbox/apps/osm-metrics-target.js';
import { pidAlive } from '../../src/sandbox/child-process.js';
import { startPrometheus, type PrometheusServer } from '../../src/sandbox/prometheus/launcher.js';
import { waitFor } from '../../src/sandbox/wait.js';

const SUCCESS_RATE = `(sum(rate(osm_request_total{destination_namespace="{{ namespace }}",destination_name="{{ canary }}",response_code!~"5.*"}[{{ interval }}])) or vector(0)) / sum(rate(osm_request_total{destination_namespace="{{ namespace }}",destination_name="{{ canary }}"}[{{ interval }}])) * 100`;
const LATENCY_P99 = `histogram_quantile(0.99, sum(rate(osm_request_duration_ms_bucket{destination_namespace="{{ namespace }}",destination_name="{{ canary }}"}[{{ interval }}])) by (le))`;

const base: TemplateValues = {
  namespace: 'ns',
  name: 'web',
  service: 'web',
  stable: 'stable',
  canary: 'canary',
  interval: '5s',
};

function render(template: string, values: Partial<TemplateValues> = {}): string {
  const result = renderQuery(template, { ...base, ...values });
  if (!result.ok) throw new Error(result.error.message);
  return result.value;
}

describe('analysis against a real Prometheus', function () {
  this.timeout(120_000);
  let target: OsmMetricsTarget;
  let prometheus: PrometheusServer;
  let client: PrometheusClient;
  const outcomes: QueryOutcome[] = [];
  const pids: number[] = [];

  const check = async (
    metric: string,
    query: string,
    thresholdRange?: ThresholdRange,
  ): Promise<CheckResult> =>
    checkMetric({
      metric,
      result: await client.query(query),
      ...(thresholdRange ? { thresholdRange } : {}),
      at: new Date(),
    });

  /** Polls until `accept` holds: Prometheus offers no event for "the next scrape has been evaluated". */
  const eventually = (
    what: string,
    metric: string,
    query: string,
    range: ThresholdRange | undefined,
    accept: (c: CheckResult) => boolean,
  ): Promise<CheckResult> =>
    waitFor(
      async () => {
        const c = await check(metric, query, range);
        return accept(c) ? c : undefined;
      },
      { what, timeoutMs: 30_000, intervalMs: 250 },
    );

  before(async () => {
    target = await startOsmMetricsTarget();
    target.set('ns', 'canary', { rps: 20, errorRate: 0, latencyMs: 120 });
    target.set('ns', 'stable', { rps: 20, errorRate: 0, latencyMs: 40 });
    target.set('quiet-ns', 'idle', { rps: 0, errorRate: 0, latencyMs: 0 });
    prometheus = await startPrometheus({
      jobs: [{ name: 'osm', targets: [target.target] }],
      scrapeInterval: '1s',
    });
    pids.push(prometheus.pid());
    client = new PrometheusClient({
      address: prometheus.url,
      timeoutMs: 2000,
      onOutcome: (o) => outcomes.push(o),
    });
    await eventually(
      'the canary success rate to have data',
      'success-rate',
      render(SUCCESS_RATE),
      undefined,
      (c) => Number.isFinite(c.value),
    );
  });

  after(async () => {
    await prometheus?.stop();
    await target?.close();
    for (const pid of pids) expect(pidAlive(pid), `prometheus pid ${pid} still alive`).to.equal(false);
  });

  it('passes a healthy canary: 100% success against {min: 99}', async () => {
    const c = await check('request-success-rate', render(SUCCESS_RATE), { min: 99 });
    expect(c.verdict, c.reason).to.equal('Pass');
    expect(c.value).to.equal(100);
  });

  it('fails the canary once 20% of its requests answer 500, with a value near 80', async () => {
    target.set('ns', 'canary', { rps: 20, errorRate: 0.2, latencyMs: 120 });
    try {
      const c = await eventually(
        'the success rate to settle near 80',
        'request-success-rate',
        render(SUCCESS_RATE),
        { min: 99 },
        (c) => c.verdict === 'Fail' && Math.abs((c.value ?? 0) - 80) < 1,
      );
      expect(c.reason).to.match(/^request-success-rate (79|80)(\.\d+)? is below the minimum 99$/);
    } finally {
      target.set('ns', 'canary', { rps: 20, errorRate: 0, latencyMs: 120 });
    }
  });

  it('is inconclusive for a destination without traffic: NaN (0/0) or no series at all', async () => {
    const idle = await eventually(
      'the idle destination to read NaN',
      'request-success-rate',
      render(SUCCESS_RATE, { namespace: 'quiet-ns', canary: 'idle' }),
      { min: 99 },
      (c) => c.value !== undefined,
    );
    expect(idle.verdict, idle.reason).to.equal('Inconclusive');
    expect(idle.value).to.satisfy(Number.isNaN);

    const absent = await check(
      'request-success-rate',
      render(SUCCESS_RATE, { namespace: 'ns', canary: 'never-deployed' }),
      { min: 99 },
    );
    expect(absent.verdict, absent.reason).to.equal('Inconclusive');
    expect(absent).to.not.have.property('value');
    expect(absent.reason).to.include('no data');
  });

  it('errors on a query that returns one series per destination', async () => {
    const perDestination =
      'sum by (destination_name)(rate(osm_request_total{destination_namespace="{{ namespace }}"}[{{ interval }}]))';
    const c = await check('per-destination', render(perDestination), { min: 1 });
    expect(c.verdict, c.reason).to.equal('Error');
    expect(c.reason).to.include('2 series');
  });

  it('checks the p99 latency from the duration histogram against {max}', async () => {
    // Every request takes 120 ms, which lands in the (100, 250] bucket; histogram_quantile interpolates
    // linearly inside it: 100 + 0.99 × 150 = 248.5.
    const query = render(LATENCY_P99);
    const pass = await check('latency-p99', query, { max: 300 });
    expect(pass.verdict, pass.reason).to.equal('Pass');
    expect(pass.value).to.be.closeTo(248.5, 0.01);
    const fail = checkMetric({
      metric: 'latency-p99',
      result: await client.query(query),
      thresholdRange: { max: 200 },
      at: new Date(),
    });
    expect(fail.verdict).to.equal('Fail');
    expect(fail.reason).to.equal('latency-p99 248.5 is above the maximum 200');
  });

  it('keeps a hostile templateVariables value inside its label string, double- or single-quoted', async () => {
    const template = 'sum(rate(osm_request_total{destination_name="{{ variables.who }}"}[{{ interval }}]))';
    for (const [query, who] of [
      [template, 'x"} or vector(1) or {a="'],
      [template.replace(/"/g, "'"), "x'} or vector(1) or {a='"],
    ] as const) {
      const rendered = renderQuery(query, { ...base, variables: { who } });
      if (!rendered.ok) throw new Error(rendered.error.message);
      const answer = await client.query(rendered.value);
      // Escaped, the whole value is one label value no series has: an empty vector, not vector(1).
      if (!answer.ok) throw new Error(`${rendered.value}: ${answer.error.message}`);
      expect(answer.data, rendered.value).to.deep.equal({ resultType: 'vector', result: [] });
    }
  });

  it('reports a stopped Prometheus as unreachable (Error), then works again after a restart on the same data', async () => {
    const query = render(SUCCESS_RATE);
    const samples = async (): Promise<number> => {
      const r = await client.query(
        'count_over_time(osm_request_total{destination_name="canary",response_code="500"}[10m])',
      );
      const value = r.ok && r.data.resultType === 'vector' ? r.data.result[0]?.value[1] : undefined;
      return Number(value ?? 0);
    };
    const scrapedBefore = await samples();
    expect(scrapedBefore).to.be.above(3);
    const pidBefore = prometheus.pid();
    let whileDown: QueryResult | undefined;
    await prometheus.restart(async () => {
      expect(pidAlive(pidBefore)).to.equal(false);
      whileDown = await client.query(query);
    });
    pids.push(prometheus.pid());
    expect(prometheus.pid()).to.not.equal(pidBefore);
    if (!whileDown || whileDown.ok) throw new Error('expected an error while Prometheus was stopped');
    expect(whileDown.error.kind).to.equal('unreachable');
    const down = checkMetric({
      metric: 'request-success-rate',
      result: whileDown,
      thresholdRange: { min: 99 },
      at: new Date(),
    });
    expect(down.verdict).to.equal('Error');
    expect(down.reason).to.include('unreachable');

    // The samples scraped before the restart are still there: same port, same TSDB.
    expect(await samples()).to.be.at.least(scrapedBefore);
    const c = await eventually(
      'a passing check after the restart',
      'request-success-rate',
      query,
      { min: 99 },
      (c) => c.verdict === 'Pass',
    );
    expect(c.value).to.equal(100);
    expect(outcomes).to.include('success').and.include('unreachable');
  });
});
