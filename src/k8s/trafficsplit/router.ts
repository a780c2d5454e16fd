// The TrafficSplit router: parses a cached TrafficSplit into what the machine observes, and writes weights.
// Shared by every SMI version; v1alpha1.ts, v1alpha2.ts and v1alpha3.ts own what differs between them.
import {
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { serviceFqdn, serviceName } from '../../api/service-name.js';
import { ANNOTATIONS, type SmiApiVersion } from '../../api/v1alpha1.js';
import { apiError, type ApiError } from '../api-error.js';
import {
  CANARY_WEIGHT_ANNOTATION,
  notOwned,
  ownerReferenceTo,
  ownershipOf,
  parseLastWritten,
  releaseOps,
  sendJsonPatch,
  type ObservedRoute,
  type RouteResource,
  type Router,
  type SetWeightsResult,
  type SplitTarget,
} from '../router.js';
import { v1alpha1 } from './v1alpha1.js';
import { v1alpha2 } from './v1alpha2.js';
import { v1alpha3 } from './v1alpha3.js';

export const SMI_GROUP = 'split.smi-spec.io';
export const TRAFFICSPLIT_PLURAL = 'trafficsplits';
export type { SplitTarget } from '../router.js';
/** The SMI name of what every router observes. */
export type ObservedSplit = ObservedRoute;

export interface Backend {
  service: string;
  weight: number | string;
}

/** What differs between SMI versions: the weight's type on the wire and the spec fields Perch writes. */
export interface SmiVersionModule {
  readonly versions: readonly SmiApiVersion[];
  /** A backend weight as the version stores it, as a number; undefined when it is not a weight. */
  parseWeight(raw: unknown): number | undefined;
  /** A whole percentage as this version writes it. */
  formatWeight(percent: number): number | string;
  /** The spec fields of one merge patch (or a create); fields left out stay as they are on the object. */
  spec(service: string, backends: Backend[]): Record<string, unknown>;
}

const MODULES: readonly SmiVersionModule[] = [v1alpha1, v1alpha2, v1alpha3];

interface SplitShape extends KubernetesObject {
  spec?: { service?: unknown; backends?: unknown };
}

export function versionModule(apiVersion: string | undefined): SmiVersionModule | undefined {
  return MODULES.find((m) => (m.versions as readonly string[]).includes(apiVersion ?? ''));
}

function moduleFor(apiVersion: SmiApiVersion): SmiVersionModule {
  const m = versionModule(apiVersion);
  // SmiApiVersion is a closed union and every member has a module, so this is a bug, not input.
  if (!m) throw new Error(`no TrafficSplit module for ${apiVersion}`);
  return m;
}

/** The backends for a canary weight: stable then canary, total 100, a backend at 0 left out. */
export function desiredBackends(
  target: Pick<SplitTarget, 'stableService' | 'canaryService'>,
  canaryWeight: number,
): { service: string; weight: number }[] {
  return [
    { service: target.stableService, weight: 100 - canaryWeight },
    { service: target.canaryService, weight: canaryWeight },
  ].filter((b) => b.weight > 0);
}

/** The backends of an object, weights as numbers (an unreadable weight counts as 0). */
function backendsOf(obj: SplitShape, module: SmiVersionModule): { service: string; weight: number }[] {
  const raw = obj.spec?.backends;
  if (!Array.isArray(raw)) return [];
  return raw.map((b: { service?: unknown; weight?: unknown } | null) => ({
    service: typeof b?.service === 'string' ? b.service : '',
    weight: module.parseWeight(b?.weight) ?? 0,
  }));
}

/** The module that reads an object: its own apiVersion's, else the target's (the informer may watch another). */
function readerFor(obj: KubernetesObject, target: Pick<SplitTarget, 'apiVersion'>): SmiVersionModule {
  return versionModule(obj.apiVersion) ?? moduleFor(target.apiVersion);
}

/** What the machine observes of a TrafficSplit (from an informer cache). Pure. */
export function readSplit(obj: KubernetesObject, target: SplitTarget): ObservedSplit {
  const backends = backendsOf(obj as SplitShape, readerFor(obj, target));
  const canary = serviceName(target.namespace, target.canaryService) ?? target.canaryService;
  const total = backends.reduce((sum, b) => sum + b.weight, 0);
  const canaryRaw = backends
    .filter((b) => (serviceName(target.namespace, b.service) ?? b.service) === canary)
    .reduce((sum, b) => sum + b.weight, 0);
  const canaryWeight = total > 0 ? Math.round((100 * canaryRaw) / total) : 0;
  const planned = planFor(target, canaryWeight);
  const observed: ObservedSplit = {
    canaryWeight,
    asPlanned: planned.ok && routesAsPlanned(obj, target, planned.plan),
    owned: ownershipOf(obj, target.rollout),
  };
  const lastWritten = parseLastWritten(obj.metadata?.annotations?.[CANARY_WEIGHT_ANNOTATION]);
  if (lastWritten !== undefined) observed.lastWritten = lastWritten;
  return observed;
}

const invalid = (message: string): { ok: false; error: ApiError } => ({
  ok: false,
  error: { kind: 'invalid', code: 0, reason: 'InvalidTarget', message },
});

interface Plan {
  module: SmiVersionModule;
  service: string;
  backends: { service: string; weight: number }[];
}

/** The target's SPEC §3 shape for a weight, or why it cannot have one (validation should have caught it). */
function planFor(
  target: SplitTarget,
  canaryWeight: number,
): { ok: true; plan: Plan } | { ok: false; error: ApiError } {
  if (!Number.isInteger(canaryWeight) || canaryWeight < 0 || canaryWeight > 100) {
    return invalid(`canary weight ${canaryWeight} is not a whole percentage 0..100`);
  }
  const service = serviceFqdn(target.namespace, target.rootService);
  if (!service) {
    return invalid(`root service ${target.rootService} is not a Service of namespace ${target.namespace}`);
  }
  const stable = serviceName(target.namespace, target.stableService);
  const canary = serviceName(target.namespace, target.canaryService);
  if (!stable || !canary) {
    return invalid(`stable ${target.stableService} and canary ${target.canaryService} must be Service names`);
  }
  if (stable === canary) return invalid(`stable and canary are the same Service ${stable}`);
  const backends = desiredBackends({ stableService: stable, canaryService: canary }, canaryWeight);
  return { ok: true, plan: { module: moduleFor(target.apiVersion), service, backends } };
}

/** Whether the object already routes exactly as planned (same root, same backends and weights). */
function routesAsPlanned(obj: KubernetesObject, target: SplitTarget, plan: Plan): boolean {
  const spec = (obj as SplitShape).spec;
  if (spec?.service !== plan.service) return false;
  const current = backendsOf(obj as SplitShape, readerFor(obj, target));
  return (
    current.length === plan.backends.length &&
    plan.backends.every((want) => current.some((b) => b.service === want.service && b.weight === want.weight))
  );
}

export interface TrafficRouterOptions {
  /** The field manager named in managedFields; default perch-controller. */
  fieldManager?: string;
}

export class TrafficRouter implements Router<SplitTarget> {
  private readonly api: CustomObjectsApi;
  private readonly fieldManager: string;

  constructor(kc: KubeConfig, opts: TrafficRouterOptions = {}) {
    this.api = kc.makeApiClient(CustomObjectsApi);
    this.fieldManager = opts.fieldManager ?? 'perch-controller';
  }

  /**
   * Routes canaryWeight% to the canary and the rest to stable. `current` is the TrafficSplit as cached
   * (undefined: it does not exist, so it is created). One merge patch, and none when nothing would change.
   */
  async setWeights(
    target: SplitTarget,
    canaryWeight: number,
    current?: KubernetesObject,
  ): Promise<SetWeightsResult> {
    const foreign = current && notOwned(target, current);
    if (foreign) return foreign;
    const planned = planFor(target, canaryWeight);
    if (!planned.ok) return planned;
    const { plan } = planned;
    if (!current) return this.create(target, canaryWeight, plan);
    if (routesAsPlanned(current, target, plan)) return { ok: true, outcome: 'unchanged' };
    return this.patch(target, canaryWeight, plan, current);
  }

  /**
   * Deletion: drops the Rollout's ownerReference and annotates perch.dev/released-from, so the garbage
   * collector leaves the TrafficSplit and the mesh keeps routing by it.
   */
  async release(target: SplitTarget, current: KubernetesObject): Promise<SetWeightsResult> {
    const foreign = notOwned(target, current);
    if (foreign) return foreign;
    const ops = releaseOps(target, current);
    if (!ops) return { ok: true, outcome: 'unchanged' };
    return sendJsonPatch(this.api, this.resource(target), target, ops, this.fieldManager);
  }

  read(obj: KubernetesObject, target: SplitTarget): ObservedRoute {
    return readSplit(obj, target);
  }

  problem(target: SplitTarget): string | undefined {
    const planned = planFor(target, 0);
    return planned.ok ? undefined : planned.error.message;
  }

  private wire(plan: Plan): Record<string, unknown> {
    const backends = plan.backends.map((b) => ({
      service: b.service,
      weight: plan.module.formatWeight(b.weight),
    }));
    return plan.module.spec(plan.service, backends);
  }

  private async create(target: SplitTarget, canaryWeight: number, plan: Plan): Promise<SetWeightsResult> {
    const owner = ownerReferenceTo(target.rollout);
    const body = {
      apiVersion: target.apiVersion,
      kind: 'TrafficSplit',
      metadata: {
        name: target.name,
        namespace: target.namespace,
        annotations: {
          [ANNOTATIONS.managedBy]: target.rollout.name,
          [CANARY_WEIGHT_ANNOTATION]: String(canaryWeight),
        },
        ownerReferences: [owner],
      },
      spec: this.wire(plan),
    };
    try {
      const created = (await this.api.createNamespacedCustomObject({
        ...this.custom(target),
        namespace: target.namespace,
        body,
        fieldManager: this.fieldManager,
      })) as KubernetesObject;
      // 409 AlreadyExists lands below as a conflict: the cache was behind, retry with the object.
      return { ok: true, outcome: 'created', created };
    } catch (err) {
      return { ok: false, error: apiError(err) };
    }
  }

  private async patch(
    target: SplitTarget,
    canaryWeight: number,
    plan: Plan,
    current: KubernetesObject,
  ): Promise<SetWeightsResult> {
    // Backends are an array, so the merge patch replaces them whole; the annotation rides along, so
    // weights and the record of who wrote them change in one write. The resourceVersion read from the
    // cache is the precondition: a change Perch has not seen answers 409, never gets overwritten.
    const body = {
      metadata: {
        resourceVersion: current.metadata?.resourceVersion,
        annotations: { [CANARY_WEIGHT_ANNOTATION]: String(canaryWeight) },
      },
      spec: this.wire(plan),
    };
    try {
      await this.api.patchNamespacedCustomObject(
        {
          ...this.custom(target),
          namespace: target.namespace,
          name: target.name,
          body,
          fieldManager: this.fieldManager,
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      return { ok: true, outcome: 'patched' };
    } catch (err) {
      return { ok: false, error: apiError(err) };
    }
  }

  resource(target: SplitTarget): RouteResource {
    return { apiVersion: target.apiVersion, kind: 'TrafficSplit', plural: TRAFFICSPLIT_PLURAL };
  }

  private custom(target: SplitTarget) {
    return { group: SMI_GROUP, version: target.apiVersion.split('/')[1]!, plural: TRAFFICSPLIT_PLURAL };
  }
}
