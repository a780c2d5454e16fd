// A scrape target that exports chosen traffic in the shapes of one or more meshes (OSM, Linkerd, Istio).
// Counters advance when scraped, by rate × elapsed time, so the numbers are exact and no timer runs.
import { Registry } from 'prom-client';
import { serveMetrics } from '../metrics-server.js';

export interface TrafficProfile {
  /** Requests per second to this destination. */
  rps: number;
  /**
   * Fraction of requests answered 500, 0..1. At 1 the destination exports no success series at all, as a
   * sidecar that never saw a non-5xx answer has none: the case a success-rate query must read as 0 %.
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

/** Who calls whom: the load generator and one destination workload (named as its Service is). */
export interface Route {
  source: TrafficSource;
  namespace: string;
  name: string;
}

/** One mesh's series: how its sidecars name and label the requests of a route. */
export interface MeshSeries {
  /** A new route's series at 0, so rate() has a starting point; its success series only if `succeeds`. */
  start(route: Route, succeeds: boolean): void;
  /** `ok` non-5xx and `failed` 500 answers since the last call, each taking `latencyMs`. */
  record(route: Route, ok: number, failed: number, latencyMs: number): void;
  /** The route now answers only 500: its success series go, so nothing hides an empty numerator. */
  dropSuccess(route: Route): void;
}

export interface MeshShape {
  /** "osm", "linkerd", "istio". */
  mesh: string;
  /** The upper bounds (ms) of the mesh's latency histogram, as its proxies export them. */
  latencyBuckets: readonly number[];
  /** Registers the mesh's metrics on `registry`; each calls `collect` before it is read. */
  register(registry: Registry, collect: () => void): MeshSeries;
}

export interface MeshMetricsTargetOptions {
  /** The meshes whose series every route gets (one /metrics holds them all; their names never collide). */
  shapes: MeshShape[];
  /** The caller of every route; default a load generator in namespace "mesh". */
  source?: TrafficSource;
  /** Milliseconds from a monotonic clock; injectable so a unit test can step time. */
  clock?: () => number;
}

export interface MeshMetricsTarget {
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

export const DEFAULT_SOURCE: TrafficSource = {
  namespace: 'mesh',
  kind: 'Deployment',
  name: 'load-generator',
  pod: 'load-generator-0',
};

/**
 * A caller's sidecar times the request across the network too, so its reports (Istio's reporter="source",
 * Linkerd's outbound series) run this much longer than the destination's: a latency query that mixes both
 * sides reads a p99 the destination never had.
 */
export const CALLER_OVERHEAD_MS = 20;

/** Guards against 0.1 × 30 = 2.9999999999999996 losing a request to floor(). */
const EPSILON = 1e-9;

interface Destination {
  route: Route;
  profile: TrafficProfile;
  /** Clock reading up to which this destination's requests have been counted. */
  countedUntil: number;
  /** Fractions of a request (and of an error) not yet counted, so totals stay exact over time. */
  requestCarry: number;
  errorCarry: number;
}

export async function startMeshMetricsTarget(opts: MeshMetricsTargetOptions): Promise<MeshMetricsTarget> {
  if (opts.shapes.length === 0) throw new Error('a mesh metrics target needs at least one mesh shape');
  const clock = opts.clock ?? (() => performance.now());
  const source = opts.source ?? DEFAULT_SOURCE;
  const destinations = new Map<string, Destination>();
  const registry = new Registry();

  // Every metric's collect() calls advance(); the later calls in one scrape find ~no time elapsed.
  const advance = (): void => {
    const now = clock();
    for (const d of destinations.values()) advanceDestination(d, now);
  };
  const meshes = opts.shapes.map((shape) => shape.register(registry, advance));

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
    for (const mesh of meshes) mesh.record(d.route, count - errors, errors, d.profile.latencyMs);
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
        if (profile.errorRate === 1) for (const mesh of meshes) mesh.dropSuccess(existing.route);
        return;
      }
      const route: Route = { source, namespace, name };
      for (const mesh of meshes) mesh.start(route, profile.errorRate < 1);
      destinations.set(key, {
        route,
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
