// What the machine is given (an observation) and what it gives back (a status and intended effects).
// The controller builds the observation and carries out the effects; the machine only decides.
import type { CheckResult } from '../analysis/types.js';
import type { RolloutStatus } from '../api/v1alpha1.js';

export interface Observation {
  /** The clock, read once by the controller (ms since the epoch). */
  now: number;
  generation: number;
  /** The spec's validity (SPEC §2): what the schema could not check, checked against the cluster. */
  validation: { valid: true } | { valid: false; reason: string; message: string };
  /** metadata.deletionTimestamp is set: put traffic back on stable, then let the Rollout go. */
  deleting: boolean;
  annotations: { paused: boolean; resume: boolean; promote: boolean; abort: boolean; retry: boolean };
  /** Checks made for this reconcile (empty when none was due). */
  checks: CheckResult[];
  /**
   * The TrafficSplit as observed; undefined when it does not exist yet. `lastWritten` is the canary
   * weight Perch recorded on it with its last write (an annotation), so a difference is someone else's.
   */
  traffic: { canaryWeight: number; lastWritten?: number; asPlanned?: boolean } | undefined;
  /** Whether the stable Service exists: on deletion stable 100 is written even for an otherwise invalid spec. */
  stableServiceExists?: boolean;
  /** Whether Perch may write the TrafficSplit (it owns it, or it is annotated perch.dev/managed-by). */
  routing: { ok: true } | { ok: false; reason: string; message: string };
  /** The promotion window: open (or no window), and when it opens next if closed. */
  window: { open: boolean; nextOpenAt?: number };
}

export type Effect =
  /** Make the TrafficSplit route canary% to the canary and the rest to stable (creating it if missing). */
  | { type: 'setWeights'; canaryWeight: number; drift: boolean }
  | { type: 'event'; eventType: 'Normal' | 'Warning'; reason: string; message: string }
  | { type: 'clearAnnotation'; key: string }
  | { type: 'removeFinalizer' }
  | { type: 'requeueAfter'; ms: number };

export interface Decision {
  status: RolloutStatus;
  effects: Effect[];
}
