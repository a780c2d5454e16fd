// The all-5xx canary (issue 14): with a real Prometheus, Flagger's success-rate query reads an empty result
// for it and the shipped template reads 0 %; under `perch controller` the shipped template rolls it back.
import { loadAllYaml } from '@kubernetes/client-node';
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PrometheusClient, type QueryData } from '../../src/analysis/prometheus-client.js';
import { renderQuery } from '../../src/analysis/template.js';
import type { CheckResult } from '../../src/analysis/types.js';
import { checkMetric } from '../../src/analysis/verdict.js';
import type { MetricTemplate } from '../../src/api/v1alpha1.js';
import type { TrafficProfile } from '../../src/sandbox/apps/osm-metrics-target.js';
import { EXAMPLES_DIR } from '../../src/sandbox/examples.js';
import { waitFor } from '../../src/sandbox/wait.js';
import { useController } from '../support/controller-suite.js';
import { kubectlOk } from '../support/kubectl.js';
import { analysis, sharedPrometheus } from '../support/rollout-env.js';

const TEMPLATE_FILE = join(EXAMPLES_DIR, 'bookstore', '20-metrictemplates.yaml');

/** Flagger's OSM success rate as it was shipped before: no `or vector(0)` on the numerator. */
const WITHOUT_VECTOR_0 =
  'sum(rate(osm_request_total{destination_namespace="{{ namespace }}",destination_name="{{ target }}",response_code!~"5.*"}[{{ interval }}]))' +
  ' / sum(rate(osm_request_total{destination_namespace="{{ namespace }}",destination_name="{{ target }}"}[{{ interval }}])) * 100';

const ALL_5XX: TrafficProfile = { rps: 50, errorRate: 1, latencyMs: 20 };

/** The MetricTemplate object examples/bookstore ships, as a person applies it. */
function shippedTemplate(): MetricTemplate {
  const objects = loadAllYaml(readFileSync(TEMPLATE_FILE, 'utf8')) as MetricTemplate[];
  const template = objects.find(
    (o) => o?.kind === 'MetricTemplate' && o.metadata?.name === 'osm-request-success-rate',
  );
  if (!template) throw new Error(`${TEMPLATE_FILE}: no MetricTemplate osm-request-success-rate`);
  return template;
}

function render(query: string, namespace: string, canary: string, interval: string): string {
  const rendered = renderQuery(query, {
    namespace,
    name: 'web',
    service: 'web',
    stable: 'web-v1',
    canary,
    interval,
  });
  if (!rendered.ok) throw new Error(rendered.error.message);
  return rendered.value;
}

async function client(): Promise<PrometheusClient> {
  return new PrometheusClient({ address: (await sharedPrometheus()).prometheus.url, timeoutMs: 2000 });
}

async function queryData(query: string): Promise<QueryData> {
  const answer = await (await client()).query(query);
  if (!answer.ok) throw new Error(`${query}: ${answer.error.message}`);
  return answer.data;
}

/** Traffic to `canary` at `profile`, once Prometheus has scraped enough of it for a rate over 5 s. */
async function trafficTo(namespace: string, canary: string, profile: TrafficProfile): Promise<void> {
  (await sharedPrometheus()).target.set(namespace, canary, profile);
  const total = `sum(rate(osm_request_total{destination_namespace="${namespace}",destination_name="${canary}"}[5s]))`;
  await waitFor(
    async () => {
      const data = await queryData(total);
      const value = data.resultType === 'vector' ? Number(data.result[0]?.value[1]) : NaN;
      return value > 0 ? true : undefined;
    },
    { what: `Prometheus to see requests to ${namespace}/${canary}`, timeoutMs: 30_000, intervalMs: 250 },
  );
}

/** Asserts, in Prometheus itself, that no sample of a non-5xx series exists for the destination. */
async function expectNoNon5xxSeries(namespace: string, canary: string): Promise<void> {
  const non5xx = `last_over_time(osm_request_total{destination_namespace="${namespace}",destination_name="${canary}",response_code!~"5.*"}[1h])`;
  expect(await queryData(non5xx), non5xx).to.deep.equal({ resultType: 'vector', result: [] });
}

describe('verdicts: an all-5xx canary with a real Prometheus', function () {
  this.timeout(90_000);

  it('reads an empty result without `or vector(0)`, and 0 % with the shipped template', async () => {
    // No Kubernetes here: the namespace is only the label value of this test's series.
    const ns = `all-5xx-${randomBytes(3).toString('hex')}`;
    await trafficTo(ns, 'web-v2', ALL_5XX);
    await trafficTo(ns, 'web-v3', { rps: 50, errorRate: 0, latencyMs: 20 });
    await expectNoNon5xxSeries(ns, 'web-v2');
    const shipped = shippedTemplate().spec.query;
    const check = async (query: string, canary: string): Promise<CheckResult> =>
      checkMetric({
        metric: 'request-success-rate',
        result: await (await client()).query(render(query, ns, canary, '5s')),
        thresholdRange: { min: 99 },
        at: new Date(),
      });

    const before = await check(WITHOUT_VECTOR_0, 'web-v2');
    expect(before.verdict, before.reason).to.equal('Inconclusive');
    expect(before).to.not.have.property('value');
    expect(before.reason).to.include('no data');

    const now = await check(shipped, 'web-v2');
    expect(now.verdict, now.reason).to.equal('Fail');
    expect(now.value).to.equal(0);
    expect(now.reason).to.equal('request-success-rate 0 is below the minimum 99');

    // The denominator is unchanged: a healthy canary reads 100, one nobody called still reads no data.
    const healthy = await check(shipped, 'web-v3');
    expect(healthy.verdict, healthy.reason).to.equal('Pass');
    expect(healthy.value).to.equal(100);
    const absent = await check(shipped, 'never-deployed');
    expect(absent.verdict, absent.reason).to.equal('Inconclusive');
    expect(absent.reason).to.include('no data');
  });

  describe('under perch controller', function () {
    this.timeout(120_000);
    const suite = useController();

    it("is rolled back by examples/bookstore's template, naming the metric and 0, never paused for no data", async () => {
      const e = await suite.env('all-5xx');
      const template = shippedTemplate();
      template.metadata = { ...template.metadata, namespace: e.ns };
      await kubectlOk(e.cp.kubeconfig, ['apply', '-f', '-'], JSON.stringify(template));
      await trafficTo(e.ns, 'web-v2', ALL_5XX);
      await expectNoNon5xxSeries(e.ns, 'web-v2');

      // 2 s, not 1 s: the template's window is [{{ interval }}], and rate() needs two 1 s scrapes in it.
      await e.createRollout('web', {
        steps: [{ setWeight: 20 }, { analysis: { iterations: 2 } }, { setWeight: 100 }],
        analysis: analysis({
          interval: '2s',
          failureLimit: 0,
          inconclusiveLimit: 2,
          metrics: [
            {
              name: 'request-success-rate',
              templateRef: { name: 'osm-request-success-rate' },
              thresholdRange: { min: 99 },
            },
          ],
        }),
      });
      // Whichever comes first: without `or vector(0)` every check is "no data" and the run pauses.
      const ended = await e.until(
        'web',
        (r) => r.status?.phase === 'Failed' || r.status?.pauseReason === 'AnalysisInconclusive',
        'Failed, or paused for no data',
      );
      expect(ended.status?.phase, ended.status?.message).to.equal('Failed');
      expect(ended.status?.message).to.match(/request-success-rate 0 is below the minimum 99/);
      expect(ended.status?.canaryWeight).to.equal(0);
      expect(e.weights('web')).to.deep.equal([0, 20, 0]);
      const last = e.splits.seen.filter((s) => s.name === 'web').at(-1);
      expect(last).to.include({ stable: 100, canary: 0, backends: 'web-v1=100' });
      const measured = ended.status?.analysis?.measurements.filter(
        (m) => m.metric === 'request-success-rate',
      );
      expect(measured?.at(-1)).to.include({ value: 0, verdict: 'Fail' });
      const events = await e.eventsUntil('web', 'RolledBack');
      expect(events.find((ev) => ev.reason === 'RolledBack')?.message).to.include('request-success-rate 0');
    });
  });
});
