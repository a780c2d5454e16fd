// The controller's own Prometheus metrics (SPEC §6 names), on one prom-client registry.
// Gauges per Rollout are set from each reconcile and removed with the Rollout.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { QueryOutcome } from '../analysis/prometheus-client.js';
import type { CheckResult } from '../analysis/types.js';
import type { Phase } from '../api/v1alpha1.js';
import { PHASES } from '../machine/rollout-machine.js';

/**
 * Counters start at 0 for every value their label can take where those values are few: a series that
 * first appears at 1 shows no increase() or rate() in Prometheus, so a namespace's first Failed run, or
 * the first unreachable query, would never show on a dashboard or fire an alert.
 */
const RUN_OUTCOMES: readonly Phase[] = ['Succeeded', 'Failed', 'Aborted'];
const QUERY_OUTCOMES = Object.keys({
  success: 0,
  unreachable: 0,
  timeout: 0,
  http: 0,
  'bad-response': 0,
  query: 0,
} satisfies Record<QueryOutcome, 0>) as QueryOutcome[];

export class ControllerMetrics {
  readonly registry = new Registry();
  private readonly info = new Gauge({
    name: 'perch_rollout_info',
    help: 'One per Rollout, labelled with its phase (1 for the current phase).',
    labelNames: ['namespace', 'name', 'phase'],
    registers: [this.registry],
  });
  private readonly weight = new Gauge({
    name: 'perch_rollout_canary_weight',
    help: "The canary's traffic weight in percent, as the status records it.",
    labelNames: ['namespace', 'name'],
    registers: [this.registry],
  });
  private readonly checks = new Counter({
    name: 'perch_analysis_checks_total',
    help: 'Metric checks by verdict.',
    labelNames: ['namespace', 'name', 'metric', 'verdict'],
    registers: [this.registry],
  });
  private readonly runs = new Counter({
    name: 'perch_rollout_runs_total',
    help: 'Finished runs by outcome (Succeeded, Failed, Aborted).',
    labelNames: ['namespace', 'outcome'],
    registers: [this.registry],
  });
  private readonly runDuration = new Histogram({
    name: 'perch_rollout_run_duration_seconds',
    help: 'From run start to its outcome.',
    buckets: [10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600],
    registers: [this.registry],
  });
  readonly reconcileDuration = new Histogram({
    name: 'perch_reconcile_duration_seconds',
    help: 'Time spent in one reconcile, Prometheus queries included.',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  private readonly kubeRequests = new Counter({
    name: 'perch_kube_requests_total',
    help: 'Requests to the Kubernetes API by verb, resource and response code.',
    labelNames: ['verb', 'resource', 'code'],
    registers: [this.registry],
  });
  private readonly promQueries = new Counter({
    name: 'perch_prometheus_queries_total',
    help: 'Prometheus queries by outcome (success, unreachable, timeout, http, bad-response, query).',
    labelNames: ['outcome'],
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    for (const outcome of QUERY_OUTCOMES) this.promQueries.inc({ outcome }, 0);
  }

  /** Namespaces whose run outcomes are counted from 0 already. */
  private readonly runNamespaces = new Set<string>();

  /** What observeRollout last set per Rollout: a reconcile that changes neither sets nothing (8 label lookups each). */
  private readonly observed = new Map<string, string>();

  observeRollout(
    namespace: string,
    name: string,
    phase: Phase | undefined,
    canaryWeight: number | undefined,
  ): void {
    if (!this.runNamespaces.has(namespace)) {
      this.runNamespaces.add(namespace);
      for (const outcome of RUN_OUTCOMES) this.runs.inc({ namespace, outcome }, 0);
    }
    const key = `${namespace}/${name}`;
    const seen = `${phase ?? ''}/${canaryWeight ?? 0}`;
    if (this.observed.get(key) === seen) return;
    this.observed.set(key, seen);
    for (const p of PHASES) this.info.set({ namespace, name, phase: p }, p === phase ? 1 : 0);
    this.weight.set({ namespace, name }, canaryWeight ?? 0);
  }

  /** Every series of a Rollout that is gone: a controller that outlives many Rollouts must not grow. */
  forgetRollout(namespace: string, name: string): void {
    for (const phase of PHASES) this.info.remove({ namespace, name, phase });
    this.weight.remove({ namespace, name });
    const key = `${namespace}/${name}`;
    this.observed.delete(key);
    for (const [metric, verdict] of this.checkSeries.get(key)?.values() ?? [])
      this.checks.remove({ namespace, name, metric, verdict });
    this.checkSeries.delete(key);
  }

  /** The (metric, verdict) pairs counted per Rollout, so forgetRollout can remove exactly those. */
  private readonly checkSeries = new Map<string, Map<string, [string, string]>>();

  countChecks(namespace: string, name: string, checks: readonly CheckResult[]): void {
    if (checks.length === 0) return;
    const key = `${namespace}/${name}`;
    let series = this.checkSeries.get(key);
    if (!series) this.checkSeries.set(key, (series = new Map()));
    for (const c of checks) {
      this.checks.inc({ namespace, name, metric: c.metric, verdict: c.verdict });
      series.set(`${c.metric}\u0000${c.verdict}`, [c.metric, c.verdict]);
    }
  }

  /** How many Rollouts have series now (for tests of forgetRollout). */
  rolloutsWithSeries(): number {
    return Math.max(this.checkSeries.size, this.observed.size);
  }

  countRun(namespace: string, outcome: Phase, seconds: number | undefined): void {
    this.runs.inc({ namespace, outcome });
    if (seconds !== undefined) this.runDuration.observe(seconds);
  }

  countKubeRequest(verb: string, resource: string, code: number): void {
    this.kubeRequests.inc({ verb, resource, code: String(code) });
  }

  countQuery = (outcome: QueryOutcome): void => {
    this.promQueries.inc({ outcome });
  };
}
