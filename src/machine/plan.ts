// A Rollout spec normalized for the machine: shorthand expanded into explicit steps, durations in ms.
// Pure; the machine never reads the raw spec, so SPEC §2's shorthands behave exactly like steps.
import type { RolloutSpec, Step } from '../api/v1alpha1.js';
import { parseDuration } from './duration.js';

export type PlanStep =
  | { kind: 'setWeight'; weight: number }
  | { kind: 'analysis'; iterations: number }
  /** durationMs undefined: wait for perch.dev/resume. */
  | { kind: 'pause'; durationMs: number | undefined };

export interface Plan {
  steps: PlanStep[];
  /** Whether metrics are checked at all (spec.analysis with at least one metric). */
  analysis: boolean;
  metrics: string[];
  intervalMs: number;
  failureLimit: number;
  inconclusiveLimit: number;
  errorLimit: number;
  progressDeadlineMs: number;
}

const DEFAULT_INTERVAL_MS = 30_000;

function fromStep(step: Step): PlanStep {
  if ('setWeight' in step) return { kind: 'setWeight', weight: step.setWeight };
  if ('analysis' in step) return { kind: 'analysis', iterations: Math.max(1, step.analysis.iterations) };
  return { kind: 'pause', durationMs: step.pause.duration ? parseDuration(step.pause.duration) : undefined };
}

/** Flagger's shorthand: each weight is held until one passing check, then the next. */
function shorthandWeights(spec: RolloutSpec): number[] {
  if (spec.stepWeights) return spec.stepWeights;
  if (spec.stepWeight) {
    const max = spec.maxWeight ?? 100;
    const weights: number[] = [];
    for (let w = spec.stepWeight; w <= max; w += spec.stepWeight) weights.push(w);
    return weights;
  }
  return [];
}

export function planOf(spec: RolloutSpec): Plan {
  const steps: PlanStep[] = spec.steps
    ? spec.steps.map(fromStep)
    : shorthandWeights(spec).flatMap((weight): PlanStep[] => [
        { kind: 'setWeight', weight },
        { kind: 'analysis', iterations: 1 },
      ]);
  const a = spec.analysis;
  return {
    steps,
    analysis: !!a && a.metrics.length > 0,
    metrics: a?.metrics.map((m) => m.name) ?? [],
    intervalMs: (a?.interval && parseDuration(a.interval)) || DEFAULT_INTERVAL_MS,
    failureLimit: a?.failureLimit ?? 0,
    inconclusiveLimit: a?.inconclusiveLimit ?? 2,
    errorLimit: a?.errorLimit ?? 4,
    progressDeadlineMs: (spec.progressDeadlineSeconds ?? 600) * 1000,
  };
}
