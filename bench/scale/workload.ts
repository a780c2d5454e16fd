// The scale benchmark's workload, as data: N Rollouts, each with its own three Services, one success-rate
// metric at a 10 s interval, steps [10, check, 50, check, 100]; every tenth one's canary answers only errors.
import type { TrafficProfile } from '../../src/sandbox/apps/osm-metrics-target.js';

export const NAMESPACE = 'bench-scale';
export const INTERVAL = '10s';
/** Prometheus scrapes the metrics target this often: several samples in each check's window. */
export const SCRAPE_INTERVAL = '2s';

/** SPEC §2's success rate, its window the check interval; `or vector(0)`: an all-5xx canary reads 0 %. */
export const SUCCESS_RATE =
  '(sum(rate(osm_request_total{destination_namespace="{{ namespace }}",destination_name="{{ canary }}",response_code!~"5.*"}[{{ interval }}])) or vector(0))' +
  ' / sum(rate(osm_request_total{destination_namespace="{{ namespace }}",destination_name="{{ canary }}"}[{{ interval }}])) * 100';

/** Few requests per destination: thousands of canaries, and the metrics target must not be the bottleneck. */
export const HEALTHY: TrafficProfile = { rps: 2, errorRate: 0, latencyMs: 20 };
export const FAULTY: TrafficProfile = { rps: 2, errorRate: 1, latencyMs: 20 };

export interface Member {
  name: string;
  service: string;
  stable: string;
  canary: string;
  /** Its canary answers only errors: the run must roll back. */
  faulty: boolean;
}

/** Every tenth Rollout (0, 10, 20, ...) is faulty: 10 % of N, rounded up. */
export function members(n: number): Member[] {
  if (!Number.isInteger(n) || n < 1)
    throw new RangeError(`N ${n}: give a whole number of Rollouts, 1 or more`);
  return Array.from({ length: n }, (_, i) => {
    const name = `app-${i}`;
    return { name, service: name, stable: `${name}-stable`, canary: `${name}-canary`, faulty: i % 10 === 0 };
  });
}

/**
 * Headless, as the Flagger peer's: Perch reads a Service's name and port, never its cluster IP, and
 * kube-apiserver 1.33 gives each cluster IP an IPAddress object by listing every IPAddress there is (its
 * allocator's Used(), 85 % of its CPU in a profile while 30,000 Services were made): quadratic setup time
 * that is neither controller's cost.
 */
export function serviceBody(name: string): object {
  return {
    metadata: { name },
    spec: { clusterIP: 'None', ports: [{ port: 80, name: 'http' }], selector: { app: name } },
  };
}

/** The steps: two weights, each checked once, then 100. */
export const STEPS = [
  { setWeight: 10 },
  { analysis: { iterations: 1 } },
  { setWeight: 50 },
  { analysis: { iterations: 1 } },
  { setWeight: 100 },
];

export function rolloutBody(m: Member): object {
  return {
    apiVersion: 'perch.dev/v1alpha1',
    kind: 'Rollout',
    metadata: { name: m.name },
    spec: {
      service: m.service,
      stableService: m.stable,
      canaryService: m.canary,
      steps: STEPS,
      analysis: {
        interval: INTERVAL,
        failureLimit: 0,
        inconclusiveLimit: 2,
        errorLimit: 4,
        metrics: [{ name: 'request-success-rate', query: SUCCESS_RATE, thresholdRange: { min: 99 } }],
      },
    },
  };
}

/** The phase each Rollout must end in. */
export const expectedPhase = (m: Member): 'Succeeded' | 'Failed' => (m.faulty ? 'Failed' : 'Succeeded');

export const TERMINAL = new Set(['Succeeded', 'Failed', 'Aborted']);
