// The mesh's metrics as OSM's Envoy sidecars export them (osm_request_total, osm_request_duration_ms),
// same names and labels as apps/osm-metrics-target.ts, so Perch's queries read the demo like a real mesh.
import type { IncomingHttpHeaders } from 'node:http';
import { Counter, Histogram, Registry } from 'prom-client';
import { OSM_DURATION_BUCKETS, OSM_LABELS, type TrafficSource } from '../apps/osm-metrics-target.js';

/** Headers a load generator sets to name itself in the source_* labels (there are no pods to say it). */
export const SOURCE_HEADERS = {
  namespace: 'x-source-namespace',
  kind: 'x-source-kind',
  name: 'x-source-name',
  pod: 'x-source-pod',
} as const;

export const DEFAULT_SOURCE: TrafficSource = {
  namespace: 'mesh',
  kind: 'Deployment',
  name: 'load-generator',
  pod: 'load-generator-0',
};

export interface Destination {
  namespace: string;
  /** The backend Service's name; OSM labels its Deployment, which the demo names alike. */
  name: string;
}

type Labels = Record<(typeof OSM_LABELS)[number], string>;

/** The source named by a request's headers, each label defaulting on its own. */
export function sourceOf(headers: IncomingHttpHeaders, fallback: TrafficSource): TrafficSource {
  const one = (name: string, dflt: string) => {
    const v = headers[name];
    const s = Array.isArray(v) ? v[0] : v;
    return s && s.length > 0 ? s : dflt;
  };
  return {
    namespace: one(SOURCE_HEADERS.namespace, fallback.namespace),
    kind: one(SOURCE_HEADERS.kind, fallback.kind),
    name: one(SOURCE_HEADERS.name, fallback.name),
    pod: one(SOURCE_HEADERS.pod, fallback.pod),
  };
}

function labelsOf(source: TrafficSource, destination: Destination): Labels {
  return {
    source_namespace: source.namespace,
    source_kind: source.kind,
    source_name: source.name,
    source_pod: source.pod,
    destination_namespace: destination.namespace,
    destination_kind: 'Deployment',
    destination_name: destination.name,
    destination_pod: `${destination.name}-0`,
  };
}

export class MeshMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<string>;
  private readonly durations: Histogram<string>;
  private readonly connections: Counter<string>;

  constructor() {
    this.requests = new Counter({
      name: 'osm_request_total',
      help: 'Requests between a source and a destination workload, by response code.',
      labelNames: [...OSM_LABELS, 'response_code'],
      registers: [this.registry],
    });
    this.durations = new Histogram({
      name: 'osm_request_duration_ms',
      help: 'Request durations between a source and a destination workload, in milliseconds.',
      labelNames: [...OSM_LABELS],
      buckets: OSM_DURATION_BUCKETS,
      registers: [this.registry],
    });
    // Not an OSM name: OSM's own metrics are HTTP only, and nothing in Perch queries TCP connections.
    this.connections = new Counter({
      name: 'sandbox_mesh_tcp_connections_total',
      help: 'TCP connections the sandbox mesh routed, by destination and whether the backend accepted.',
      labelNames: ['destination_namespace', 'destination_name', 'outcome'],
      registers: [this.registry],
    });
  }

  recordRequest(source: TrafficSource, destination: Destination, code: number, durationMs: number): void {
    const labels = labelsOf(source, destination);
    this.requests.inc({ ...labels, response_code: String(code) });
    this.durations.observe(labels, durationMs);
  }

  recordConnection(destination: Destination, outcome: 'connected' | 'failed'): void {
    this.connections.inc({
      destination_namespace: destination.namespace,
      destination_name: destination.name,
      outcome,
    });
  }
}

export { serveMetrics, type MetricsServer } from '../metrics-server.js';
