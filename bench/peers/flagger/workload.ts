// The workload in Flagger's terms: per run a target Service with its -canary and -primary
// copies, a Canary over it (stepWeights [10, 50], 10 s checks), and one MetricTemplate for them all.
import type { KubernetesObject, V1Service } from '@kubernetes/client-node';
import { SUCCESS_RATE } from '../../scale/workload.js';

export const CANARY = { group: 'flagger.app', version: 'v1beta1', plural: 'canaries' } as const;
export const METRIC_TEMPLATE = {
  group: 'flagger.app',
  version: 'v1beta1',
  plural: 'metrictemplates',
} as const;
export const TEMPLATE_NAME = 'success-rate';

/**
 * bench/scale's success-rate query with Flagger's template variables: the canary's traffic is the target
 * workload's (Flagger names the canary after its target, the stable one `<target>-primary`); its window,
 * `{{ interval }}`, is the metric's interval, as Perch's is the check interval.
 */
export const FLAGGER_SUCCESS_RATE = SUCCESS_RATE.replaceAll('{{ canary }}', '{{ target }}');

export interface WorkloadOptions {
  /** Seconds between checks: the Canary's analysis.interval. */
  intervalSeconds: number;
}

/** Canary i targets Service app-i; the metrics target names each destination as its Service. */
export const targetName = (i: number): string => `app-${i}`;

/** A Service of run i at `version` (the run is a change of the target's selector from v1 to v2). */
export function service(name: string, selectorOf: string, version: string): V1Service {
  return {
    metadata: { name },
    spec: {
      clusterIP: 'None',
      ports: [{ port: 80, name: 'http', targetPort: 8080 }],
      selector: { app: selectorOf, version },
    },
  };
}

/**
 * The three Services of run i, all headless and all made here. Flagger 1.36 copies the target into -canary
 * and -primary itself, but its copy of a ClusterIP Service keeps the target's spec.clusterIPs (which the
 * API server refuses, on create and on its later updates alike), and its copy of a headless one clears
 * "None" (a cluster IP asked for, refused as well). Copies of a headless Service made beforehand it
 * updates as it should. Headless, N is not bounded by the sandbox's Service IP range either.
 */
export function servicesOf(i: number): V1Service[] {
  const target = targetName(i);
  return [target, `${target}-canary`, `${target}-primary`].map((n) => service(n, target, 'v1'));
}

/** The selector patch that starts run i (a merge patch of the target Service). */
export function triggerPatch(i: number): object {
  return { spec: { selector: { app: targetName(i), version: 'v2' } } };
}

export function metricTemplate(prometheusUrl: string): KubernetesObject & { spec: object } {
  return {
    apiVersion: 'flagger.app/v1beta1',
    kind: 'MetricTemplate',
    metadata: { name: TEMPLATE_NAME },
    spec: { provider: { type: 'prometheus', address: prometheusUrl }, query: FLAGGER_SUCCESS_RATE },
  };
}

export function canary(i: number, o: WorkloadOptions): KubernetesObject & { spec: object } {
  const interval = `${o.intervalSeconds}s`;
  return {
    apiVersion: 'flagger.app/v1beta1',
    kind: 'Canary',
    metadata: { name: targetName(i) },
    spec: {
      targetRef: { apiVersion: 'v1', kind: 'Service', name: targetName(i) },
      service: { port: 80 },
      analysis: {
        interval,
        // One failed check rolls back, as Perch's failureLimit 0.
        threshold: 1,
        stepWeights: [10, 50],
        metrics: [
          {
            // Not "request-success-rate": Flagger runs its built-in OSM query for that name, whatever
            // the templateRef says.
            name: 'success-rate',
            templateRef: { name: TEMPLATE_NAME },
            thresholdRange: { min: 99 },
            interval,
          },
        ],
      },
    },
  };
}
