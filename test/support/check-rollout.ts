// A Rollout with one metric on a 10 s interval, for tests of check rounds and the check runner: only what
// a round reads (its name, generation, metric, Prometheus, due time) varies.
import type { Rollout } from '../../src/api/v1alpha1.js';

export interface CheckRolloutOptions {
  name: string;
  namespace: string;
  generation?: number;
  /** The metric's query; default vector(1). */
  query?: string;
  /** The Rollout's own Prometheus; default none (the controller's). */
  address?: string;
  /** status.analysis.nextCheckAt, ms since the epoch. */
  dueAt?: number;
}

export function checkRollout(o: CheckRolloutOptions): Rollout {
  return {
    apiVersion: 'perch.dev/v1alpha1',
    kind: 'Rollout',
    metadata: { name: o.name, namespace: o.namespace, generation: o.generation ?? 1 },
    spec: {
      service: 'web',
      stableService: 'web-v1',
      canaryService: 'web-v2',
      steps: [{ setWeight: 10 }, { analysis: { iterations: 1 } }],
      analysis: {
        interval: '10s',
        failureLimit: 0,
        inconclusiveLimit: 2,
        errorLimit: 4,
        ...(o.address ? { prometheus: { address: o.address } } : {}),
        metrics: [{ name: 'answer', query: o.query ?? 'vector(1)', thresholdRange: { min: 1 } }],
      },
    },
    ...(o.dueAt !== undefined
      ? {
          status: {
            phase: 'Progressing',
            analysis: {
              passed: 0,
              failed: 0,
              inconclusive: 0,
              consecutiveErrors: 0,
              measurements: [],
              nextCheckAt: new Date(o.dueAt).toISOString(),
            },
          },
        }
      : {}),
  };
}
