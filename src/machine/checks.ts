// Folding one round of metric checks into the run's counters (SPEC §4), purely.
// A round's verdict is its worst check: Fail before Error before Inconclusive before Pass.
import type { CheckResult, Verdict } from '../analysis/types.js';
import type { Measurement, RolloutStatus } from '../api/v1alpha1.js';

export type AnalysisStatus = NonNullable<RolloutStatus['analysis']>;

export const MEASUREMENTS_PER_METRIC = 10;

const SEVERITY: Record<Verdict, number> = { Pass: 0, Inconclusive: 1, Error: 2, Fail: 3 };

export function emptyAnalysis(): AnalysisStatus {
  return {
    passed: 0,
    failed: 0,
    inconclusive: 0,
    consecutiveErrors: 0,
    consecutivePassed: 0,
    measurements: [],
  };
}

/** The worst check of a round, which decides how the round counts. */
export function worstCheck(checks: readonly CheckResult[]): CheckResult | undefined {
  return checks.reduce<CheckResult | undefined>(
    (worst, c) => (!worst || SEVERITY[c.verdict] > SEVERITY[worst.verdict] ? c : worst),
    undefined,
  );
}

function keepLast(measurements: Measurement[], added: Measurement[]): Measurement[] {
  const all = [...measurements, ...added];
  const perMetric = new Map<string, number>();
  const kept: Measurement[] = [];
  for (let i = all.length - 1; i >= 0; i--) {
    const m = all[i]!;
    const n = perMetric.get(m.metric) ?? 0;
    if (n < MEASUREMENTS_PER_METRIC) kept.unshift(m);
    perMetric.set(m.metric, n + 1);
  }
  return kept;
}

function measurement(c: CheckResult): Measurement {
  // JSON has no NaN or Infinity: a value that cannot be stored is left out, the verdict says why.
  return Number.isFinite(c.value)
    ? { metric: c.metric, value: c.value, verdict: c.verdict, at: c.at }
    : { metric: c.metric, verdict: c.verdict, at: c.at };
}

export function recordRound(
  analysis: AnalysisStatus,
  checks: readonly CheckResult[],
  nowIso: string,
  nextIso: string,
): AnalysisStatus {
  const worst = worstCheck(checks);
  if (!worst) return analysis;
  const next: AnalysisStatus = {
    ...analysis,
    lastCheckAt: nowIso,
    nextCheckAt: nextIso,
    measurements: keepLast(analysis.measurements, checks.map(measurement)),
  };
  switch (worst.verdict) {
    case 'Fail':
      return { ...next, failed: next.failed + 1, consecutivePassed: 0, consecutiveErrors: 0 };
    case 'Error':
      return { ...next, consecutiveErrors: next.consecutiveErrors + 1, consecutivePassed: 0 };
    case 'Inconclusive':
      return { ...next, inconclusive: next.inconclusive + 1, consecutivePassed: 0, consecutiveErrors: 0 };
    case 'Pass':
      return {
        ...next,
        passed: next.passed + 1,
        consecutivePassed: (next.consecutivePassed ?? 0) + 1,
        consecutiveErrors: 0,
      };
  }
}

/** The latest verdict of each metric: promotion needs every one of them to be Pass. */
export function latestVerdicts(
  analysis: AnalysisStatus | undefined,
  metrics: readonly string[],
): Map<string, Verdict | undefined> {
  const latest = new Map<string, Verdict | undefined>(metrics.map((m) => [m, undefined]));
  for (const m of analysis?.measurements ?? []) if (latest.has(m.metric)) latest.set(m.metric, m.verdict);
  return latest;
}
