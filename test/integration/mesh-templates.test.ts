// examples/metric-templates against a real Prometheus scraping series shaped as OSM, Linkerd and Istio export
// them, judged by the controller's own check code (templateRef from the --template-namespace catalogue,
// rendering, the Prometheus client, verdicts): healthy, 20 % errors, only errors, no requests, and p99.
import { loadAllYaml } from '@kubernetes/client-node';
import { expect } from 'chai';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PrometheusClient } from '../../src/analysis/prometheus-client.js';
import { validateQuery } from '../../src/analysis/template.js';
import type { CheckResult } from '../../src/analysis/types.js';
import type { MetricTemplate, Rollout } from '../../src/api/v1alpha1.js';
import { CheckRunner } from '../../src/controller/checks.js';
import { PrometheusAllowlist } from '../../src/controller/prometheus-allowlist.js';
import { istioShape } from '../../src/sandbox/apps/istio-metrics.js';
import { linkerdShape } from '../../src/sandbox/apps/linkerd-metrics.js';
import {
  startMeshMetricsTarget,
  type MeshMetricsTarget,
  type MeshShape,
  type TrafficProfile,
} from '../../src/sandbox/apps/mesh-metrics-target.js';
import { osmShape } from '../../src/sandbox/apps/osm-metrics.js';
import { EXAMPLES_DIR } from '../../src/sandbox/examples.js';
import { startPrometheus, type PrometheusServer } from '../../src/sandbox/prometheus/launcher.js';
import { waitFor } from '../../src/sandbox/wait.js';

const TEMPLATES_DIR = join(EXAMPLES_DIR, 'metric-templates');
/** The catalogue namespace examples/metric-templates/00-namespace.yaml creates. */
const CATALOGUE = 'perch-templates';
/** Where the Rollouts and their traffic live: a label value only, no Kubernetes here. */
const NS = 'shop';
/** The Rollout's analysis interval, which is the templates' [{{ interval }}] window: five 1 s scrapes. */
const INTERVAL = '5s';

interface Mesh {
  shape: MeshShape;
  file: string;
  successRate: string;
  latency: string;
}

const MESHES: Mesh[] = [
  {
    shape: osmShape,
    file: '10-osm.yaml',
    successRate: 'osm-request-success-rate',
    latency: 'osm-request-duration',
  },
  {
    shape: linkerdShape,
    file: '20-linkerd.yaml',
    successRate: 'linkerd-request-success-rate',
    latency: 'linkerd-request-duration',
  },
  {
    shape: istioShape,
    file: '30-istio.yaml',
    successRate: 'istio-request-success-rate',
    latency: 'istio-request-duration',
  },
];

/** Not on a bucket bound of any mesh, so each reading must land strictly inside the bound's bucket. */
const FAST_MS = 35;
const SLOW_MS = 700;

/** The canaries, each a destination the target serves in NS (never-deployed has no series at all). */
const CANARIES: Record<string, TrafficProfile> = {
  healthy: { rps: 100, errorRate: 0, latencyMs: FAST_MS },
  faulty: { rps: 100, errorRate: 0.2, latencyMs: FAST_MS },
  'only-errors': { rps: 100, errorRate: 1, latencyMs: FAST_MS },
  slow: { rps: 100, errorRate: 0, latencyMs: SLOW_MS },
  idle: { rps: 0, errorRate: 0, latencyMs: 0 },
};

/** The MetricTemplates of one file of examples/metric-templates, as `kubectl apply` would send them. */
function templatesIn(file: string): MetricTemplate[] {
  const objects = loadAllYaml(readFileSync(join(TEMPLATES_DIR, file), 'utf8')) as MetricTemplate[];
  return objects.filter((o) => o?.kind === 'MetricTemplate');
}

/** A Rollout in NS whose canary is `canary`, checking both of `mesh`'s templates by templateRef alone. */
function rollout(mesh: Mesh, canary: string): Rollout {
  return {
    apiVersion: 'perch.dev/v1alpha1',
    kind: 'Rollout',
    metadata: { name: 'web', namespace: NS },
    spec: {
      service: 'web',
      stableService: 'web-v1',
      canaryService: canary,
      steps: [{ setWeight: 50 }, { analysis: { iterations: 1 } }],
      analysis: {
        interval: INTERVAL,
        failureLimit: 0,
        inconclusiveLimit: 2,
        errorLimit: 4,
        metrics: [
          {
            name: 'request-success-rate',
            templateRef: { name: mesh.successRate },
            thresholdRange: { min: 99 },
          },
          { name: 'latency-p99', templateRef: { name: mesh.latency }, thresholdRange: { max: 500 } },
        ],
      },
    },
  };
}

/** The histogram bucket (lower, upper] that holds `ms`, from the bounds the mesh's proxies export. */
function bucketOf(bounds: readonly number[], ms: number): [number, number] {
  const i = bounds.findIndex((b) => ms <= b);
  if (i < 0) throw new Error(`${ms} ms is beyond the last bucket`);
  return [i === 0 ? 0 : bounds[i - 1]!, bounds[i]!];
}

describe("examples/metric-templates against a real Prometheus scraping each mesh's series", function () {
  this.timeout(60_000);
  let target: MeshMetricsTarget;
  let prometheus: PrometheusServer;
  let runner: CheckRunner;
  const catalogue = new Map<string, MetricTemplate>();

  /** One check round of the controller for a Rollout whose canary is `canary`: [success rate, p99]. */
  const checks = async (mesh: Mesh, canary: string): Promise<Record<'rate' | 'p99', CheckResult>> => {
    const [rate, p99] = await runner.run(
      rollout(mesh, canary),
      { metricTemplate: (ns, name) => (ns === CATALOGUE ? catalogue.get(name) : undefined) },
      new Date(),
    );
    return { rate: rate!, p99: p99! };
  };

  before(async () => {
    for (const mesh of MESHES) {
      for (const t of templatesIn(mesh.file)) catalogue.set(t.metadata?.name ?? '', t);
    }
    // One server exports all three shapes for every canary: their metric names never collide.
    target = await startMeshMetricsTarget({ shapes: MESHES.map((m) => m.shape) });
    for (const [canary, profile] of Object.entries(CANARIES)) target.set(NS, canary, profile);
    prometheus = await startPrometheus({
      jobs: [{ name: 'mesh', targets: [target.target] }],
      scrapeInterval: '1s',
    });
    runner = new CheckRunner({
      defaultAddress: prometheus.url,
      admission: { prometheus: new PrometheusAllowlist([prometheus.url]), templateNamespace: CATALOGUE },
    });
    // Every series exists from the first scrape; six scrapes fill the 5 s window that rate() reads.
    const client = new PrometheusClient({ address: prometheus.url, timeoutMs: 2000 });
    await waitFor(
      async () => {
        const r = await client.query('count_over_time(up{job="mesh"}[1m])');
        const scrapes = r.ok && r.data.resultType === 'vector' ? Number(r.data.result[0]?.value[1] ?? 0) : 0;
        return scrapes >= 6 ? true : undefined;
      },
      { what: 'six scrapes of the mesh metrics target', timeoutMs: 30_000, intervalMs: 250 },
    );
  });

  after(async () => {
    await prometheus?.stop();
    await target?.close();
  });

  it('ships two MetricTemplates per mesh in the catalogue namespace, each valid for the controller', () => {
    const files = readdirSync(TEMPLATES_DIR).filter((f) => f.endsWith('.yaml'));
    expect(files.sort()).to.deep.equal(['00-namespace.yaml', ...MESHES.map((m) => m.file)].sort());
    for (const mesh of MESHES) {
      const templates = templatesIn(mesh.file);
      expect(templates.map((t) => t.metadata?.name)).to.have.members([mesh.successRate, mesh.latency]);
      for (const t of templates) {
        expect(t.apiVersion, t.metadata?.name).to.equal('perch.dev/v1alpha1');
        expect(t.metadata?.namespace, t.metadata?.name).to.equal(CATALOGUE);
        expect(t.spec.provider, t.metadata?.name).to.deep.equal({ type: 'prometheus' });
        expect(validateQuery(t.spec.query, { metric: t.metadata?.name }), t.metadata?.name).to.equal(
          undefined,
        );
      }
      const rate = templates.find((t) => t.metadata?.name === mesh.successRate)!;
      expect(rate.spec.query, `${mesh.successRate}: the numerator's fallback`).to.match(/or\s+vector\(0\)/);
    }
  });

  for (const mesh of MESHES) {
    describe(mesh.shape.mesh, () => {
      it('reads a healthy canary as 100 % (Pass for {min: 99}) and its p99 as the latency it answers in', async () => {
        const { rate, p99 } = await checks(mesh, 'healthy');
        expect(rate.verdict, rate.reason).to.equal('Pass');
        expect(rate.value).to.be.at.least(99);
        expect(p99.verdict, p99.reason).to.equal('Pass');
        const [lower, upper] = bucketOf(mesh.shape.latencyBuckets, FAST_MS);
        expect(p99.value, `p99 of ${FAST_MS} ms requests`).to.be.above(lower).and.at.most(upper);
      });

      it('reads a canary answering 20 % of requests with 500 as about 80 % (Fail)', async () => {
        const { rate } = await checks(mesh, 'faulty');
        expect(rate.verdict, rate.reason).to.equal('Fail');
        expect(rate.value).to.be.closeTo(80, 1.5);
      });

      it('reads a canary answering only 500 as 0 % (Fail), not as no data', async () => {
        const { rate } = await checks(mesh, 'only-errors');
        expect(rate.verdict, rate.reason).to.equal('Fail');
        expect(rate.value).to.equal(0);
        expect(rate.reason).to.equal('request-success-rate 0 is below the minimum 99');
      });

      it('fails a slow canary on p99 with the latency it answers in, its success rate still passing', async () => {
        const { rate, p99 } = await checks(mesh, 'slow');
        expect(rate.verdict, rate.reason).to.equal('Pass');
        expect(p99.verdict, p99.reason).to.equal('Fail');
        const [lower, upper] = bucketOf(mesh.shape.latencyBuckets, SLOW_MS);
        expect(p99.value, `p99 of ${SLOW_MS} ms requests`).to.be.above(lower).and.at.most(upper);
      });

      it('is Inconclusive for a canary without requests, whether its series exist (idle) or not', async () => {
        for (const canary of ['idle', 'never-deployed']) {
          const { rate, p99 } = await checks(mesh, canary);
          for (const c of [rate, p99]) {
            expect(c.verdict, `${canary}: ${c.reason}`).to.equal('Inconclusive');
            expect(c.reason, canary).to.include('no data');
          }
          if (canary === 'never-deployed') expect(rate).to.not.have.property('value');
          else expect(rate.value, canary).to.satisfy(Number.isNaN);
        }
      });
    });
  }
});
