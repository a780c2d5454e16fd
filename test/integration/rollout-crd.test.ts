// The Rollout and MetricTemplate CRDs (crds/rollout.yaml, crds/metrictemplate.yaml) as a person meets
// them: through the real kubectl against the local control plane. Defaults, every schema and CEL rule
// refusing a bad spec with the field's name, the printer columns, and the status subresource.
import { dumpYaml } from '@kubernetes/client-node';
import { expect } from 'chai';
import type { MetricTemplateSpec, Rollout, RolloutSpec, RolloutStatus } from '../../src/api/v1alpha1.js';
import type { ControlPlane } from '../../src/sandbox/control-plane/index.js';
import { sharedControlPlane, testNamespace } from '../support/control-plane.js';
import { kubectl, kubectlOk, type KubectlResult } from '../support/kubectl.js';

const GROUP = 'perch.dev';
const API_VERSION = `${GROUP}/v1alpha1`;

interface Stored<S> {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; generation: number; resourceVersion: string };
  spec: S;
  status?: RolloutStatus;
}

/** A Rollout manifest as YAML, the way a person pipes it to `kubectl apply -f -`. */
function rolloutManifest(name: string, spec: unknown, rest: Record<string, unknown> = {}): string {
  return dumpYaml({ apiVersion: API_VERSION, kind: 'Rollout', metadata: { name }, spec, ...rest });
}

function templateManifest(name: string, spec: unknown): string {
  return dumpYaml({ apiVersion: API_VERSION, kind: 'MetricTemplate', metadata: { name }, spec });
}

async function getJson<S>(
  kubeconfig: string,
  ns: string,
  resource: string,
  name: string,
): Promise<Stored<S>> {
  return JSON.parse(
    await kubectlOk(kubeconfig, ['get', resource, name, '-n', ns, '-o', 'json']),
  ) as Stored<S>;
}

/**
 * A kubectl table cut at the header's column starts, so an empty cell stays an empty string
 * (kubectl leaves a missing value blank, which splitting on whitespace would lose).
 */
function parseTable(out: string): { header: string[]; rows: Record<string, string>[] } {
  const [head = '', ...lines] = out.trimEnd().split('\n');
  const starts = [...head.matchAll(/\S+/g)].map((m) => ({ name: m[0], at: m.index }));
  const rows = lines.map((line) =>
    Object.fromEntries(
      starts.map(({ name, at }, i) => [name, line.slice(at, starts[i + 1]?.at ?? line.length).trim()]),
    ),
  );
  return { header: starts.map((s) => s.name), rows };
}

const SUCCESS_RATE = {
  name: 'request-success-rate',
  query:
    '(sum(rate(osm_request_total{destination_namespace="{{ namespace }}",destination_name="{{ canary }}",response_code!~"5.*"}[{{ interval }}])) or vector(0))' +
    ' / sum(rate(osm_request_total{destination_namespace="{{ namespace }}",destination_name="{{ canary }}"}[{{ interval }}])) * 100',
  thresholdRange: { min: 99 },
};

/** A valid spec with explicit steps and one metric; the invalid cases below each break one rule of it. */
function validSpec(): RolloutSpec {
  return {
    service: 'web',
    stableService: 'web-v1',
    canaryService: 'web-v2',
    steps: [
      { setWeight: 10 },
      { analysis: { iterations: 2 } },
      { setWeight: 50 },
      { pause: { duration: '2m' } },
      { setWeight: 100 },
    ],
    analysis: {
      interval: '30s',
      failureLimit: 0,
      inconclusiveLimit: 2,
      errorLimit: 4,
      metrics: [{ ...SUCCESS_RATE }],
    },
  };
}

/** validSpec() with `change` merged over it; a key set to undefined is left out. */
function specWith(change: Record<string, unknown>): Record<string, unknown> {
  const spec: Record<string, unknown> = { ...validSpec(), ...change };
  for (const [k, v] of Object.entries(spec)) if (v === undefined) delete spec[k];
  return spec;
}

/** validSpec()'s analysis with `change` merged over it. */
function analysisWith(change: Record<string, unknown>): Record<string, unknown> {
  return specWith({ analysis: { ...validSpec().analysis, ...change } });
}

/** validSpec()'s single metric with `change` merged over it; a key set to undefined is left out. */
function metricWith(change: Record<string, unknown>): Record<string, unknown> {
  const metric: Record<string, unknown> = { ...SUCCESS_RATE, ...change };
  for (const [k, v] of Object.entries(metric)) if (v === undefined) delete metric[k];
  return analysisWith({ metrics: [metric] });
}

/** Runs calls at most `n` at a time, the others waiting their turn in order. */
function slots(n: number): <T>(call: () => Promise<T>) => Promise<T> {
  let free = n;
  const waiting: (() => void)[] = [];
  return async (call) => {
    if (free > 0) free--;
    else await new Promise<void>((resolve) => waiting.push(resolve));
    try {
      return await call();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else free++;
    }
  };
}

/** What kubectl said to a bad object's apply, and to a get of it after. */
interface Refusal {
  applied: KubectlResult;
  gone: KubectlResult;
}

describe('kubectl and the Rollout and MetricTemplate CRDs', function () {
  this.timeout(90_000);
  let cp: ControlPlane;
  let kubeconfig: string;

  before(async function () {
    this.timeout(180_000);
    cp = await sharedControlPlane();
    kubeconfig = cp.kubeconfig;
  });

  const namespace = (prefix: string) => testNamespace(cp.kubeConfig(), prefix);
  /**
   * Each refusal is a test of its own, in a namespace of its own; their kubectl runs go four at a time,
   * started before the first of them (one after another, they would be most of this file's time).
   */
  const refusals = (
    prefix: string,
    resource: string,
    manifests: Map<string, string>,
  ): Map<string, Promise<Refusal>> => {
    const slot = slots(4);
    const out = new Map<string, Promise<Refusal>>();
    for (const [what, manifest] of manifests) {
      const refusal = slot(async () => {
        const ns = await namespace(prefix);
        const applied = await kubectl(kubeconfig, ['apply', '-n', ns, '-f', '-'], manifest);
        const gone = await kubectl(kubeconfig, ['get', resource, 'bad', '-n', ns]);
        return { applied, gone };
      });
      // Awaited by its test; a failure before then is that test's, not an unhandled rejection.
      refusal.catch(() => undefined);
      out.set(what, refusal);
    }
    return out;
  };

  it('kubectl api-resources lists rollouts (prl) and metrictemplates (pmt), namespaced, in category perch', async () => {
    const { rows } = parseTable(await kubectlOk(kubeconfig, ['api-resources', `--api-group=${GROUP}`]));
    expect(rows).to.deep.equal([
      {
        NAME: 'metrictemplates',
        SHORTNAMES: 'pmt',
        APIVERSION: API_VERSION,
        NAMESPACED: 'true',
        KIND: 'MetricTemplate',
      },
      { NAME: 'rollouts', SHORTNAMES: 'prl', APIVERSION: API_VERSION, NAMESPACED: 'true', KIND: 'Rollout' },
    ]);
    const inCategory = await kubectlOk(kubeconfig, ['api-resources', '--categories=perch', '-o', 'name']);
    expect(inCategory.trim().split('\n')).to.have.members([`metrictemplates.${GROUP}`, `rollouts.${GROUP}`]);

    const crd = JSON.parse(
      await kubectlOk(kubeconfig, ['get', 'crd', `rollouts.${GROUP}`, '-o', 'json']),
    ) as {
      spec: { versions: { name: string; subresources?: { status?: object } }[] };
      status: { conditions: { type: string; status: string }[] };
    };
    expect(crd.spec.versions.map((v) => v.name)).to.deep.equal(['v1alpha1']);
    expect(crd.spec.versions[0]?.subresources?.status).to.deep.equal({});
    expect(crd.status.conditions.find((c) => c.type === 'Established')?.status).to.equal('True');
  });

  describe('defaults', () => {
    it('a minimal Rollout reads back with trafficRouting.smi.apiVersion and progressDeadlineSeconds defaulted', async () => {
      const ns = await namespace('rollout-defaults-minimal');
      const spec: RolloutSpec = {
        service: 'web',
        stableService: 'web-v1',
        canaryService: 'web-v2',
        steps: [{ setWeight: 10 }, { pause: {} }, { setWeight: 100 }],
      };
      const out = await kubectlOk(kubeconfig, ['apply', '-n', ns, '-f', '-'], rolloutManifest('web', spec));
      expect(out.trim()).to.equal(`rollout.${GROUP}/web created`);

      const stored = await getJson<RolloutSpec>(kubeconfig, ns, 'rollout', 'web');
      expect(stored.apiVersion).to.equal(API_VERSION);
      expect(stored.kind).to.equal('Rollout');
      expect(stored.spec).to.deep.equal({
        ...spec,
        trafficRouting: { smi: { apiVersion: 'split.smi-spec.io/v1alpha2' } },
        progressDeadlineSeconds: 600,
      });
      expect(stored.status).to.equal(undefined);
    });

    it('a minimal analysis reads back with interval, limits, prometheus.timeout and onNoData defaulted', async () => {
      const ns = await namespace('rollout-defaults-analysis');
      const spec = {
        service: `web.${ns}.svc.cluster.local`,
        stableService: 'web-v1',
        canaryService: 'web-v2',
        stepWeight: 10,
        analysis: {
          metrics: [
            { name: 'success-rate', query: SUCCESS_RATE.query, thresholdRange: { min: 99 } },
            {
              name: 'latency-p99',
              templateRef: { name: 'osm-request-duration' },
              thresholdRange: { max: 500 },
            },
          ],
        },
      };
      await kubectlOk(kubeconfig, ['apply', '-n', ns, '-f', '-'], rolloutManifest('web', spec));

      const stored = await getJson<RolloutSpec>(kubeconfig, ns, 'prl', 'web');
      const expected: RolloutSpec = {
        service: `web.${ns}.svc.cluster.local`,
        stableService: 'web-v1',
        canaryService: 'web-v2',
        stepWeight: 10,
        trafficRouting: { smi: { apiVersion: 'split.smi-spec.io/v1alpha2' } },
        analysis: {
          interval: '30s',
          failureLimit: 0,
          inconclusiveLimit: 2,
          errorLimit: 4,
          prometheus: { timeout: '5s' },
          metrics: [
            { ...spec.analysis.metrics[0]!, onNoData: 'inconclusive' },
            { ...spec.analysis.metrics[1]!, onNoData: 'inconclusive' },
          ],
        },
        progressDeadlineSeconds: 600,
      };
      expect(stored.spec).to.deep.equal(expected);
    });

    it('the SPEC §2 example is accepted and read back as written, explicit values over defaults', async () => {
      const ns = await namespace('rollout-spec-example');
      const spec: RolloutSpec = {
        service: `bookstore.${ns}.svc.cluster.local`,
        stableService: 'bookstore-v1',
        canaryService: 'bookstore-v2',
        trafficRouting: { smi: { trafficSplitName: 'bookstore', apiVersion: 'split.smi-spec.io/v1alpha4' } },
        steps: [
          { setWeight: 10 },
          { analysis: { iterations: 2 } },
          { setWeight: 50 },
          { pause: { duration: '2m' } },
          { setWeight: 100 },
        ],
        analysis: {
          interval: '1m30s',
          failureLimit: 1,
          inconclusiveLimit: 0,
          errorLimit: 10,
          prometheus: { address: 'http://prometheus.monitoring:9090', timeout: '2500ms' },
          metrics: [
            { ...SUCCESS_RATE, onNoData: 'fail' },
            {
              name: 'latency-p99',
              templateRef: { name: 'osm-request-duration', namespace: 'shared-metrics' },
              templateVariables: { quantile: '0.99' },
              thresholdRange: { min: 0, max: 500.5 },
              onNoData: 'pass',
            },
          ],
        },
        window: { schedule: '* 9-16 * * 1-5', timeZone: 'Europe/Berlin' },
        progressDeadlineSeconds: 1200,
      };
      await kubectlOk(kubeconfig, ['apply', '-n', ns, '-f', '-'], rolloutManifest('bookstore', spec));
      expect((await getJson<RolloutSpec>(kubeconfig, ns, 'rollout', 'bookstore')).spec).to.deep.equal(spec);
    });

    it('accepts the stepWeight/maxWeight and stepWeights shorthands, equal weights included', async () => {
      const ns = await namespace('rollout-shorthands');
      const shorthands: Record<string, Partial<RolloutSpec>> = {
        linear: { stepWeight: 20, maxWeight: 60 },
        equal: { stepWeight: 50, maxWeight: 50 },
        listed: { stepWeights: [1, 5, 5, 25, 50] },
        'flat-steps': { steps: [{ setWeight: 20 }, { pause: {} }, { setWeight: 20 }, { setWeight: 100 }] },
      };
      for (const [name, shorthand] of Object.entries(shorthands)) {
        const spec = specWith({ steps: undefined, ...shorthand });
        await kubectlOk(kubeconfig, ['apply', '-n', ns, '-f', '-'], rolloutManifest(name, spec));
        const stored = await getJson<RolloutSpec>(kubeconfig, ns, 'rollout', name);
        expect(stored.spec, name).to.deep.include(shorthand);
      }
    });
  });

  describe('invalid Rollouts are refused by kubectl apply, naming the field', () => {
    // `unknownField` cases are refused by the API server's strict decoding (kubectl asks for it by
    // default) before validation, so their stderr does not say "is invalid".
    const cases: { what: string; spec: Record<string, unknown>; messages: string[]; unknownField?: true }[] =
      [
        {
          what: 'a setWeight of 101',
          spec: specWith({ steps: [{ setWeight: 101 }] }),
          messages: ['spec.steps[0].setWeight', 'less than or equal to 100'],
        },
        {
          what: 'a setWeight of -1',
          spec: specWith({ steps: [{ setWeight: -1 }, { setWeight: 100 }] }),
          messages: ['spec.steps[0].setWeight', 'greater than or equal to 0'],
        },
        {
          what: 'a stepWeights entry of 101',
          spec: specWith({ steps: undefined, stepWeights: [10, 101] }),
          messages: ['spec.stepWeights[1]', 'less than or equal to 100'],
        },
        {
          what: 'a maxWeight of 0',
          spec: specWith({ steps: undefined, stepWeight: 10, maxWeight: 0 }),
          messages: ['spec.maxWeight', 'greater than or equal to 1'],
        },
        {
          what: 'setWeights that decrease',
          spec: specWith({ steps: [{ setWeight: 50 }, { pause: {} }, { setWeight: 10 }] }),
          messages: ['spec.steps: Invalid value', 'the setWeight values of spec.steps must not decrease'],
        },
        {
          what: 'stepWeights that decrease',
          spec: specWith({ steps: undefined, stepWeights: [5, 25, 10] }),
          messages: ['spec.stepWeights: Invalid value', 'spec.stepWeights must not decrease'],
        },
        {
          what: 'both steps and stepWeight',
          spec: specWith({ stepWeight: 10 }),
          messages: [
            'spec: Invalid value',
            'set one of spec.steps, spec.stepWeight or spec.stepWeights, not several',
          ],
        },
        {
          what: 'both stepWeight and stepWeights',
          spec: specWith({ steps: undefined, stepWeight: 10, stepWeights: [10, 20] }),
          messages: [
            'spec: Invalid value',
            'set one of spec.steps, spec.stepWeight or spec.stepWeights, not several',
          ],
        },
        {
          what: 'none of steps, stepWeight and stepWeights',
          spec: specWith({ steps: undefined }),
          messages: ['spec: Invalid value', 'set one of spec.steps, spec.stepWeight or spec.stepWeights'],
        },
        {
          what: 'maxWeight without stepWeight',
          spec: specWith({ maxWeight: 50 }),
          messages: ['spec.maxWeight: Invalid value', 'spec.maxWeight applies only to spec.stepWeight'],
        },
        {
          what: 'a stepWeight above maxWeight',
          spec: specWith({ steps: undefined, stepWeight: 30, maxWeight: 20 }),
          messages: ['spec.stepWeight: Invalid value', 'spec.stepWeight must not exceed spec.maxWeight'],
        },
        {
          what: 'a step with two keys',
          spec: specWith({ steps: [{ setWeight: 10, pause: {} }, { setWeight: 100 }] }),
          messages: ['spec.steps[0]: Invalid value', 'sets exactly one of setWeight, analysis or pause'],
        },
        {
          what: 'an empty step',
          spec: specWith({ steps: [{ setWeight: 10 }, {}, { setWeight: 100 }] }),
          messages: ['spec.steps[1]: Invalid value', 'sets exactly one of setWeight, analysis or pause'],
        },
        {
          what: 'a misspelt step key',
          spec: specWith({ steps: [{ setWeigth: 10 }] }),
          messages: ['unknown field "spec.steps[0].setWeigth"'],
          unknownField: true,
        },
        {
          what: 'analysis.iterations 0',
          spec: specWith({ steps: [{ setWeight: 10 }, { analysis: { iterations: 0 } }] }),
          messages: ['spec.steps[1].analysis.iterations', 'greater than or equal to 1'],
        },
        {
          what: 'an analysis step without spec.analysis',
          spec: specWith({ analysis: undefined }),
          messages: [
            'spec.steps: Invalid value',
            'an analysis step needs spec.analysis with at least one metric',
          ],
        },
        {
          what: 'stepWeight without spec.analysis',
          spec: specWith({ steps: undefined, analysis: undefined, stepWeight: 10 }),
          messages: ['spec.analysis: Invalid value', 'they need spec.analysis with at least one metric'],
        },
        {
          what: 'an analysis without metrics',
          spec: analysisWith({ metrics: [] }),
          messages: ['spec.analysis.metrics', 'at least 1 items'],
        },
        {
          what: 'a metric with both query and templateRef',
          spec: metricWith({ templateRef: { name: 'osm-request-duration' } }),
          messages: [
            'spec.analysis.metrics[0]: Invalid value',
            'exactly one of query (inline PromQL) or templateRef',
          ],
        },
        {
          what: 'a metric with neither query nor templateRef',
          spec: metricWith({ query: undefined }),
          messages: [
            'spec.analysis.metrics[0]: Invalid value',
            'exactly one of query (inline PromQL) or templateRef',
          ],
        },
        {
          what: 'a templateRef namespace "Shared_Metrics"',
          spec: metricWith({
            query: undefined,
            templateRef: { name: 'latency', namespace: 'Shared_Metrics' },
          }),
          messages: ['spec.analysis.metrics[0].templateRef.namespace', 'should match'],
        },
        {
          what: 'two metrics with one name',
          spec: analysisWith({ metrics: [SUCCESS_RATE, { ...SUCCESS_RATE, thresholdRange: { min: 90 } }] }),
          messages: ['spec.analysis.metrics[1]: Duplicate value', SUCCESS_RATE.name],
        },
        {
          what: 'a thresholdRange with min above max',
          spec: metricWith({ thresholdRange: { min: 99, max: 1 } }),
          messages: [
            'spec.analysis.metrics[0].thresholdRange: Invalid value',
            'must not exceed thresholdRange.max',
          ],
        },
        {
          what: 'a thresholdRange without bounds',
          spec: metricWith({ thresholdRange: {} }),
          messages: ['spec.analysis.metrics[0].thresholdRange: Invalid value', 'needs min, max or both'],
        },
        {
          what: 'an unknown onNoData',
          spec: metricWith({ onNoData: 'ignore' }),
          messages: ['spec.analysis.metrics[0].onNoData', 'Unsupported value: "ignore"'],
        },
        {
          what: 'an interval of "5 minutes"',
          spec: analysisWith({ interval: '5 minutes' }),
          messages: ['spec.analysis.interval', 'should match'],
        },
        {
          what: 'an interval of 0s',
          spec: analysisWith({ interval: '0s' }),
          messages: [
            'spec.analysis.interval: Invalid value',
            'spec.analysis.interval must be longer than 0s',
          ],
        },
        {
          what: 'an interval with units out of order (30s1m)',
          spec: analysisWith({ interval: '30s1m' }),
          messages: ['spec.analysis.interval', 'should match'],
        },
        {
          what: 'a prometheus.timeout of "5"',
          spec: analysisWith({ prometheus: { timeout: '5' } }),
          messages: ['spec.analysis.prometheus.timeout', 'should match'],
        },
        {
          what: 'a pause.duration of "2 minutes"',
          spec: specWith({ steps: [{ setWeight: 10 }, { pause: { duration: '2 minutes' } }] }),
          messages: ['spec.steps[1].pause.duration', 'should match'],
        },
        {
          what: 'a prometheus.address without a scheme',
          spec: analysisWith({ prometheus: { address: 'prometheus.monitoring:9090' } }),
          messages: ['spec.analysis.prometheus.address', 'should match'],
        },
        {
          what: 'a negative failureLimit',
          spec: analysisWith({ failureLimit: -1 }),
          messages: ['spec.analysis.failureLimit', 'greater than or equal to 0'],
        },
        {
          what: 'a service "Bad_Name"',
          spec: specWith({ service: 'Bad_Name' }),
          messages: ['spec.service', 'should match'],
        },
        {
          what: 'a service FQDN without .cluster.local',
          spec: specWith({ service: 'web.default.svc' }),
          messages: ['spec.service', 'should match'],
        },
        {
          what: 'a missing stableService',
          spec: specWith({ stableService: undefined }),
          messages: ['spec.stableService', 'Required value'],
        },
        {
          what: 'an empty canaryService',
          spec: specWith({ canaryService: '' }),
          messages: ['spec.canaryService', 'at least 1 chars long'],
        },
        {
          what: 'the same Service as stable and canary',
          spec: specWith({ canaryService: 'web-v1' }),
          messages: [
            'spec.canaryService: Invalid value',
            'spec.canaryService must differ from spec.stableService',
          ],
        },
        {
          what: 'an SMI apiVersion split.smi-spec.io/v1beta1',
          spec: specWith({ trafficRouting: { smi: { apiVersion: 'split.smi-spec.io/v1beta1' } } }),
          messages: ['spec.trafficRouting.smi.apiVersion', 'Unsupported value: "split.smi-spec.io/v1beta1"'],
        },
        {
          what: 'a progressDeadlineSeconds of 0',
          spec: specWith({ progressDeadlineSeconds: 0 }),
          messages: ['spec.progressDeadlineSeconds', 'greater than or equal to 1'],
        },
        {
          what: 'more than 64 steps',
          spec: specWith({ steps: Array.from({ length: 65 }, () => ({ setWeight: 10 })) }),
          messages: ['spec.steps', 'must have at most 64 items'],
        },
      ];
    let refused = new Map<string, Promise<Refusal>>();
    before(() => {
      refused = refusals(
        'rollout-invalid',
        'rollout',
        new Map(cases.map(({ what, spec }) => [what, rolloutManifest('bad', spec)])),
      );
    });
    for (const { what, messages, unknownField } of cases) {
      it(`refuses ${what}`, async () => {
        const { applied: r, gone } = await refused.get(what)!;
        expect(r.code, r.stdout).to.not.equal(0);
        if (!unknownField) expect(r.stderr).to.contain('The Rollout "bad" is invalid');
        for (const m of messages) expect(r.stderr).to.contain(m);
        expect(gone.code).to.not.equal(0);
        expect(gone.stderr).to.contain('NotFound');
      });
    }

    it('names every broken rule of one spec in one refusal, schema and CEL alike', async () => {
      // A person fixing a spec sees everything that is wrong with it at once, not one error per apply.
      const ns = await namespace('rollout-invalid-many');
      const spec = specWith({
        service: 'Bad_Name',
        canaryService: 'web-v1',
        maxWeight: 50,
        steps: [{ setWeight: 101 }, { setWeight: 10 }],
        analysis: { prometheus: { timeout: '5' }, metrics: [SUCCESS_RATE] },
      });
      const r = await kubectl(kubeconfig, ['apply', '-n', ns, '-f', '-'], rolloutManifest('bad', spec));
      expect(r.code).to.not.equal(0);
      expect(r.stderr).to.contain('The Rollout "bad" is invalid');
      for (const m of [
        'spec.service: Invalid value: "Bad_Name"',
        'spec.steps[0].setWeight: Invalid value: 101',
        'spec.analysis.prometheus.timeout: Invalid value: "5"',
        'spec.canaryService: Invalid value',
        'spec.maxWeight: Invalid value',
        'spec.steps: Invalid value',
      ]) {
        expect(r.stderr).to.contain(m);
      }
    });
  });

  it('kubectl get rollouts and get prl show NAME PHASE WEIGHT STEP AGE, and -o wide adds MESSAGE', async () => {
    const ns = await namespace('rollout-columns');
    await kubectlOk(kubeconfig, ['apply', '-n', ns, '-f', '-'], rolloutManifest('bookstore', validSpec()));
    const status = { phase: 'Progressing', canaryWeight: 10, step: '2/6', message: 'waiting' };
    const patched = await kubectlOk(kubeconfig, [
      'patch',
      'rollout',
      'bookstore',
      '-n',
      ns,
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({ status }),
    ]);
    expect(patched.trim()).to.equal(`rollout.${GROUP}/bookstore patched`);

    for (const resource of ['rollouts', 'prl', 'rollout', `rollouts.${GROUP}`]) {
      const { header, rows } = parseTable(await kubectlOk(kubeconfig, ['get', resource, '-n', ns]));
      expect(header, resource).to.deep.equal(['NAME', 'PHASE', 'WEIGHT', 'STEP', 'AGE']);
      expect(rows, resource).to.have.length(1);
      expect(rows[0], resource).to.include({
        NAME: 'bookstore',
        PHASE: 'Progressing',
        WEIGHT: '10',
        STEP: '2/6',
      });
      expect(rows[0]?.AGE, resource).to.match(/^\d+[smhd]/);
    }
    const wide = parseTable(await kubectlOk(kubeconfig, ['get', 'prl', '-n', ns, '-o', 'wide']));
    expect(wide.header).to.deep.equal(['NAME', 'PHASE', 'WEIGHT', 'STEP', 'AGE', 'MESSAGE']);
    expect(wide.rows[0]).to.include({
      NAME: 'bookstore',
      PHASE: 'Progressing',
      STEP: '2/6',
      MESSAGE: 'waiting',
    });

    // Before the controller writes a status, the columns are there and empty.
    await kubectlOk(kubeconfig, ['apply', '-n', ns, '-f', '-'], rolloutManifest('fresh', validSpec()));
    const fresh = parseTable(await kubectlOk(kubeconfig, ['get', 'prl', 'fresh', '-n', ns, '-o', 'wide']));
    expect(fresh.rows[0]).to.include({ NAME: 'fresh', PHASE: '', WEIGHT: '', STEP: '', MESSAGE: '' });

    // `kubectl get perch` lists everything in the category.
    const category = await kubectlOk(kubeconfig, ['get', 'perch', '-n', ns, '-o', 'name']);
    expect(category.trim().split('\n')).to.have.members([
      `rollout.${GROUP}/bookstore`,
      `rollout.${GROUP}/fresh`,
    ]);
  });

  it('the status subresource: spec writes leave status alone, status writes leave spec alone', async () => {
    const ns = await namespace('rollout-status');
    const spec = validSpec();
    await kubectlOk(kubeconfig, ['apply', '-n', ns, '-f', '-'], rolloutManifest('web', spec));
    const created = await getJson<RolloutSpec>(kubeconfig, ns, 'rollout', 'web');
    expect(created.metadata.generation).to.equal(1);

    const status: RolloutStatus = {
      observedGeneration: 1,
      phase: 'Paused',
      message: 'held by perch.dev/paused',
      currentStepIndex: 1,
      step: '2/5',
      canaryWeight: 10,
      stableWeight: 90,
      pauseReason: 'Manual',
      runStartedAt: '2025-01-01T10:00:00Z',
      stepStartedAt: '2025-01-01T10:01:00Z',
      progressSince: '2025-01-01T10:01:00.250Z',
      analysis: {
        passed: 1,
        failed: 0,
        inconclusive: 0,
        consecutiveErrors: 0,
        consecutivePassed: 1,
        lastCheckAt: '2025-01-01T10:01:30Z',
        nextCheckAt: '2025-01-01T10:02:00Z',
        measurements: [
          { metric: SUCCESS_RATE.name, value: 99.5, verdict: 'Pass', at: '2025-01-01T10:01:30Z' },
        ],
      },
      conditions: [
        {
          type: 'Valid',
          status: 'True',
          reason: 'Valid',
          message: 'the spec is valid',
          lastTransitionTime: '2025-01-01T10:00:00Z',
          observedGeneration: 1,
        },
      ],
    };
    // A status write through the subresource that also tries to change the spec: the spec part is ignored.
    await kubectlOk(kubeconfig, [
      'patch',
      'rollout',
      'web',
      '-n',
      ns,
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({ spec: { canaryService: 'web-v3' }, status }),
    ]);
    let stored = await getJson<RolloutSpec>(kubeconfig, ns, 'rollout', 'web');
    expect(stored.status).to.deep.equal(status);
    expect(stored.spec.canaryService).to.equal('web-v2');
    expect(stored.metadata.generation).to.equal(1);

    // A write to the main resource that tries to change the status: the status part is ignored.
    const ignored = await kubectlOk(kubeconfig, [
      'patch',
      'rollout',
      'web',
      '-n',
      ns,
      '--type=merge',
      '-p',
      JSON.stringify({ status: { phase: 'Failed', canaryWeight: 0 } }),
    ]);
    expect(ignored.trim()).to.equal(`rollout.${GROUP}/web patched (no change)`);
    expect((await getJson<RolloutSpec>(kubeconfig, ns, 'rollout', 'web')).status).to.deep.equal(status);

    // A spec change with kubectl apply, the manifest carrying a status too: new generation, same status.
    const next: RolloutSpec = { ...spec, canaryService: 'web-v3' };
    const applied = await kubectlOk(
      kubeconfig,
      ['apply', '-n', ns, '-f', '-'],
      rolloutManifest('web', next, { status: { phase: 'Succeeded' } }),
    );
    expect(applied.trim()).to.equal(`rollout.${GROUP}/web configured`);
    stored = await getJson<RolloutSpec>(kubeconfig, ns, 'rollout', 'web');
    expect(stored.spec.canaryService).to.equal('web-v3');
    expect(stored.metadata.generation).to.equal(2);
    expect(stored.status).to.deep.equal(status);

    // The status has a schema too: a phase outside SPEC §4 is refused, naming the field.
    const bogus = await kubectl(kubeconfig, [
      'patch',
      'rollout',
      'web',
      '-n',
      ns,
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({ status: { phase: 'Exploded', canaryWeight: 101 } }),
    ]);
    expect(bogus.code).to.not.equal(0);
    expect(bogus.stderr).to.contain('status.phase: Unsupported value: "Exploded"');
    expect(bogus.stderr).to.contain('status.canaryWeight');
    const after = (await getJson<Rollout['spec']>(kubeconfig, ns, 'rollout', 'web')).status;
    expect(after).to.deep.equal(status);

    // Every field of RolloutStatus is in the schema, so none is pruned: the status is the controller's memory.
    const rollingBack: RolloutStatus = {
      ...status,
      phase: 'RollingBack',
      pauseReason: undefined,
      rollback: {
        phase: 'Failed',
        reason: 'AnalysisFailed',
        message: 'request-success-rate was 42, below the minimum 99',
      },
    };
    await kubectlOk(kubeconfig, [
      'patch',
      'rollout',
      'web',
      '-n',
      ns,
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({ status: { ...rollingBack, pauseReason: null } }),
    ]);
    const { pauseReason: _cleared, ...expected } = rollingBack;
    expect((await getJson<RolloutSpec>(kubeconfig, ns, 'rollout', 'web')).status).to.deep.equal(expected);
  });

  describe('MetricTemplate', () => {
    // Flagger's not-found-percentage template, as its documentation gives it, with only the apiVersion changed.
    const flagger: MetricTemplateSpec = {
      provider: { type: 'prometheus', address: 'http://prometheus.istio-system:9090' },
      query: [
        '100 - sum(',
        '    rate(',
        '        istio_requests_total{',
        '          reporter="destination",',
        '          destination_workload_namespace="{{ namespace }}",',
        '          destination_workload="{{ target }}",',
        '          response_code!="404"',
        '        }[{{ interval }}]',
        '    )',
        ')',
        '/',
        'sum(',
        '    rate(',
        '        istio_requests_total{',
        '          reporter="destination",',
        '          destination_workload_namespace="{{ namespace }}",',
        '          destination_workload="{{ target }}"',
        '        }[{{ interval }}]',
        '    )',
        ') * 100',
        '',
      ].join('\n'),
    };

    it('accepts a Flagger-style template, reads it back unchanged and kubectl get pmt shows PROVIDER ADDRESS AGE', async () => {
      const ns = await namespace('metrictemplate-valid');
      const out = await kubectlOk(
        kubeconfig,
        ['apply', '-n', ns, '-f', '-'],
        templateManifest('not-found-percentage', flagger),
      );
      expect(out.trim()).to.equal(`metrictemplate.${GROUP}/not-found-percentage created`);
      const local: MetricTemplateSpec = {
        provider: { type: 'prometheus' },
        query: 'sum(up{job="{{ variables.job }}"})',
      };
      await kubectlOk(kubeconfig, ['apply', '-n', ns, '-f', '-'], templateManifest('local', local));

      const stored = await getJson<MetricTemplateSpec>(
        kubeconfig,
        ns,
        'metrictemplate',
        'not-found-percentage',
      );
      expect(stored.kind).to.equal('MetricTemplate');
      expect(stored.spec).to.deep.equal(flagger);
      expect((await getJson<MetricTemplateSpec>(kubeconfig, ns, 'pmt', 'local')).spec).to.deep.equal(local);

      for (const resource of ['metrictemplates', 'pmt', 'metrictemplate', `metrictemplates.${GROUP}`]) {
        const { header, rows } = parseTable(await kubectlOk(kubeconfig, ['get', resource, '-n', ns]));
        expect(header, resource).to.deep.equal(['NAME', 'PROVIDER', 'ADDRESS', 'AGE']);
        expect(rows, resource).to.have.length(2);
        expect(rows[0], resource).to.include({ NAME: 'local', PROVIDER: 'prometheus', ADDRESS: '' });
        expect(rows[1], resource).to.include({
          NAME: 'not-found-percentage',
          PROVIDER: 'prometheus',
          ADDRESS: 'http://prometheus.istio-system:9090',
        });
      }

      // A Rollout metric may name it.
      const rollout = specWith({
        analysis: {
          metrics: [
            {
              name: '404s percentage',
              templateRef: { name: 'not-found-percentage' },
              thresholdRange: { max: 5 },
            },
          ],
        },
      });
      await kubectlOk(kubeconfig, ['apply', '-n', ns, '-f', '-'], rolloutManifest('web', rollout));
    });

    const cases: { what: string; spec: Record<string, unknown>; messages: string[] }[] = [
      {
        what: 'provider type datadog',
        spec: { ...flagger, provider: { type: 'datadog' } },
        messages: ['spec.provider.type', 'Unsupported value: "datadog"', 'supported values: "prometheus"'],
      },
      {
        what: 'an empty query',
        spec: { ...flagger, query: '' },
        messages: ['spec.query', 'at least 1 chars long'],
      },
      {
        what: 'a blank query',
        spec: { ...flagger, query: ' \n ' },
        messages: ['spec.query: Invalid value', 'spec.query must not be blank'],
      },
      {
        what: 'a missing query',
        spec: { provider: flagger.provider },
        messages: ['spec.query', 'Required value'],
      },
      {
        what: 'a missing provider',
        spec: { query: flagger.query },
        messages: ['spec.provider', 'Required value'],
      },
      {
        what: 'an address without a scheme',
        spec: { ...flagger, provider: { type: 'prometheus', address: 'prometheus:9090' } },
        messages: ['spec.provider.address', 'should match'],
      },
    ];
    let refused = new Map<string, Promise<Refusal>>();
    before(() => {
      refused = refusals(
        'metrictemplate-invalid',
        'pmt',
        new Map(cases.map(({ what, spec }) => [what, templateManifest('bad', spec)])),
      );
    });
    for (const { what, messages } of cases) {
      it(`refuses ${what}`, async () => {
        const { applied: r, gone } = await refused.get(what)!;
        expect(r.code, r.stdout).to.not.equal(0);
        expect(r.stderr).to.contain('The MetricTemplate "bad" is invalid');
        for (const m of messages) expect(r.stderr).to.contain(m);
        expect(gone.code).to.not.equal(0);
        expect(gone.stderr).to.contain('NotFound');
      });
    }
  });
});
