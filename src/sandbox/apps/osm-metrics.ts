// OSM's request metrics as its Envoy sidecars export them (OSM v1.2): osm_request_total by response_code and
// osm_request_duration_ms, each labelled with the source and destination workloads.
import { Counter, Histogram } from 'prom-client';
import type { MeshShape, Route } from './mesh-metrics-target.js';

/** Envoy's default histogram buckets (ms), which OSM's osm_request_duration_ms (and Istio's) use. */
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
type Labels = Record<(typeof OSM_LABELS)[number], string>;

/** OSM labels the destination by its workload, which the sandbox names as its Service. */
function labelsOf({ source, namespace, name }: Route): Labels {
  return {
    source_namespace: source.namespace,
    source_kind: source.kind,
    source_name: source.name,
    source_pod: source.pod,
    destination_namespace: namespace,
    destination_kind: 'Deployment',
    destination_name: name,
    destination_pod: `${name}-0`,
  };
}

/**
 * OSM's shape; without `durations`, osm_request_total alone: what a success-rate query reads, a tenth of
 * the series (the scale benchmark's thousands of canaries scraped every 2 s).
 */
function osm({ durations: withDurations }: { durations: boolean }): MeshShape {
  return {
    mesh: 'osm',
    latencyBuckets: OSM_DURATION_BUCKETS,
    register(registry, collect) {
      const requests = new Counter({
        name: 'osm_request_total',
        help: 'Requests between a source and a destination workload, by response code.',
        labelNames: [...OSM_LABELS, 'response_code'],
        registers: [registry],
        collect,
      });
      const durations = withDurations
        ? new Histogram({
            name: 'osm_request_duration_ms',
            help: 'Request durations between a source and a destination workload, in milliseconds.',
            labelNames: [...OSM_LABELS],
            buckets: OSM_DURATION_BUCKETS,
            registers: [registry],
            collect,
          })
        : undefined;
      return {
        start(route, succeeds) {
          const labels = labelsOf(route);
          if (succeeds) requests.inc({ ...labels, response_code: '200' }, 0);
          requests.inc({ ...labels, response_code: '500' }, 0);
          durations?.zero(labels);
        },
        record(route, ok, failed, latencyMs) {
          const labels = labelsOf(route);
          if (failed > 0) requests.inc({ ...labels, response_code: '500' }, failed);
          if (ok > 0) requests.inc({ ...labels, response_code: '200' }, ok);
          if (durations) for (let i = 0; i < ok + failed; i++) durations.observe(labels, latencyMs);
        },
        dropSuccess(route) {
          requests.remove({ ...labelsOf(route), response_code: '200' });
        },
      };
    },
  };
}

export const osmShape: MeshShape = osm({ durations: true });
/** osm_request_total only, no latency histogram. */
export const osmRequestsShape: MeshShape = osm({ durations: false });
