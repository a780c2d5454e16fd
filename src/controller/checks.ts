// Runs one round of metric checks for a Rollout: resolve each query, render it, ask Prometheus,
// judge the answer. Clients are shared per (address, timeout); connection pools, the bound on queries in
// flight and identical queries per address: thousands of Rollouts share a few, dropped when none uses them.
import type { Agent } from 'node:http';
import { InflightLimit } from '../analysis/inflight-limit.js';
import { PrometheusClient, type QueryOutcome, type QueryResult } from '../analysis/prometheus-client.js';
import { MAX_SOCKETS, prometheusAgent } from '../analysis/prometheus-transport.js';
import { SharedQueries } from '../analysis/shared-queries.js';
import { renderQuery } from '../analysis/template.js';
import type { CheckResult } from '../analysis/types.js';
import { checkMetric } from '../analysis/verdict.js';
import { serviceName } from '../api/service-name.js';
import type { Rollout } from '../api/v1alpha1.js';
import { parseDuration } from '../machine/duration.js';
import { SharedByRollouts } from './shared.js';
import { prometheusRefusal, resolveMetric, type Admission, type Lookups } from './validate.js';

export interface CheckRunnerOptions {
  /** --prometheus-url: used when neither the MetricTemplate nor the Rollout names an address. */
  defaultAddress?: string;
  /**
   * The Prometheus servers and template namespaces allowed, enforced here too although validation refuses
   * the rest: whatever slips past validation (a template edited since) must never send a request elsewhere.
   */
  admission: Admission;
  onOutcome?: (outcome: QueryOutcome) => void;
  /**
   * Queries one Prometheus has from this controller at once (default MAX_SOCKETS, the keep-alive pool's
   * size); the rest wait their turn, one Rollout after another, their timeout not started yet.
   */
  maxInflight?: number;
  /**
   * What another server sent that must never reach status or Events (an error body, partial-data
   * warnings), for the controller's log only.
   */
  onDetail?: (rollout: string, metric: string, detail: { error?: string; warnings?: string[] }) => void;
}

export class CheckRunner {
  private readonly clients = new SharedByRollouts<PrometheusClient>();
  /**
   * Per Prometheus: one keep-alive pool, one in-flight bound, the queries just sent. A dropped pool's idle
   * connections close by themselves.
   */
  private readonly servers = new SharedByRollouts<{
    agent: Agent;
    limit: InflightLimit;
    sent: SharedQueries<QueryResult>;
  }>();
  private readonly maxInflight: number;

  constructor(private readonly opts: CheckRunnerOptions) {
    this.maxInflight = opts.maxInflight ?? MAX_SOCKETS;
    if (!Number.isInteger(this.maxInflight) || this.maxInflight < 1)
      throw new RangeError(`maxInflight ${opts.maxInflight}: give a whole number of queries, at least 1`);
  }

  /** A Rollout that is gone: the clients only it used are dropped. */
  forget(rolloutKey: string): void {
    this.clients.release(rolloutKey);
    this.servers.release(rolloutKey);
  }

  /** How many clients are kept now. */
  clientCount(): number {
    return this.clients.size();
  }

  /** One check per metric, made concurrently; every failure is a verdict, never a throw. */
  async run(rollout: Rollout, lookups: Pick<Lookups, 'metricTemplate'>, now: Date): Promise<CheckResult[]> {
    const ns = rollout.metadata?.namespace ?? '';
    const spec = rollout.spec;
    const analysis = spec.analysis;
    if (!analysis) return [];
    const timeoutMs = parseDuration(analysis.prometheus?.timeout ?? '5s') ?? 5000;
    const at = now.toISOString();
    const user = `${ns}/${rollout.metadata?.name ?? ''}`;
    const used = new Set<string>();
    const addresses = new Set<string>();
    const client = (address: string) => {
      const id = `${address} ${timeoutMs}`;
      used.add(id);
      addresses.add(address);
      // Sockets as many as queries may be in flight: none ever waits inside the agent, timeout running.
      const server = this.servers.acquire(user, address, () => ({
        agent: prometheusAgent(address, this.maxInflight),
        limit: new InflightLimit(this.maxInflight),
        sent: new SharedQueries<QueryResult>(),
      }));
      const c = this.clients.acquire(
        user,
        id,
        () =>
          new PrometheusClient({ address, timeoutMs, onOutcome: this.opts.onOutcome, agent: server.agent }),
      );
      // The same text at the same moment is the same answer: one request, whoever asks.
      const query = (promql: string) =>
        server.sent.ask(`${timeoutMs}\u0000${promql}`, now.getTime(), () =>
          server.limit.run(user, () => c.query(promql, { time: now })),
        );
      return { query };
    };
    const results = await Promise.all(
      analysis.metrics.map(async (metric): Promise<CheckResult> => {
        const error = (reason: string): CheckResult => ({
          metric: metric.name,
          verdict: 'Error',
          reason,
          at,
        });
        const resolved = resolveMetric(metric, ns, {
          metricTemplate: (namespace, name) => lookups.metricTemplate(namespace, name),
          admission: this.opts.admission,
        });
        if (!resolved.ok) return error(`${metric.name}: ${resolved.message}`);
        const rendered = renderQuery(
          resolved.query,
          {
            namespace: ns,
            name: rollout.metadata?.name ?? '',
            service: serviceName(ns, spec.service) ?? spec.service,
            stable: spec.stableService,
            canary: spec.canaryService,
            interval: analysis.interval,
            variables: metric.templateVariables,
          },
          metric.name,
        );
        if (!rendered.ok) return error(rendered.error.message);
        const address =
          resolved.template?.spec.provider.address ??
          analysis.prometheus?.address ??
          this.opts.defaultAddress;
        if (!address)
          return error(
            `${metric.name}: no Prometheus address (set spec.analysis.prometheus.address or --prometheus-url)`,
          );
        const refused = prometheusRefusal(address, this.opts.admission);
        if (refused) return error(`${metric.name}: ${refused.message}; no query sent`);
        const result = await client(address).query(rendered.value);
        if (!result.ok && result.error.detail)
          this.opts.onDetail?.(user, metric.name, { error: result.error.detail });
        if (result.ok && result.warnings.length > 0)
          this.opts.onDetail?.(user, metric.name, { warnings: result.warnings });
        return checkMetric({
          metric: metric.name,
          result,
          thresholdRange: metric.thresholdRange,
          onNoData: metric.onNoData,
          at,
        });
      }),
    );
    this.clients.settle(user, used);
    this.servers.settle(user, addresses);
    return results;
  }
}
