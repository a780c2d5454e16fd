// The mesh metrics target's Linkerd and Istio series as Prometheus would scrape them, on a stepped clock:
// exact counts on the labels each mesh documents, both sides of a request, and no success series at all
// for a destination that answers only 5xx. (OSM's shape: osm-metrics-target.test.ts.)
import { expect } from 'chai';
import { istioShape } from '../../src/sandbox/apps/istio-metrics.js';
import { linkerdShape } from '../../src/sandbox/apps/linkerd-metrics.js';
import {
  CALLER_OVERHEAD_MS,
  startMeshMetricsTarget,
  type MeshMetricsTarget,
} from '../../src/sandbox/apps/mesh-metrics-target.js';
import { osmShape } from '../../src/sandbox/apps/osm-metrics.js';

interface Sample {
  labels: Record<string, string>;
  value: number;
}

/** The samples of `name` in the /metrics text whose labels include `match`. */
async function samples(
  target: MeshMetricsTarget,
  name: string,
  match: Record<string, string>,
): Promise<Sample[]> {
  const text = await (await fetch(target.url)).text();
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const labels = Object.fromEntries(
      [...line.slice(name.length + 1, line.lastIndexOf('}')).matchAll(/(\w+)="([^"]*)"/g)].map((m) => [
        m[1]!,
        m[2]!,
      ]),
    );
    if (Object.entries(match).every(([k, v]) => labels[k] === v)) {
      out.push({ labels, value: Number(line.slice(line.lastIndexOf(' ') + 1)) });
    }
  }
  return out;
}

async function value(
  target: MeshMetricsTarget,
  name: string,
  match: Record<string, string>,
): Promise<number> {
  const found = await samples(target, name, match);
  expect(found, `${name} ${JSON.stringify(match)}`).to.have.length(1);
  return found[0]!.value;
}

describe('mesh metrics target (Linkerd and Istio shapes)', () => {
  let now = 0;
  let target: MeshMetricsTarget;
  beforeEach(async () => {
    now = 0;
    target = await startMeshMetricsTarget({ shapes: [osmShape, linkerdShape, istioShape], clock: () => now });
  });
  afterEach(() => target.close());

  it('refuses to start without a mesh shape', async () => {
    let error: unknown;
    await startMeshMetricsTarget({ shapes: [] }).catch((e: unknown) => (error = e));
    expect(String(error)).to.include('at least one mesh shape');
  });

  it("counts Linkerd's response_total on the canary's inbound and the caller's outbound series", async () => {
    target.set('shop', 'web-v2', { rps: 10, errorRate: 0.2, latencyMs: 35 });
    now = 3000;
    const inbound = { direction: 'inbound', namespace: 'shop', deployment: 'web-v2' };
    expect(
      await value(target, 'response_total', { ...inbound, classification: 'success', status_code: '200' }),
    ).to.equal(24);
    expect(
      await value(target, 'response_total', { ...inbound, classification: 'failure', status_code: '500' }),
    ).to.equal(6);
    // Inbound series name no Service (not even authority); the caller's outbound ones do, in dst_* labels.
    for (const s of await samples(target, 'response_total', inbound)) {
      expect(s.labels).to.not.have.any.keys('authority', 'dst_service', 'dst_deployment');
    }
    const outbound = { direction: 'outbound', deployment: 'load-generator', dst_service: 'web-v2' };
    expect(await value(target, 'response_total', { ...outbound, classification: 'failure' })).to.equal(6);
    // Latency is recorded before classification: status_code, no classification; the caller's runs longer.
    const latency = await samples(target, 'response_latency_ms_sum', inbound);
    expect(latency.map((s) => s.labels.classification)).to.deep.equal([undefined, undefined]);
    expect(latency.map((s) => s.value).sort((a, b) => a - b)).to.deep.equal([6 * 35, 24 * 35]);
    const callerSum = await value(target, 'response_latency_ms_sum', { ...outbound, status_code: '200' });
    expect(callerSum).to.equal(24 * (35 + CALLER_OVERHEAD_MS));
  });

  it("counts Istio's istio_requests_total once per reporter, the destination's over mTLS", async () => {
    target.set('shop', 'web-v2', { rps: 10, errorRate: 0.2, latencyMs: 35 });
    now = 3000;
    const workload = { destination_workload_namespace: 'shop', destination_workload: 'web-v2' };
    for (const reporter of ['destination', 'source']) {
      const at = { ...workload, reporter };
      expect(await value(target, 'istio_requests_total', { ...at, response_code: '200' })).to.equal(24);
      expect(await value(target, 'istio_requests_total', { ...at, response_code: '500' })).to.equal(6);
    }
    const server = await samples(target, 'istio_requests_total', { ...workload, reporter: 'destination' });
    expect(server.map((s) => s.labels.connection_security_policy)).to.deep.equal([
      'mutual_tls',
      'mutual_tls',
    ]);
    const sum = (reporter: string) =>
      value(target, 'istio_request_duration_milliseconds_sum', {
        ...workload,
        reporter,
        response_code: '200',
      });
    expect(await sum('destination')).to.equal(24 * 35);
    expect(await sum('source')).to.equal(24 * (35 + CALLER_OVERHEAD_MS));
  });

  it('exports no success series in any mesh for a destination that answers only 500, before and after traffic', async () => {
    target.set('shop', 'web-v2', { rps: 10, errorRate: 1, latencyMs: 35 });
    const success = async () => [
      ...(await samples(target, 'osm_request_total', { destination_name: 'web-v2', response_code: '200' })),
      ...(await samples(target, 'response_total', { dst_deployment: 'web-v2', classification: 'success' })),
      ...(await samples(target, 'response_total', { deployment: 'web-v2', classification: 'success' })),
      ...(await samples(target, 'response_latency_ms_count', { deployment: 'web-v2', status_code: '200' })),
      ...(await samples(target, 'istio_requests_total', {
        destination_workload: 'web-v2',
        response_code: '200',
      })),
    ];
    expect(await success()).to.deep.equal([]);
    now = 5000;
    expect(await success()).to.deep.equal([]);
    expect(
      await value(target, 'response_total', {
        direction: 'inbound',
        deployment: 'web-v2',
        classification: 'failure',
      }),
    ).to.equal(50);
  });

  it("drops every mesh's success series when a destination turns to answering only 500", async () => {
    target.set('shop', 'web-v2', { rps: 10, errorRate: 0, latencyMs: 35 });
    now = 1000;
    target.set('shop', 'web-v2', { rps: 10, errorRate: 1, latencyMs: 35 });
    now = 2000;
    expect(
      await samples(target, 'response_total', { deployment: 'web-v2', classification: 'success' }),
    ).to.deep.equal([]);
    expect(
      await samples(target, 'istio_requests_total', { destination_workload: 'web-v2', response_code: '200' }),
    ).to.deep.equal([]);
    expect(
      await value(target, 'istio_requests_total', {
        reporter: 'destination',
        destination_workload: 'web-v2',
        response_code: '500',
      }),
    ).to.equal(10);
  });
});
