// Linkerd's proxy metrics as the Linkerd 2.16 "Proxy Metrics" reference documents them: response_total and
// response_latency_ms from the destination's proxy (direction="inbound") and the caller's ("outbound").
import { Counter, Histogram } from 'prom-client';
import { CALLER_OVERHEAD_MS, type MeshShape, type Route } from './mesh-metrics-target.js';

/**
 * response_latency_ms's upper bounds (ms), as linkerd2-proxy's latency histogram has long exported them.
 * (Newer proxies export a coarser set, 1, 10, 50, 100 … 500, 1000, 5000, 10000; the templates read either.)
 */
export const LINKERD_LATENCY_BUCKETS = [
  1, 2, 3, 4, 5, 10, 20, 30, 40, 50, 100, 200, 300, 400, 500, 1000, 2000, 3000, 4000, 5000, 10000, 20000,
  30000, 40000, 50000,
];

/**
 * Every label a series carries but status_code and classification. The proxy itself writes direction,
 * tls and (outbound only) authority and dst_*; Linkerd's Prometheus scrape config adds the scraped pod's
 * namespace, pod, pod_template_hash and, from its linkerd.io/proxy-* labels, deployment and control_plane_ns.
 * (Inbound series carry no authority label since Linkerd 2.16's proxies, as its docs say.)
 */
const LABELS = [
  'direction',
  'tls',
  'authority',
  'dst_namespace',
  'dst_deployment',
  'dst_service',
  'dst_pod_template_hash',
  'namespace',
  'pod',
  'pod_template_hash',
  'deployment',
  'control_plane_ns',
] as const;
type Labels = Partial<Record<(typeof LABELS)[number], string>>;

/** One pod-template-hash for every workload: the sandbox has one ReplicaSet per Deployment. */
const POD_TEMPLATE_HASH = '6d4cf56db6';

function pod(namespace: string, deployment: string): Labels {
  return {
    namespace,
    pod: `${deployment}-${POD_TEMPLATE_HASH}-0`,
    pod_template_hash: POD_TEMPLATE_HASH,
    deployment,
    control_plane_ns: 'linkerd',
  };
}

/** The destination's own proxy, which sees every request it serves: what the templates read. */
function inbound({ namespace, name }: Route): Labels {
  return { direction: 'inbound', tls: 'true', ...pod(namespace, name) };
}

/** The caller's proxy, which names the destination in dst_* labels. */
function outbound({ source, namespace, name }: Route): Labels {
  return {
    direction: 'outbound',
    tls: 'true',
    authority: `${name}.${namespace}.svc.cluster.local:80`,
    dst_namespace: namespace,
    dst_deployment: name,
    dst_service: name,
    dst_pod_template_hash: POD_TEMPLATE_HASH,
    ...pod(source.namespace, source.name),
  };
}

const SUCCESS = { status_code: '200', classification: 'success' } as const;
const FAILURE = { status_code: '500', classification: 'failure' } as const;

export const linkerdShape: MeshShape = {
  mesh: 'linkerd',
  latencyBuckets: LINKERD_LATENCY_BUCKETS,
  register(registry, collect) {
    const responses = new Counter({
      name: 'response_total',
      help: 'A counter of the number of responses the proxy has received.',
      labelNames: [...LABELS, 'status_code', 'classification'],
      registers: [registry],
      collect,
    });
    // Recorded at the first byte, before the response is classified: status_code but no classification.
    const latencies = new Histogram({
      name: 'response_latency_ms',
      help: 'A histogram of response latencies (time to first byte), in milliseconds.',
      labelNames: [...LABELS, 'status_code'],
      buckets: LINKERD_LATENCY_BUCKETS,
      registers: [registry],
      collect,
    });
    /** Each side's labels and how much longer than the destination it times a request. */
    const sides = (route: Route) =>
      [
        [inbound(route), 0],
        [outbound(route), CALLER_OVERHEAD_MS],
      ] as const;
    return {
      start(route, succeeds) {
        for (const [labels] of sides(route)) {
          for (const outcome of succeeds ? [SUCCESS, FAILURE] : [FAILURE]) {
            responses.inc({ ...labels, ...outcome }, 0);
            latencies.zero({ ...labels, status_code: outcome.status_code });
          }
        }
      },
      record(route, ok, failed, latencyMs) {
        for (const [labels, overhead] of sides(route)) {
          for (const [outcome, n] of [
            [SUCCESS, ok],
            [FAILURE, failed],
          ] as const) {
            if (n === 0) continue;
            responses.inc({ ...labels, ...outcome }, n);
            for (let i = 0; i < n; i++)
              latencies.observe({ ...labels, status_code: outcome.status_code }, latencyMs + overhead);
          }
        }
      },
      dropSuccess(route) {
        for (const [labels] of sides(route)) {
          responses.remove({ ...labels, ...SUCCESS });
          latencies.remove({ ...labels, status_code: SUCCESS.status_code });
        }
      },
    };
  },
};
