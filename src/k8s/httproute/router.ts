// The Gateway API HTTPRoute router (v1 and v1beta1, one shape): creates the route, moves the stable and
// canary weights of its chosen rules with one pinned JSON Patch, and releases it. Decisions live in plan.ts.
import { CustomObjectsApi, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { apiError } from '../api-error.js';
import {
  CANARY_WEIGHT_ANNOTATION,
  notOwned,
  parseLastWritten,
  releaseOps,
  sendJsonPatch,
  type HttpRouteTarget,
  type ObservedRoute,
  type RouteResource,
  type Router,
  type SetWeightsResult,
} from '../router.js';
import { createdRoute, routeProblem, weightPatch } from './plan.js';
import { readRoute, routesAt } from './read.js';
import { HTTPROUTE_PLURAL } from './rules.js';

export interface HttpRouteRouterOptions {
  /** The field manager named in managedFields; default perch-controller. */
  fieldManager?: string;
}

const invalid = (message: string): SetWeightsResult => ({
  ok: false,
  error: { kind: 'invalid', code: 0, reason: 'InvalidTarget', message },
});

export class HttpRouteRouter implements Router<HttpRouteTarget> {
  private readonly api: CustomObjectsApi;
  private readonly fieldManager: string;

  constructor(kc: KubeConfig, opts: HttpRouteRouterOptions = {}) {
    this.api = kc.makeApiClient(CustomObjectsApi);
    this.fieldManager = opts.fieldManager ?? 'perch-controller';
  }

  resource(target: HttpRouteTarget): RouteResource {
    return { apiVersion: target.apiVersion, kind: 'HTTPRoute', plural: HTTPROUTE_PLURAL };
  }

  read(obj: KubernetesObject, target: HttpRouteTarget): ObservedRoute {
    return readRoute(obj, target);
  }

  problem(target: HttpRouteTarget, current: KubernetesObject | undefined): string | undefined {
    return routeProblem(target, current);
  }

  /**
   * Routes canaryWeight% to the canary and the rest to stable in the chosen rules. `current` is the route
   * as cached (undefined: it does not exist, so it is created). Nothing is sent when it already routes so.
   */
  async setWeights(
    target: HttpRouteTarget,
    canaryWeight: number,
    current?: KubernetesObject,
  ): Promise<SetWeightsResult> {
    const foreign = current && notOwned(target, current);
    if (foreign) return foreign;
    if (!Number.isInteger(canaryWeight) || canaryWeight < 0 || canaryWeight > 100) {
      return invalid(`canary weight ${canaryWeight} is not a whole percentage 0..100`);
    }
    const problem = routeProblem(target, current);
    if (problem) return invalid(problem);
    if (!current) return this.create(target, canaryWeight);
    const lastWritten = parseLastWritten(current.metadata?.annotations?.[CANARY_WEIGHT_ANNOTATION]);
    if (lastWritten === canaryWeight && routesAt(current, target, canaryWeight)) {
      return { ok: true, outcome: 'unchanged' };
    }
    const ops = weightPatch(target, canaryWeight, current);
    return sendJsonPatch(this.api, this.resource(target), target, ops, this.fieldManager);
  }

  /**
   * Deletion: drops the Rollout's ownerReference and annotates perch.dev/released-from, so the garbage
   * collector leaves the route and the mesh keeps routing by it.
   */
  async release(target: HttpRouteTarget, current: KubernetesObject): Promise<SetWeightsResult> {
    const foreign = notOwned(target, current);
    if (foreign) return foreign;
    const ops = releaseOps(target, current);
    if (!ops) return { ok: true, outcome: 'unchanged' };
    return sendJsonPatch(this.api, this.resource(target), target, ops, this.fieldManager);
  }

  private async create(target: HttpRouteTarget, canaryWeight: number): Promise<SetWeightsResult> {
    const [group, version] = target.apiVersion.split('/') as [string, string];
    try {
      const created = (await this.api.createNamespacedCustomObject({
        group,
        version,
        plural: HTTPROUTE_PLURAL,
        namespace: target.namespace,
        body: createdRoute(target, canaryWeight),
        fieldManager: this.fieldManager,
      })) as KubernetesObject;
      return { ok: true, outcome: 'created', created };
    } catch (err) {
      // 409 AlreadyExists is a conflict: the cache was behind, decide again with the object.
      return { ok: false, error: apiError(err) };
    }
  }
}
