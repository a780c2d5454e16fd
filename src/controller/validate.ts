// What the CRD schema cannot check (SPEC §2), checked against the cluster on every reconcile: Services,
// query variables, templateRefs, durations, and what the controller admits (Prometheus, template namespaces).
import { validateQuery } from '../analysis/template.js';
import { serviceName } from '../api/service-name.js';
import type { MetricSpec, MetricTemplate, Rollout } from '../api/v1alpha1.js';
import { parseDuration } from '../machine/duration.js';
import type { Observation } from '../machine/types.js';
import { parseBaseUrl, type PrometheusAllowlist } from './prometheus-allowlist.js';

/** What the controller's flags allow a Rollout to name (SPEC §2, §6). */
export interface Admission {
  /** --allowed-prometheus-urls, and --prometheus-url: the only Prometheus servers queries go to. */
  prometheus: PrometheusAllowlist;
  /** --template-namespace: a shared MetricTemplate catalogue a templateRef may name besides its own namespace. */
  templateNamespace?: string;
}

export interface Lookups {
  serviceExists(namespace: string, name: string): boolean;
  metricTemplate(namespace: string, name: string): MetricTemplate | undefined;
  admission: Admission;
}

type Validation = Observation['validation'];
const invalid = (reason: string, message: string): Validation => ({ valid: false, reason, message });

export type ResolvedMetric =
  | { ok: true; query: string; template?: MetricTemplate }
  /** `field` is relative to the metric, e.g. `templateRef.namespace`. */
  | { ok: false; reason: string; field: string; message: string };

/**
 * The query a metric runs: its own, or its MetricTemplate's. A templateRef names the Rollout's namespace or
 * the --template-namespace catalogue; without a namespace it is looked up in the Rollout's, then the catalogue.
 */
export function resolveMetric(
  metric: MetricSpec,
  namespace: string,
  lookups: Pick<Lookups, 'metricTemplate' | 'admission'>,
): ResolvedMetric {
  if (metric.query) return { ok: true, query: metric.query };
  const ref = metric.templateRef;
  if (!ref) return { ok: false, reason: 'InvalidMetric', field: '', message: 'set query or templateRef' };
  const catalogue = lookups.admission.templateNamespace;
  if (ref.namespace !== undefined && ref.namespace !== namespace && ref.namespace !== catalogue) {
    return {
      ok: false,
      reason: 'TemplateNamespaceNotAllowed',
      field: 'templateRef.namespace',
      message:
        `namespace ${ref.namespace} is neither the Rollout's (${namespace}) nor the controller's --template-namespace ` +
        `(${catalogue ?? 'not set'}); use a MetricTemplate of ${namespace}${catalogue ? ` or ${catalogue}` : ''}`,
    };
  }
  const searched =
    ref.namespace !== undefined ? [ref.namespace] : [...new Set([namespace, catalogue ?? namespace])];
  for (const ns of searched) {
    const template = lookups.metricTemplate(ns, ref.name);
    if (template) return { ok: true, query: template.spec.query, template };
  }
  return {
    ok: false,
    reason: 'MetricTemplateNotFound',
    field: 'templateRef',
    message: `MetricTemplate ${ref.name} not found in ${searched.join(' nor in ')}; create it or fix the name`,
  };
}

/** Why queries may not go to `address` (a reason and a message naming it and the fix), or undefined. */
export function prometheusRefusal(
  address: string,
  admission: Admission,
): { reason: string; message: string } | undefined {
  const parsed = parseBaseUrl(address);
  if (!parsed.ok) return { reason: 'InvalidPrometheusAddress', message: `${address} ${parsed.problem}` };
  if (admission.prometheus.allows(address)) return undefined;
  return {
    reason: 'PrometheusNotAllowed',
    message:
      `Prometheus ${address} is not one this controller may query; add it (or a prefix of it) to the ` +
      `controller's --allowed-prometheus-urls`,
  };
}

function checkWeights(rollout: Rollout): Validation | undefined {
  const s = rollout.spec;
  const weights = s.steps
    ? s.steps.flatMap((step, i) =>
        'setWeight' in step ? [[`spec.steps[${i}].setWeight`, step.setWeight] as const] : [],
      )
    : (s.stepWeights ?? (s.stepWeight ? [s.stepWeight, s.maxWeight ?? 100] : [])).map(
        (w, i) => [`spec.stepWeights[${i}]`, w] as const,
      );
  if (!s.steps && !s.stepWeights && !s.stepWeight) {
    return invalid('NoSteps', 'spec: set one of spec.steps, spec.stepWeight or spec.stepWeights');
  }
  let last = 0;
  for (const [field, w] of weights) {
    if (!Number.isInteger(w) || w < 0 || w > 100)
      return invalid('InvalidWeight', `${field}: ${w} is not a weight; use a whole number from 0 to 100`);
    if (w < last)
      return invalid(
        'DecreasingWeight',
        `${field}: ${w} is below the step before it (${last}); weights must not decrease`,
      );
    last = w;
  }
  return undefined;
}

function checkDurations(rollout: Rollout): Validation | undefined {
  const a = rollout.spec.analysis;
  const durations: [string, string | undefined][] = [
    ['spec.analysis.interval', a?.interval],
    ['spec.analysis.prometheus.timeout', a?.prometheus?.timeout],
    ...(rollout.spec.steps ?? []).map((s, i): [string, string | undefined] => [
      `spec.steps[${i}].pause.duration`,
      'pause' in s ? s.pause.duration : undefined,
    ]),
  ];
  for (const [field, text] of durations) {
    if (text !== undefined && !parseDuration(text))
      return invalid('InvalidDuration', `${field}: "${text}" is not a duration; write e.g. 30s, 1m or 1m30s`);
  }
  return undefined;
}

function checkMetrics(rollout: Rollout, lookups: Lookups): Validation | undefined {
  const ns = rollout.metadata?.namespace ?? '';
  const own = rollout.spec.analysis?.prometheus?.address;
  if (own !== undefined) {
    const refused = prometheusRefusal(own, lookups.admission);
    if (refused)
      return invalid(
        refused.reason,
        `spec.analysis.prometheus.address: ${refused.message}, or leave the field out to use --prometheus-url`,
      );
  }
  for (const [i, metric] of (rollout.spec.analysis?.metrics ?? []).entries()) {
    const field = `spec.analysis.metrics[${i}]`;
    const resolved = resolveMetric(metric, ns, lookups);
    if (!resolved.ok)
      return invalid(
        resolved.reason,
        `${field}${resolved.field ? `.${resolved.field}` : ''}: ${resolved.message}`,
      );
    const template = resolved.template;
    const address = template?.spec.provider.address;
    const refused = address === undefined ? undefined : prometheusRefusal(address, lookups.admission);
    if (template && refused)
      return invalid(
        refused.reason,
        `${field}.templateRef: MetricTemplate ${template.metadata?.namespace}/${template.metadata?.name} ` +
          `spec.provider.address: ${refused.message}`,
      );
    const error = validateQuery(resolved.query, { metric: metric.name, variables: metric.templateVariables });
    if (error)
      return invalid('InvalidQuery', `${field}${metric.query ? '.query' : '.templateRef'}: ${error.message}`);
  }
  return undefined;
}

/**
 * The Services a Rollout's reconcile reads (root, stable, canary): a change to any other Service cannot
 * change its decision, so it need not bring the Rollout back.
 */
export function servicesRead(rollout: Rollout): string[] {
  const root = serviceName(rollout.metadata?.namespace ?? '', rollout.spec.service);
  return [...(root ? [root] : []), rollout.spec.stableService, rollout.spec.canaryService];
}

export function validateRollout(rollout: Rollout, lookups: Lookups, extra: Validation[] = []): Validation {
  const ns = rollout.metadata?.namespace ?? '';
  const spec = rollout.spec;
  const root = serviceName(ns, spec.service);
  if (!root) {
    return invalid(
      'InvalidService',
      `spec.service: "${spec.service}" is not a Service of namespace ${ns}; write a short name or <name>.${ns}.svc.cluster.local`,
    );
  }
  for (const [field, name] of [
    ['spec.service', root],
    ['spec.stableService', spec.stableService],
    ['spec.canaryService', spec.canaryService],
  ] as const) {
    if (!lookups.serviceExists(ns, name)) {
      return invalid(
        'ServiceNotFound',
        `${field}: Service ${ns}/${name} not found; create it (checked again on every reconcile)`,
      );
    }
  }
  return (
    checkWeights(rollout) ??
    checkDurations(rollout) ??
    checkMetrics(rollout, lookups) ??
    extra.find((v) => !v.valid) ?? { valid: true }
  );
}
