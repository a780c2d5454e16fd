// The one interface every router has (SMI TrafficSplit, Gateway API HTTPRoute), and what they share:
// who owns a routing object, and the release that lets it outlive its Rollout. No router's types above src/k8s.
import {
  PatchStrategy,
  setHeaderOptions,
  type CustomObjectsApi,
  type KubernetesObject,
  type V1OwnerReference,
} from '@kubernetes/client-node';
import { ANNOTATIONS, API_VERSION, type GatewayApiVersion, type SmiApiVersion } from '../api/v1alpha1.js';
import { apiError, type ApiError } from './api-error.js';

/** Where Perch routes, whichever router: the object, its Services, and the Rollout that owns it. */
interface TargetBase {
  namespace: string;
  /** The routing object's name. */
  name: string;
  /** Short name or `<name>.<namespace>.svc.cluster.local`. */
  rootService: string;
  stableService: string;
  canaryService: string;
  rollout: { name: string; uid: string };
}

export interface SplitTarget extends TargetBase {
  kind: 'TrafficSplit';
  apiVersion: SmiApiVersion;
}

export interface HttpRouteTarget extends TargetBase {
  kind: 'HTTPRoute';
  apiVersion: GatewayApiVersion;
  /** The rules (index, or a rule's name) whose backendRefs carry the split; undefined: every rule naming stable. */
  rules?: (number | string)[];
  /** The stable Service's first port: a backendRef Perch adds (or a route it creates) needs one. */
  stablePort?: number;
}

export type RouteTarget = SplitTarget | HttpRouteTarget;

/** The target's resource, for a watch cache and the custom-objects API. */
export interface RouteResource {
  apiVersion: string;
  kind: RouteTarget['kind'];
  plural: string;
}

/** owner: its ownerReferences name the Rollout; annotated: perch.dev/managed-by names it; else foreign. */
export type Ownership = 'owner' | 'annotated' | 'foreign';

/** What the machine observes of a routing object (read from a watch cache). */
export interface ObservedRoute {
  /** Routes exactly stable/canary at canaryWeight in every place Perch routes: nothing to write. */
  asPlanned: boolean;
  /** The canary's share of the stable and canary weights, as a whole percentage. */
  canaryWeight: number;
  /** The perch.dev/canary-weight annotation: what Perch wrote last. */
  lastWritten?: number;
  owned: Ownership;
  /** What the object's implementations report of it (an HTTPRoute's status.parents), for TrafficRouted. */
  reported?: string;
}

/** The routing object is someone else's: Perch must not write it (TrafficRouted=False, reason NotOwned). */
export interface NotOwnedError {
  kind: 'notOwned';
  code: 0;
  reason: 'NotOwned';
  message: string;
}

export type RouterError = ApiError | NotOwnedError;
export type SetWeightsOutcome = 'created' | 'patched' | 'unchanged';
export type SetWeightsResult =
  /** `created`: the object as the API server made it, so a write that follows carries its resourceVersion. */
  { ok: true; outcome: SetWeightsOutcome; created?: KubernetesObject } | { ok: false; error: RouterError };

/** One router: reads its object, writes two weights with a precondition, creates it, releases it. */
export interface Router<T extends RouteTarget = RouteTarget> {
  resource(target: T): RouteResource;
  /** What the machine observes of the object. Pure. */
  read(obj: KubernetesObject, target: T): ObservedRoute;
  /**
   * Why the spec's target cannot be routed as written (an invalid spec, the field named), given the
   * object as cached (undefined: it does not exist and would be created); undefined when it can.
   */
  problem(target: T, current: KubernetesObject | undefined): string | undefined;
  /** Routes canaryWeight% to the canary, the rest to stable; creates the object when `current` is undefined. */
  setWeights(target: T, canaryWeight: number, current?: KubernetesObject): Promise<SetWeightsResult>;
  /** Deletion: drops the Rollout's ownerReference and marks the object released, so it outlives the Rollout. */
  release(target: T, current: KubernetesObject): Promise<SetWeightsResult>;
}

/** The canary weight Perch wrote last, so a different weight on the object is someone else's. */
export const CANARY_WEIGHT_ANNOTATION = 'perch.dev/canary-weight';

/** The ownerReference a routing object Perch creates carries: the Rollout, as its controller. */
export function ownerReferenceTo(rollout: TargetBase['rollout']): V1OwnerReference {
  return {
    apiVersion: API_VERSION,
    kind: 'Rollout',
    name: rollout.name,
    uid: rollout.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

export function ownershipOf(obj: KubernetesObject, rollout: TargetBase['rollout']): Ownership {
  if ((obj.metadata?.ownerReferences ?? []).some((ref) => ref.uid === rollout.uid)) return 'owner';
  if (obj.metadata?.annotations?.[ANNOTATIONS.managedBy] === rollout.name) return 'annotated';
  return 'foreign';
}

export function parseLastWritten(raw: string | undefined): number | undefined {
  if (raw === undefined || !/^\d{1,3}$/.test(raw.trim())) return undefined;
  const n = Number(raw);
  return n <= 100 ? n : undefined;
}

/** A NotOwned failure when the object is someone else's, else undefined. */
export function notOwned(target: RouteTarget, current: KubernetesObject): SetWeightsResult | undefined {
  if (ownershipOf(current, target.rollout) !== 'foreign') return undefined;
  return {
    ok: false,
    error: {
      kind: 'notOwned',
      code: 0,
      reason: 'NotOwned',
      message:
        `${target.kind} ${target.namespace}/${target.name} is not owned by Rollout ${target.rollout.name}; ` +
        `annotate it ${ANNOTATIONS.managedBy}=${target.rollout.name} to let Perch manage it`,
    },
  };
}

/** A JSON Pointer segment: `~` and `/` escaped (RFC 6901). */
export const pointer = (segment: string) => segment.replace(/~/g, '~0').replace(/\//g, '~1');

/**
 * The JSON Patch of a release: `test` that our ownerReference is still at its index (a concurrent edit of
 * the list fails the patch rather than removing someone else's reference), remove it, and annotate
 * perch.dev/released-from. Undefined when the object carries no reference of ours.
 */
export function releaseOps(target: RouteTarget, current: KubernetesObject): object[] | undefined {
  const index = (current.metadata?.ownerReferences ?? []).findIndex((r) => r.uid === target.rollout.uid);
  if (index < 0) return undefined;
  return [
    { op: 'test', path: `/metadata/ownerReferences/${index}/uid`, value: target.rollout.uid },
    { op: 'remove', path: `/metadata/ownerReferences/${index}` },
    current.metadata?.annotations
      ? {
          op: 'add',
          path: `/metadata/annotations/${pointer(ANNOTATIONS.releasedFrom)}`,
          value: target.rollout.name,
        }
      : {
          op: 'add',
          path: '/metadata/annotations',
          value: { [ANNOTATIONS.releasedFrom]: target.rollout.name },
        },
  ];
}

/**
 * A JSON Patch that no longer applies (a `test` that failed, a path that is gone) answers 422 Invalid with
 * only the generic message and no causes; a schema violation names the object and its fields. The first
 * means the object moved under us: a conflict (decide again on fresh state), not bad input.
 */
export function testFailed(e: ApiError): boolean {
  return e.code === 422 && e.message === 'the server rejected our request due to an error in our request';
}

/** Sends a JSON Patch to the routing object; a failed `test` comes back as a conflict. */
export async function sendJsonPatch(
  api: CustomObjectsApi,
  resource: RouteResource,
  target: RouteTarget,
  ops: object[],
  fieldManager: string,
): Promise<SetWeightsResult> {
  const [group, version] = resource.apiVersion.split('/') as [string, string];
  try {
    await api.patchNamespacedCustomObject(
      {
        group,
        version,
        plural: resource.plural,
        namespace: target.namespace,
        name: target.name,
        body: ops,
        fieldManager,
      },
      setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
    );
    return { ok: true, outcome: 'patched' };
  } catch (err) {
    const e = apiError(err);
    return { ok: false, error: testFailed(e) ? { ...e, kind: 'conflict' } : e };
  }
}
