// What the machine is given (an observation) and what it gives back (a status and intended effects).
// The controller builds the observation and carries out the effects; the machine only decides.
import type { CheckResult } from '../analysis/types.js';
import type { RolloutStatus, RunTarget } from '../api/v1alpha1.js';

export interface Observation {
  /** The clock, read once by the controller (ms since the epoch). */
  now: number;
  generation: number;
  /** The spec's validity (SPEC §2): what the schema could not check, checked against the cluster. */
  validation: { valid: true } | { valid: false; reason: string; message: string };
  /** What the spec delivers now: a run starts again only when this differs from status.runTarget. */
  target: RunTarget;
  /**
   * The first reconcile of this Rollout by this controller process (after a start or a new leader):
   * time when no controller ran does not count against the progress deadline.
   */
  firstLook?: boolean;
  /** metadata.deletionTimestamp is set: put traffic on the live version, release it, then let the Rollout go. */
  deleting: boolean;
  annotations: { paused: boolean; resume: boolean; promote: boolean; abort: boolean; retry: boolean };
  /** Checks made for this reconcile (empty when none was due). */
  checks: CheckResult[];
  /**
   * The routing object as observed; undefined when it does not exist yet. `lastWritten` is the canary
   * weight Perch recorded on it with its last write (an annotation), so a difference is someone else's.
   */
  traffic:
    | {
        canaryWeight: number;
        lastWritten?: number;
        asPlanned?: boolean;
        /** The routing object carries the Rollout's ownerReference (deletion must release it). */
        ownedByRef?: boolean;
        /** What the mesh or gateway reports of the object (an HTTPRoute's status.parents), for TrafficRouted. */
        reported?: string;
      }
    | undefined;
  /** Whether the stable and canary Services exist: on deletion the live version is written even for an otherwise invalid spec. */
  stableServiceExists?: boolean;
  canaryServiceExists?: boolean;
  /** Whether Perch may write the routing object (it owns it, or it is annotated perch.dev/managed-by) and the cluster serves it. */
  routing: { ok: true } | { ok: false; reason: string; message: string };
  /**
   * The API server refused this weight (an admission webhook, a 422) and nothing has changed since:
   * the same write is not sent again until the routing object, the spec or the wanted weight changes.
   */
  refused?: { canaryWeight: number; message: string };
  /** The promotion window: open (or no window), and when it opens next if closed. */
  window: { open: boolean; nextOpenAt?: number };
}

export type Effect =
  /** Make the routing object route canary% to the canary and the rest to stable (creating it if missing). */
  | { type: 'setWeights'; canaryWeight: number; drift: boolean }
  | { type: 'event'; eventType: 'Normal' | 'Warning'; reason: string; message: string }
  | { type: 'clearAnnotation'; key: string }
  /** Deletion: drop Perch's ownerReference from the routing object and mark it released, so it outlives the Rollout. */
  | { type: 'releaseTraffic' }
  | { type: 'removeFinalizer' }
  | { type: 'requeueAfter'; ms: number };

export interface Decision {
  status: RolloutStatus;
  effects: Effect[];
}
