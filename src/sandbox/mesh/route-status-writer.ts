// Writes the mesh's entries in an HTTPRoute's status.parents, one route at a time, only when they change.
// A merge patch of /status pinned to the resourceVersion it was computed from; on 409 it rereads and recomputes.
import {
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { apiError } from '../../k8s/api-error.js';
import { GATEWAY_GROUP, HTTPROUTE_PLURAL } from './http-route-rules.js';
import { MESH_CONTROLLER_NAME, routeParentStatuses } from './http-route-status.js';

/** Conflicts in a row before a write is given up (the next watch event of the route tries again). */
const MAX_ATTEMPTS = 5;

export interface RouteStatusWriterOptions {
  /** The route as the watch cache holds it now; undefined once it is gone. */
  cached: (namespace: string, name: string) => KubernetesObject | undefined;
  serviceExists: (namespace: string, name: string) => boolean;
  /** Failed writes; the writer carries on. */
  onError: (err: Error) => void;
  controllerName?: string;
  /** ms since the epoch, for lastTransitionTime. */
  clock?: () => number;
  fieldManager?: string;
}

export interface RouteStatusWriterStats {
  /** Status patches the API server accepted. */
  writes: number;
  /** Patches refused with 409 because the route had moved on; each was recomputed from a fresh read. */
  conflicts: number;
}

const ROUTES = { group: GATEWAY_GROUP, version: 'v1', plural: HTTPROUTE_PLURAL } as const;
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export class RouteStatusWriter {
  private readonly api: CustomObjectsApi;
  private readonly controllerName: string;
  private readonly clock: () => number;
  /** ns/name → the sync under way; a route is never written by two syncs at once. */
  private readonly running = new Map<string, Promise<void>>();
  /** Routes asked for again while their sync was under way: one more sync follows it. */
  private readonly again = new Set<string>();
  private stopped = false;
  readonly stats: RouteStatusWriterStats = { writes: 0, conflicts: 0 };

  constructor(
    kc: KubeConfig,
    private readonly opts: RouteStatusWriterOptions,
  ) {
    this.api = kc.makeApiClient(CustomObjectsApi);
    this.controllerName = opts.controllerName ?? MESH_CONTROLLER_NAME;
    this.clock = opts.clock ?? Date.now;
  }

  /** Brings the route's status up to date from the cache, after the sync of it under way, if any. */
  schedule(namespace: string, name: string): void {
    if (this.stopped) return;
    const k = `${namespace}/${name}`;
    if (this.running.has(k)) {
      this.again.add(k);
      return;
    }
    const run = this.sync(namespace, name)
      .catch((err: unknown) => this.opts.onError(err instanceof Error ? err : new Error(String(err))))
      .finally(() => {
        this.running.delete(k);
        if (this.again.delete(k)) this.schedule(namespace, name);
      });
    this.running.set(k, run);
  }

  /** Resolves once no sync is under way or asked for. */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running.values()]);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.again.clear();
    await this.idle();
  }

  private async sync(namespace: string, name: string): Promise<void> {
    let route = this.opts.cached(namespace, name);
    for (let attempt = 1; route && !this.stopped; attempt++) {
      const update = routeParentStatuses(route, {
        serviceExists: this.opts.serviceExists,
        now: this.clock(),
        controllerName: this.controllerName,
      });
      if (!update.changed) return;
      const body = {
        metadata: { resourceVersion: route.metadata?.resourceVersion },
        status: { parents: update.parents },
      };
      try {
        await this.api.patchNamespacedCustomObjectStatus(
          { ...ROUTES, namespace, name, body, fieldManager: this.opts.fieldManager ?? 'perch-sandbox-mesh' },
          mergePatch,
        );
        this.stats.writes++;
        return;
      } catch (err) {
        const e = apiError(err);
        if (e.kind === 'notFound') return;
        if (e.kind !== 'conflict' || attempt >= MAX_ATTEMPTS) {
          throw new Error(
            `HTTPRoute ${namespace}/${name}: status write failed (${e.code} ${e.reason}): ${e.message}`,
            { cause: err },
          );
        }
        this.stats.conflicts++;
      }
      // The cache may not have the version that beat us yet: read the route itself.
      try {
        route = (await this.api.getNamespacedCustomObject({
          ...ROUTES,
          namespace,
          name,
        })) as KubernetesObject;
      } catch (err) {
        const e = apiError(err);
        if (e.kind === 'notFound') return;
        throw new Error(
          `HTTPRoute ${namespace}/${name}: reread after a conflict failed (${e.code}): ${e.message}`,
          { cause: err },
        );
      }
    }
  }
}
