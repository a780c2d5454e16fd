// What the CRD schema cannot check (SPEC §2), checked against the cluster on every reconcile:
// the root service's namespace, the Services' existence, query variables, templateRefs, durations.
import { validateQuery } from '../analysis/template.js';
import type { MetricSpec, MetricTemplate, Rollout } from '../api/v1alpha1.js';
import { parseDuration } from '../machine/duration.js';
import type { Observation } from '../machine/types.js';

export interface Lookups {
  serviceExists(namespace: string, name: string): boolean;
  metricTemplate(namespace: string, name: string): MetricTemplate | undefined;
}

type Validation = Observation['validation'];
const invalid = (reason: string, message: string): Validation => ({ valid: false, reason, message });
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** The root service's name, when spec.service is a short name or the FQDN of `namespace`; else undefined. */
export function rootServiceName(service: string, namespace: string): string | undefined {
  if (DNS_LABEL.test(service) && service.length <= 63) return service;
  const m = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.svc\.cluster\.local$/.exec(
    service,
  );
  return m && m[3] === namespace ? m[1] : undefined;
}

/** The query a metric runs: its own, or its MetricTemplate's. */
export function metricQuery(
  metric: MetricSpec,
  namespace: string,
  lookups: Pick<Lookups, 'metricTemplate'>,
): { query: string; template?: MetricTemplate } | undefined {
  if (metric.query) return { query: metric.query };
  if (!metric.templateRef) return undefined;
  const template = lookups.metricTemplate(metric.templateRef.namespace ?? namespace, metric.templateRef.name);
  return template ? { query: template.spec.query, template } : undefined;
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
  for (const [i, metric] of (rollout.spec.analysis?.metrics ?? []).entries()) {
    const field = `spec.analysis.metrics[${i}]`;
    const resolved = metricQuery(metric, ns, lookups);
    if (!resolved) {
      const ref = metric.templateRef;
      return ref
        ? invalid(
            'MetricTemplateNotFound',
            `${field}.templateRef: MetricTemplate ${ref.namespace ?? ns}/${ref.name} not found; create it or fix the name`,
          )
        : invalid('InvalidMetric', `${field}: set query or templateRef`);
    }
    const error = validateQuery(resolved.query, { metric: metric.name, variables: metric.templateVariables });
    if (error)
      return invalid('InvalidQuery', `${field}${metric.query ? '.query' : '.templateRef'}: ${error.message}`);
  }
  return undefined;
}

export function validateRollout(rollout: Rollout, lookups: Lookups, extra: Validation[] = []): Validation {
  const ns = rollout.metadata?.namespace ?? '';
  const spec = rollout.spec;
  const root = rootServiceName(spec.service, ns);
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
