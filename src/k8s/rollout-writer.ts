// Writes to a Rollout: status (minimal merge patches to /status), one-shot annotations, the traffic finalizer.
// Every write is a patch of what changed; nothing here decides what to write, only how to send it.
import {
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { GROUP, TRAFFIC_FINALIZER, VERSION, type RolloutStatus } from '../api/v1alpha1.js';
import { deepEqual, isPlainObject, type JsonObject } from '../api/json.js';
import { apiError, type ApiError } from './api-error.js';

export type { JsonObject };
export type WriteResult<T> = { ok: true; value: T } | { ok: false; error: ApiError };

const ROLLOUTS = { group: GROUP, version: VERSION, plural: 'rollouts' } as const;

/**
 * The RFC 7386 JSON merge patch that turns `before` into `after`: changed and new fields, null for
 * removed ones (undefined and null in `after` both mean absent), arrays whole. `{}` when nothing changed.
 */
export function mergePatchDiff(before: JsonObject | undefined, after: JsonObject | undefined): JsonObject {
  const from = before ?? {};
  const to = after ?? {};
  const patch: JsonObject = {};
  for (const key of Object.keys(from)) {
    if (from[key] !== undefined && from[key] !== null && (to[key] === undefined || to[key] === null)) {
      patch[key] = null;
    }
  }
  for (const key of Object.keys(to)) {
    const next = to[key];
    const prev = from[key];
    if (next === undefined || next === null || deepEqual(prev, next)) continue;
    if (isPlainObject(prev) && isPlainObject(next)) {
      const nested = mergePatchDiff(prev, next);
      if (Object.keys(nested).length > 0) patch[key] = nested;
    } else {
      // A merge patch cannot express an array edit, and a new object is sent as it is, minus its absent keys.
      patch[key] = isPlainObject(next) ? withoutAbsent(next) : next;
    }
  }
  return patch;
}

/** An object as a merge patch value: nulls inside would delete, undefineds would not serialize. */
function withoutAbsent(obj: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(obj)) {
    if (v === undefined || v === null) continue;
    out[k] = isPlainObject(v) ? withoutAbsent(v) : v;
  }
  return out;
}

export interface PatchStatusOptions {
  /**
   * The resourceVersion `before` was read at: the write then fails with a conflict if the Rollout changed
   * since, instead of diffing against a status that is no longer there.
   */
  resourceVersion?: string;
}

export class RolloutWriter {
  private readonly api: CustomObjectsApi;
  private readonly fieldManager: string;

  constructor(kc: KubeConfig, opts: { fieldManager?: string } = {}) {
    this.api = kc.makeApiClient(CustomObjectsApi);
    this.fieldManager = opts.fieldManager ?? 'perch-controller';
  }

  /**
   * Sends what changed from `before` to `after` to /status. value: the Rollout's resourceVersion after
   * the write, or undefined when nothing changed and nothing was sent.
   */
  async patchStatus(
    namespace: string,
    name: string,
    before: RolloutStatus | undefined,
    after: RolloutStatus | undefined,
    opts: PatchStatusOptions = {},
  ): Promise<WriteResult<string | undefined>> {
    const diff = mergePatchDiff(before as JsonObject | undefined, after as JsonObject | undefined);
    if (Object.keys(diff).length === 0) return { ok: true, value: undefined };
    const body: JsonObject = { status: diff };
    if (opts.resourceVersion) body.metadata = { resourceVersion: opts.resourceVersion };
    try {
      const written = (await this.api.patchNamespacedCustomObjectStatus(
        { ...ROLLOUTS, namespace, name, body, fieldManager: this.fieldManager },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      )) as KubernetesObject;
      return { ok: true, value: written.metadata?.resourceVersion ?? '' };
    } catch (err) {
      return { ok: false, error: apiError(err) };
    }
  }

  /**
   * Removes one-shot annotations once acted on. Each removal `test`s that the annotation still reads
   * "true", so a value someone set since is never removed unseen. value: the resourceVersion after the
   * write, or undefined when nothing was sent.
   */
  async clearAnnotations(
    namespace: string,
    name: string,
    keys: readonly string[],
  ): Promise<WriteResult<string | undefined>> {
    if (keys.length === 0) return { ok: true, value: undefined };
    const ops = keys.flatMap((k) => {
      const path = `/metadata/annotations/${k.replaceAll('~', '~0').replaceAll('/', '~1')}`;
      return [
        { op: 'test', path, value: 'true' },
        { op: 'remove', path },
      ];
    });
    return this.jsonPatch(namespace, name, ops, `annotations ${keys.join(', ')} still "true"`);
  }

  /**
   * Adds perch.dev/traffic to the Rollout as cached. value: whether it was sent (false: already there).
   * The patch holds only if the Rollout is still at the cached resourceVersion, see `guarded`.
   */
  async addFinalizer(rollout: KubernetesObject): Promise<WriteResult<boolean>> {
    const finalizers = rollout.metadata?.finalizers;
    if (finalizers?.includes(TRAFFIC_FINALIZER)) return { ok: true, value: false };
    const op = finalizers
      ? { op: 'add', path: '/metadata/finalizers/-', value: TRAFFIC_FINALIZER }
      : { op: 'add', path: '/metadata/finalizers', value: [TRAFFIC_FINALIZER] };
    return this.guarded(rollout, [op]);
  }

  /** Removes perch.dev/traffic from the Rollout as cached. value: whether it was sent (false: not there). */
  async removeFinalizer(rollout: KubernetesObject): Promise<WriteResult<boolean>> {
    const index = rollout.metadata?.finalizers?.indexOf(TRAFFIC_FINALIZER) ?? -1;
    if (index < 0) return { ok: true, value: false };
    const path = `/metadata/finalizers/${index}`;
    return this.guarded(rollout, [
      { op: 'test', path, value: TRAFFIC_FINALIZER },
      { op: 'remove', path },
    ]);
  }

  /**
   * A JSON patch of finalizers by index is only right for the list it was computed from, so it opens with
   * a `test` of the cached resourceVersion: another writer's finalizer is never added over or removed.
   */
  private async guarded(rollout: KubernetesObject, ops: object[]): Promise<WriteResult<boolean>> {
    const namespace = rollout.metadata?.namespace ?? '';
    const name = rollout.metadata?.name ?? '';
    const resourceVersion = rollout.metadata?.resourceVersion;
    if (!resourceVersion) {
      return {
        ok: false,
        error: {
          kind: 'bug',
          code: 0,
          reason: 'NoResourceVersion',
          message: `Rollout ${namespace}/${name} has no resourceVersion`,
        },
      };
    }
    const body = [{ op: 'test', path: '/metadata/resourceVersion', value: resourceVersion }, ...ops];
    const r = await this.jsonPatch(namespace, name, body, `resourceVersion ${resourceVersion}`);
    return r.ok ? { ok: true, value: true } : r;
  }

  /**
   * A JSON patch whose `test` operations pin what it was computed from. kube-apiserver answers a failed
   * `test` with 422 Invalid, not 409; here it can only mean the Rollout moved on, which is a conflict.
   */
  private async jsonPatch(
    namespace: string,
    name: string,
    ops: object[],
    pinned: string,
  ): Promise<WriteResult<string>> {
    try {
      const written = (await this.api.patchNamespacedCustomObject(
        { ...ROLLOUTS, namespace, name, body: ops, fieldManager: this.fieldManager },
        setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
      )) as KubernetesObject;
      return { ok: true, value: written.metadata?.resourceVersion ?? '' };
    } catch (err) {
      const e = apiError(err);
      if (e.code === 422) {
        return {
          ok: false,
          error: {
            kind: 'conflict',
            code: e.code,
            reason: 'Conflict',
            message: `Rollout ${namespace}/${name} changed (expected ${pinned}): ${e.message}`,
          },
        };
      }
      return { ok: false, error: e };
    }
  }
}
