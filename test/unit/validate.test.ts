// validateRollout and the CheckRunner against in-memory lookups: which Prometheus addresses and template
// namespaces a Rollout may name (SPEC §2), and that the runner never queries what validation would refuse.
import { expect } from 'chai';
import { createServer, type Server } from 'node:net';
import type { MetricSpec, MetricTemplate, Rollout, RolloutSpec } from '../../src/api/v1alpha1.js';
import { CheckRunner } from '../../src/controller/checks.js';
import { PrometheusAllowlist } from '../../src/controller/prometheus-allowlist.js';
import { resolveMetric, servicesRead, validateRollout, type Lookups } from '../../src/controller/validate.js';

const NS = 'shop';
const CATALOGUE = 'metrics-catalogue';
const PROM = 'http://prom.monitoring:9090';

function template(namespace: string, name: string, address?: string, query = 'vector(1)'): MetricTemplate {
  return {
    apiVersion: 'perch.dev/v1alpha1',
    kind: 'MetricTemplate',
    metadata: { namespace, name },
    spec: { provider: { type: 'prometheus', ...(address ? { address } : {}) }, query },
  };
}

function lookups(
  templates: MetricTemplate[] = [],
  admission: { allowed?: string[]; templateNamespace?: string } = {},
): Lookups {
  return {
    serviceExists: (namespace) => namespace === NS,
    metricTemplate: (namespace, name) =>
      templates.find((t) => t.metadata?.namespace === namespace && t.metadata?.name === name),
    admission: {
      prometheus: new PrometheusAllowlist(admission.allowed ?? [PROM]),
      templateNamespace: admission.templateNamespace,
    },
  };
}

function rollout(metrics: MetricSpec[], address?: string): Rollout {
  const spec: RolloutSpec = {
    service: 'web',
    stableService: 'web-v1',
    canaryService: 'web-v2',
    steps: [{ setWeight: 10 }, { setWeight: 100 }],
    analysis: {
      interval: '1s',
      failureLimit: 0,
      inconclusiveLimit: 0,
      errorLimit: 0,
      ...(address ? { prometheus: { address, timeout: '200ms' } } : { prometheus: { timeout: '200ms' } }),
      metrics,
    },
  };
  return {
    apiVersion: 'perch.dev/v1alpha1',
    kind: 'Rollout',
    metadata: { namespace: NS, name: 'web' },
    spec,
  };
}

const inline: MetricSpec = { name: 'rate', query: 'vector(1)', thresholdRange: { min: 0 } };
const ref = (name: string, namespace?: string): MetricSpec => ({
  name: 'rate',
  templateRef: namespace === undefined ? { name } : { name, namespace },
  thresholdRange: { min: 0 },
});

describe('validation: the Services a Rollout reads', () => {
  it('names root, stable and canary, the root in its short form, and nothing for a root elsewhere', () => {
    const r = rollout([inline]);
    expect(servicesRead(r)).to.deep.equal(['web', 'web-v1', 'web-v2']);
    r.spec.service = `web.${NS}.svc.cluster.local`;
    expect(servicesRead(r)).to.deep.equal(['web', 'web-v1', 'web-v2']);
    r.spec.service = 'web.elsewhere.svc.cluster.local';
    expect(servicesRead(r)).to.deep.equal(['web-v1', 'web-v2']);
  });
});

describe('validation: Prometheus addresses a Rollout may name', () => {
  it('accepts an address under an allowed prefix, and no address at all', () => {
    expect(validateRollout(rollout([inline], `${PROM}/`), lookups())).to.deep.equal({ valid: true });
    expect(validateRollout(rollout([inline], `${PROM}/tenant-a`), lookups())).to.deep.equal({ valid: true });
    expect(validateRollout(rollout([inline]), lookups([], { allowed: [] }))).to.deep.equal({ valid: true });
  });

  it('reports spec.analysis.prometheus.address outside the allowed prefixes, naming the address and the fix', () => {
    for (const address of ['http://prom.monitoring:9091', 'http://prom.monitoring.evil.example:9090']) {
      const v = validateRollout(rollout([inline], address), lookups());
      expect(v).to.deep.equal({
        valid: false,
        reason: 'PrometheusNotAllowed',
        message:
          `spec.analysis.prometheus.address: Prometheus ${address} is not one this controller may query; ` +
          `add it (or a prefix of it) to the controller's --allowed-prometheus-urls, ` +
          `or leave the field out to use --prometheus-url`,
      });
    }
  });

  it('reports an address that is no base URL', () => {
    const v = validateRollout(rollout([inline], `${PROM}?x=1`), lookups());
    expect(v).to.deep.include({ valid: false, reason: 'InvalidPrometheusAddress' });
    expect(v.valid === false && v.message).to.contain(
      `spec.analysis.prometheus.address: ${PROM}?x=1 has a ?query`,
    );
  });

  it('reports a MetricTemplate whose spec.provider.address is not allowed, naming the template', () => {
    const evil = 'http://evil.example:9090';
    const v = validateRollout(rollout([ref('rate')]), lookups([template(NS, 'rate', evil)]));
    expect(v).to.deep.equal({
      valid: false,
      reason: 'PrometheusNotAllowed',
      message:
        `spec.analysis.metrics[0].templateRef: MetricTemplate ${NS}/rate spec.provider.address: ` +
        `Prometheus ${evil} is not one this controller may query; add it (or a prefix of it) to the ` +
        `controller's --allowed-prometheus-urls`,
    });
    expect(validateRollout(rollout([ref('rate')]), lookups([template(NS, 'rate', PROM)]))).to.deep.equal({
      valid: true,
    });
  });
});

describe('validation: the namespaces a templateRef may name', () => {
  const withCatalogue = (templates: MetricTemplate[]) => lookups(templates, { templateNamespace: CATALOGUE });

  it("accepts the Rollout's own namespace and the --template-namespace catalogue", () => {
    const templates = [template(NS, 'own'), template(CATALOGUE, 'shared')];
    expect(validateRollout(rollout([ref('own', NS)]), withCatalogue(templates))).to.deep.equal({
      valid: true,
    });
    expect(validateRollout(rollout([ref('shared', CATALOGUE)]), withCatalogue(templates))).to.deep.equal({
      valid: true,
    });
  });

  it('reports any other namespace, even when the template exists there', () => {
    const templates = [template('team-b', 'rate')];
    expect(validateRollout(rollout([ref('rate', 'team-b')]), withCatalogue(templates))).to.deep.equal({
      valid: false,
      reason: 'TemplateNamespaceNotAllowed',
      message:
        `spec.analysis.metrics[0].templateRef.namespace: namespace team-b is neither the Rollout's (${NS}) ` +
        `nor the controller's --template-namespace (${CATALOGUE}); use a MetricTemplate of ${NS} or ${CATALOGUE}`,
    });
    expect(validateRollout(rollout([ref('rate', 'team-b')]), lookups(templates))).to.deep.equal({
      valid: false,
      reason: 'TemplateNamespaceNotAllowed',
      message:
        `spec.analysis.metrics[0].templateRef.namespace: namespace team-b is neither the Rollout's (${NS}) ` +
        `nor the controller's --template-namespace (not set); use a MetricTemplate of ${NS}`,
    });
  });

  it("resolves a templateRef without a namespace in the Rollout's namespace first, then in the catalogue", () => {
    const own = template(NS, 'rate', undefined, 'vector(1)');
    const shared = template(CATALOGUE, 'rate', undefined, 'vector(2)');
    expect(resolveMetric(ref('rate'), NS, withCatalogue([shared, own]))).to.deep.equal({
      ok: true,
      query: 'vector(1)',
      template: own,
    });
    expect(resolveMetric(ref('rate'), NS, withCatalogue([shared]))).to.deep.equal({
      ok: true,
      query: 'vector(2)',
      template: shared,
    });
    expect(resolveMetric(ref('rate'), NS, lookups([shared]))).to.deep.include({
      ok: false,
      reason: 'MetricTemplateNotFound',
    });
  });

  it('names every namespace it looked in when a template is nowhere', () => {
    expect(validateRollout(rollout([ref('absent')]), withCatalogue([]))).to.deep.equal({
      valid: false,
      reason: 'MetricTemplateNotFound',
      message: `spec.analysis.metrics[0].templateRef: MetricTemplate absent not found in ${NS} nor in ${CATALOGUE}; create it or fix the name`,
    });
    expect(validateRollout(rollout([ref('absent')]), lookups([], { templateNamespace: NS }))).to.deep.include(
      {
        message: `spec.analysis.metrics[0].templateRef: MetricTemplate absent not found in ${NS}; create it or fix the name`,
      },
    );
    expect(validateRollout(rollout([ref('absent', CATALOGUE)]), withCatalogue([]))).to.deep.include({
      reason: 'MetricTemplateNotFound',
    });
  });
});

describe('the CheckRunner refuses what validation refuses, without a request', () => {
  let tripwire: Server;
  let connections = 0;
  let address = '';
  before(async () => {
    tripwire = createServer((socket) => {
      connections++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => tripwire.listen(0, '127.0.0.1', resolve));
    const a = tripwire.address();
    address = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
  });
  after(() => new Promise<void>((resolve) => tripwire.close(() => resolve())));

  const runner = (templateNamespace?: string) =>
    new CheckRunner({ admission: { prometheus: new PrometheusAllowlist([PROM]), templateNamespace } });
  const now = new Date('2026-01-01T00:00:00Z');

  it('gives Error for an address outside the allowed prefixes (a template edited since validation)', async () => {
    const l = lookups([template(NS, 'rate', address)]);
    const results = await runner().run(rollout([ref('rate'), { ...inline, name: 'own' }], address), l, now);
    expect(results).to.deep.equal([
      {
        metric: 'rate',
        verdict: 'Error',
        reason: `rate: Prometheus ${address} is not one this controller may query; add it (or a prefix of it) to the controller's --allowed-prometheus-urls; no query sent`,
        at: now.toISOString(),
      },
      {
        metric: 'own',
        verdict: 'Error',
        reason: `own: Prometheus ${address} is not one this controller may query; add it (or a prefix of it) to the controller's --allowed-prometheus-urls; no query sent`,
        at: now.toISOString(),
      },
    ]);
    expect(connections).to.equal(0);
  });

  it('gives Error for a templateRef to a namespace it may not read', async () => {
    const l = lookups([template('team-b', 'rate', PROM)]);
    const [result] = await runner(CATALOGUE).run(rollout([ref('rate', 'team-b')]), l, now);
    expect(result).to.deep.include({ verdict: 'Error' });
    expect(result!.reason).to.contain('rate: namespace team-b is neither');
  });
});

describe('the CheckRunner keeps a Prometheus client only while a Rollout uses it', () => {
  it('drops the client of an address no Rollout names any more, and a gone Rollout’s', async () => {
    // Port 9 on loopback refuses at once: every query is an 'unreachable' Error, quickly.
    const a = 'http://127.0.0.1:9/a';
    const b = 'http://127.0.0.1:9/b';
    const runner = new CheckRunner({
      admission: { prometheus: new PrometheusAllowlist(['http://127.0.0.1:9']) },
    });
    const named = (name: string, address: string): Rollout => {
      const r = rollout([inline], address);
      r.metadata = { ...r.metadata, name };
      return r;
    };
    const now = new Date('2026-01-01T00:00:00Z');
    await runner.run(named('one', a), lookups(), now);
    await runner.run(named('two', a), lookups(), now);
    expect(runner.clientCount()).to.equal(1);
    await runner.run(named('two', b), lookups(), now);
    expect(runner.clientCount()).to.equal(2);
    await runner.run(named('one', b), lookups(), now);
    expect(runner.clientCount(), 'no Rollout names a any more').to.equal(1);
    runner.forget(`${NS}/one`);
    expect(runner.clientCount()).to.equal(1);
    runner.forget(`${NS}/two`);
    expect(runner.clientCount()).to.equal(0);
  });
});
