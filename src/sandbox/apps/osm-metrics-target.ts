// A scrape target that exports OSM's osm_request_total and osm_request_duration_ms for chosen traffic.
// Counters advance when scraped, by rate × elapsed time, so the numbers are exact and no timer runs.
import { Counter, Histogram, Registry } from 'prom-client';
import { serveMetrics } from '../metrics-server.js';

export interface TrafficProfile {
  /** Requests per second to this destination. */
  rps: number;
  /**
   * Fraction of requests answered 500, 0..1. At 1 the destination exports no 200 series at all, as an
   * Envoy that never saw a non-5xx answer has none: the case a success-rate query must read as 0 %.
   */
  errorRate: number;
  /** Every request's duration in milliseconds. */
  latencyMs: number;
}

export interface TrafficSource {
  namespace: string;
  kind: string;
  name: string;
  pod: string;
}

export interface OsmMetricsTargetOptions {
  /** The source_* labels of every request; default a load generator in namespace "mesh". */
  source?: TrafficSource;
  /** Milliseconds from a monotonic clock; injectable so a unit test can step time. */
  clock?: () => number;
}

export interface OsmMetricsTarget {
  /** http://127.0.0.1:PORT/metrics */
  url: string;
  /** "127.0.0.1:PORT", as a Prometheus static target. */
  target: string;
  port: number;
  registry: Registry;
  /** Sets the traffic to one destination from now on; the time before is counted at the old profile. */
  set(namespace: string, name: string, profile: TrafficProfile): void;
  close(): Promise<void>;
}

/** Envoy's default histogram buckets, which OSM's osm_request_duration_ms uses. */
export const OSM_DURATION_BUCKETS = [
  0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000,
  3600000,
];

/** OSM's request labels (every one but response_code), as its Envoy sidecars export them. */
export const OSM_LABELS = [
  'source_namespace',
  'source_kind',
  'source_name',
  'source_pod',
  'destination_namespace',
  'destination_kind',
  'destination_name',
  'destination_pod',
] as const;
type DestinationLabel = (typeof OSM_LABELS)[number];
type Labels = Record<DestinationLabel, string>;

/** Guards against 0.1 × 30 = 2.9999999999999996 losing a request to floor(). */
const EPSILON = 1e-9;

interface Destination {
  labels: Labels;
  profile: TrafficProfile;
  /** Clock reading up to which this destination's requests have been counted. */
  countedUntil: number;
  /** Fractions of a request (and of an error) not yet counted, so totals stay exact over time. */
  requestCarry: number;
  errorCarry: number;
}

export async function startOsmMetricsTarget(opts: OsmMetricsTargetOptions = {}): Promise<OsmMetricsTarget> {
  const clock = opts.clock ?? (() => performance.now());
  const source = opts.source ?? {
    namespace: 'mesh',
    kind: 'Deployment',
    name: 'load-generator',
    pod: 'load-generator-0',
  };
  const destinations = new Map<string, Destination>();
  const registry = new Registry();

  // Both metrics' collect() call advance(); the second call in one scrape finds ~no time elapsed.
  const advance = (): void => {
    const now = clock();
    for (const d of destinations.values()) advanceDestination(d, now);
  };
  const requests = new Counter({
    name: 'osm_request_total',
    help: 'Requests between a source and a destination workload, by response code.',
    labelNames: [...OSM_LABELS, 'response_code'],
    registers: [registry],
    collect: advance,
  });
  const durations = new Histogram({
    name: 'osm_request_duration_ms',
    help: 'Request durations between a source and a destination workload, in milliseconds.',
    labelNames: [...OSM_LABELS],
    buckets: OSM_DURATION_BUCKETS,
    registers: [registry],
    collect: advance,
  });

  function advanceDestination(d: Destination, now: number): void {
    const seconds = Math.max(0, now - d.countedUntil) / 1000;
    d.countedUntil = now;
    const due = d.profile.rps * seconds + d.requestCarry;
    const count = Math.floor(due + EPSILON);
    d.requestCarry = Math.max(0, due - count);
    if (count === 0) return;
    const errorsDue = count * d.profile.errorRate + d.errorCarry;
    const errors = Math.min(count, Math.floor(errorsDue + EPSILON));
    d.errorCarry = Math.max(0, errorsDue - errors);
    if (errors > 0) requests.inc({ ...d.labels, response_code: '500' }, errors);
    if (count > errors) requests.inc({ ...d.labels, response_code: '200' }, count - errors);
    for (let i = 0; i < count; i++) durations.observe(d.labels, d.profile.latencyMs);
  }

  const metricsServer = await serveMetrics(registry);

  return {
    url: metricsServer.url,
    target: metricsServer.target,
    port: metricsServer.port,
    registry,
    set(namespace, name, profile) {
      checkProfile(namespace, name, profile);
      const key = `${namespace}/${name}`;
      const now = clock();
      const existing = destinations.get(key);
      if (existing) {
        advanceDestination(existing, now);
        existing.profile = { ...profile };
        if (profile.errorRate === 1) requests.remove({ ...existing.labels, response_code: '200' });
        return;
      }
      const labels: Labels = {
        source_namespace: source.namespace,
        source_kind: source.kind,
        source_name: source.name,
        source_pod: source.pod,
        destination_namespace: namespace,
        destination_kind: 'Deployment',
        destination_name: name,
        destination_pod: `${name}-0`,
      };
      // Series exist at 0 from the first scrape, so rate() has a starting point and idle reads 0, not absent;
      // but no 200 series for a destination that answers only 500 (it would hide an empty numerator).
      if (profile.errorRate < 1) requests.inc({ ...labels, response_code: '200' }, 0);
      requests.inc({ ...labels, response_code: '500' }, 0);
      durations.zero(labels);
      destinations.set(key, {
        labels,
        profile: { ...profile },
        countedUntil: now,
        requestCarry: 0,
        errorCarry: 0,
      });
    },
    close: () => metricsServer.close(),
  };
}

function checkProfile(namespace: string, name: string, p: TrafficProfile): void {
  const where = `traffic to ${namespace}/${name}`;
  if (!(Number.isFinite(p.rps) && p.rps >= 0)) throw new RangeError(`${where}: rps ${p.rps} must be >= 0`);
  if (!(p.errorRate >= 0 && p.errorRate <= 1)) {
    throw new RangeError(`${where}: errorRate ${p.errorRate} must be a fraction in 0..1`);
  }
  if (!(Number.isFinite(p.latencyMs) && p.latencyMs >= 0)) {
    throw new RangeError(`${where}: latencyMs ${p.latencyMs} must be >= 0`);
  }
}
