// The perch.dev/v1alpha1 API as TypeScript types: Rollout and MetricTemplate (SPEC §2, §4).
// crds/rollout.yaml and crds/metrictemplate.yaml are the schemas these types mirror.
import type { KubernetesObject } from '@kubernetes/client-node';
import type { OnNoData, ThresholdRange, Verdict } from '../analysis/types.js';

export const GROUP = 'perch.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

export type SmiApiVersion =
  | 'split.smi-spec.io/v1alpha1'
  | 'split.smi-spec.io/v1alpha2'
  | 'split.smi-spec.io/v1alpha3'
  | 'split.smi-spec.io/v1alpha4';

export type GatewayApiVersion = 'gateway.networking.k8s.io/v1' | 'gateway.networking.k8s.io/v1beta1';

/** SPEC §2 trafficRouting.gatewayAPI: the HTTPRoute whose backendRefs' weights Perch writes. */
export interface GatewayApiRouting {
  /** The HTTPRoute's name in the Rollout's namespace; the controller uses metadata.name when it is not set. */
  httpRoute?: string;
  apiVersion?: GatewayApiVersion;
  /** The rules (index, or a rule's name) that carry the split; default: every rule naming the stable Service. */
  rules?: (number | string)[];
}

export type Step =
  | { setWeight: number }
  | { analysis: { iterations: number } }
  /** No duration: wait for perch.dev/resume. */
  | { pause: { duration?: string } };

export interface MetricSpec {
  name: string;
  /** PromQL with {{ variables }}; exactly one of query and templateRef. */
  query?: string;
  templateRef?: { name: string; namespace?: string };
  templateVariables?: Record<string, string>;
  thresholdRange?: ThresholdRange;
  onNoData?: OnNoData;
}

export interface AnalysisSpec {
  /** Go-style duration, e.g. "30s", "1m". */
  interval: string;
  failureLimit: number;
  inconclusiveLimit: number;
  errorLimit: number;
  prometheus?: { address?: string; timeout?: string };
  metrics: MetricSpec[];
}

export interface RolloutSpec {
  /** Root service: short name or <name>.<namespace>.svc.cluster.local of the Rollout's namespace. */
  service: string;
  stableService: string;
  canaryService: string;
  /** One router; SMI with its defaults when absent. */
  trafficRouting?: {
    smi?: { trafficSplitName?: string; apiVersion?: SmiApiVersion };
    gatewayAPI?: GatewayApiRouting;
  };
  steps?: Step[];
  stepWeight?: number;
  maxWeight?: number;
  stepWeights?: number[];
  analysis?: AnalysisSpec;
  window?: { schedule: string; timeZone?: string };
  progressDeadlineSeconds?: number;
}

export type Phase =
  | 'Pending'
  | 'Progressing'
  | 'Paused'
  | 'Promoting'
  | 'Succeeded'
  | 'RollingBack'
  | 'Failed'
  | 'Aborted'
  | 'Invalid';

export type ConditionType = 'Valid' | 'TrafficRouted' | 'Progressing' | 'Paused' | 'Ready';

export interface Condition {
  type: ConditionType;
  status: 'True' | 'False' | 'Unknown';
  /** CamelCase, e.g. NotOwned, AnalysisInconclusive. */
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export interface Measurement {
  metric: string;
  /** Absent when there was no value (empty result, error). */
  value?: number;
  verdict: Verdict;
  at: string;
}

/** What a run delivers: the two Services and the routing object. A change of any of them starts a new run. */
export interface RunTarget {
  stableService: string;
  canaryService: string;
  /** The routing object, as `<Kind>/<name>` (e.g. TrafficSplit/web). */
  route: string;
}

export type PauseReason = 'Manual' | 'PauseStep' | 'AnalysisInconclusive' | 'MetricsUnavailable';

export interface RolloutStatus {
  /** The generation the controller last acted on, valid or not (kstatus reads it). */
  observedGeneration?: number;
  /** What the current or last run delivers (SPEC §4: only a change of it starts a new run). */
  runTarget?: RunTarget;
  phase?: Phase;
  message?: string;
  currentStepIndex?: number;
  /** "current/total", 1-based, for the STEP printer column (e.g. "2/6"). */
  step?: string;
  canaryWeight?: number;
  stableWeight?: number;
  runStartedAt?: string;
  stepStartedAt?: string;
  pauseReason?: PauseReason;
  /** When the progress-deadline clock last (re)started: step start, or the end of a pause or closed window. */
  progressSince?: string;
  /** Set when a rollback starts: the phase it ends in and why, so a restarted controller finishes it. */
  rollback?: { phase: 'Failed' | 'Aborted'; reason: string; message: string };
  /** The phase the run had when the spec became invalid: valid again, it goes on from there (a finished run stays finished). */
  invalidFrom?: Exclude<Phase, 'Invalid'>;
  /** When the current invalid spell began: mid-run, one longer than the progress deadline rolls back. */
  invalidSince?: string;
  analysis?: {
    passed: number;
    failed: number;
    inconclusive: number;
    consecutiveErrors: number;
    /** Consecutive passing rounds since the current step started (what `analysis: {iterations}` waits for). */
    consecutivePassed?: number;
    lastCheckAt?: string;
    /** When the next round of checks is due; absent while no canary traffic flows. */
    nextCheckAt?: string;
    /** The last 10 per metric. */
    measurements: Measurement[];
  };
  conditions?: Condition[];
}

export interface Rollout extends KubernetesObject {
  spec: RolloutSpec;
  status?: RolloutStatus;
}

export interface MetricTemplateSpec {
  /** Flagger's shape, so Flagger users can port templates unchanged. */
  provider: { type: 'prometheus'; address?: string };
  query: string;
}

export interface MetricTemplate extends KubernetesObject {
  spec: MetricTemplateSpec;
}

/** The annotations of SPEC §5. */
export const ANNOTATIONS = {
  paused: 'perch.dev/paused',
  resume: 'perch.dev/resume',
  promote: 'perch.dev/promote',
  abort: 'perch.dev/abort',
  retry: 'perch.dev/retry',
  managedBy: 'perch.dev/managed-by',
  /** Set on a routing object when its Rollout was deleted: the object outlives it, at the live version. */
  releasedFrom: 'perch.dev/released-from',
} as const;

export const TRAFFIC_FINALIZER = 'perch.dev/traffic';

/**
 * The phase as people speak of it, with the reason of a pause: "Paused(Manual)". `none` when there is
 * no phase yet. (The demo's view and kubectl perch show it alike.)
 */
export function phaseText(s: { phase?: string; pauseReason?: string } | undefined, none = '-'): string {
  const phase = s?.phase;
  if (!phase) return none;
  return phase === 'Paused' && s.pauseReason ? `${phase}(${s.pauseReason})` : phase;
}
