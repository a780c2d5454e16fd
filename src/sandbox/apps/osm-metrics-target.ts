// The OSM metrics target the rollout tests steer: the mesh metrics target with OSM's shape only.
// (Its types and OSM's names are re-exported here, where the tests and the sandbox mesh import them.)
import { startMeshMetricsTarget, type MeshMetricsTarget, type TrafficSource } from './mesh-metrics-target.js';
import { osmRequestsShape, osmShape } from './osm-metrics.js';

export type { TrafficProfile, TrafficSource } from './mesh-metrics-target.js';
export { OSM_DURATION_BUCKETS, OSM_LABELS } from './osm-metrics.js';

export interface OsmMetricsTargetOptions {
  /** The source_* labels of every request; default a load generator in namespace "mesh". */
  source?: TrafficSource;
  /** Milliseconds from a monotonic clock; injectable so a unit test can step time. */
  clock?: () => number;
  /** osm_request_duration_ms too (default true); false: osm_request_total alone, a tenth of the series. */
  durations?: boolean;
}

export type OsmMetricsTarget = MeshMetricsTarget;

export function startOsmMetricsTarget(opts: OsmMetricsTargetOptions = {}): Promise<OsmMetricsTarget> {
  const { durations = true, ...rest } = opts;
  return startMeshMetricsTarget({ ...rest, shapes: [durations ? osmShape : osmRequestsShape] });
}
