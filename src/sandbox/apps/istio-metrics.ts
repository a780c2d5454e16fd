// Istio's standard metrics as the Istio Standard Metrics reference (istio.io, 1.2x) documents them:
// istio_requests_total and istio_request_duration_milliseconds, reported by the destination's sidecar
// (reporter="destination") and by the caller's (reporter="source").
import { Counter, Histogram } from 'prom-client';
import { CALLER_OVERHEAD_MS, type MeshShape, type Route } from './mesh-metrics-target.js';
import { OSM_DURATION_BUCKETS } from './osm-metrics.js';

/** Envoy's default buckets (ms): Istio's sidecars record istio_request_duration_milliseconds in them. */
export const ISTIO_DURATION_BUCKETS = OSM_DURATION_BUCKETS;

/** Every label of both metrics but response_code, in the documentation's order. */
const LABELS = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'source_canonical_service',
  'source_canonical_revision',
  'source_cluster',
  'destination_workload',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_service',
  'destination_service_name',
  'destination_service_namespace',
  'destination_canonical_service',
  'destination_canonical_revision',
  'destination_cluster',
  'request_protocol',
  'grpc_response_status',
  'response_flags',
  'connection_security_policy',
] as const;
type Labels = Record<(typeof LABELS)[number], string>;

function labelsOf({ source, namespace, name }: Route, reporter: 'source' | 'destination'): Labels {
  return {
    reporter,
    source_workload: source.name,
    source_workload_namespace: source.namespace,
    source_principal: `spiffe://cluster.local/ns/${source.namespace}/sa/${source.name}`,
    source_app: source.name,
    source_version: 'unknown',
    source_canonical_service: source.name,
    source_canonical_revision: 'latest',
    source_cluster: 'Kubernetes',
    destination_workload: name,
    destination_workload_namespace: namespace,
    destination_principal: `spiffe://cluster.local/ns/${namespace}/sa/${name}`,
    destination_app: name,
    destination_version: 'unknown',
    destination_service: `${name}.${namespace}.svc.cluster.local`,
    destination_service_name: name,
    destination_service_namespace: namespace,
    destination_canonical_service: name,
    destination_canonical_revision: 'latest',
    destination_cluster: 'Kubernetes',
    request_protocol: 'http',
    grpc_response_status: '',
    response_flags: '-',
    // As documented: the destination's sidecar knows the connection was mTLS; the source reports unknown.
    connection_security_policy: reporter === 'destination' ? 'mutual_tls' : 'unknown',
  };
}

export const istioShape: MeshShape = {
  mesh: 'istio',
  latencyBuckets: ISTIO_DURATION_BUCKETS,
  register(registry, collect) {
    const requests = new Counter({
      name: 'istio_requests_total',
      help: 'Requests handled by an Istio proxy.',
      labelNames: [...LABELS, 'response_code'],
      registers: [registry],
      collect,
    });
    const durations = new Histogram({
      name: 'istio_request_duration_milliseconds',
      help: 'Duration of requests, in milliseconds.',
      labelNames: [...LABELS, 'response_code'],
      buckets: ISTIO_DURATION_BUCKETS,
      registers: [registry],
      collect,
    });
    /** Each reporter's labels and how much longer than the destination it times a request. */
    const reporters = (route: Route) =>
      [
        [labelsOf(route, 'destination'), 0],
        [labelsOf(route, 'source'), CALLER_OVERHEAD_MS],
      ] as const;
    return {
      start(route, succeeds) {
        for (const [labels] of reporters(route)) {
          for (const code of succeeds ? ['200', '500'] : ['500']) {
            requests.inc({ ...labels, response_code: code }, 0);
            durations.zero({ ...labels, response_code: code });
          }
        }
      },
      record(route, ok, failed, latencyMs) {
        for (const [labels, overhead] of reporters(route)) {
          for (const [code, n] of [
            ['200', ok],
            ['500', failed],
          ] as const) {
            if (n === 0) continue;
            requests.inc({ ...labels, response_code: code }, n);
            for (let i = 0; i < n; i++)
              durations.observe({ ...labels, response_code: code }, latencyMs + overhead);
          }
        }
      },
      dropSuccess(route) {
        for (const [labels] of reporters(route)) {
          requests.remove({ ...labels, response_code: '200' });
          durations.remove({ ...labels, response_code: '200' });
        }
      },
    };
  },
};
