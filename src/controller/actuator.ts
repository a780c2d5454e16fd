// The reconciler's writes over the k8s writers, one Actuator per reconcile: each write's failure is a
// WriteError with its kind, and every version a successful write moves past goes to the expectations.
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import type { Rollout } from '../api/v1alpha1.js';
import type { ApiErrorKind } from '../k8s/api-error.js';
import { EventRecorder, rolloutRef } from '../k8s/events.js';
import { RolloutWriter, type WriteResult } from '../k8s/rollout-writer.js';
import type { RouterError, SetWeightsResult } from '../k8s/router.js';
import type { Routers } from '../k8s/routers.js';
import type { Expectations } from './expectations.js';
import type { Actuator } from './reconciler.js';

/** A write that failed. `object` and `basedOn` say which object and version it was written against. */
export class WriteError extends Error {
  readonly kind: ApiErrorKind | 'notOwned';
  constructor(
    readonly object: 'rollout' | 'route',
    doing: string,
    readonly error: RouterError,
    readonly basedOn: string | undefined,
    /** The canary weight a refused routing write asked for. */
    readonly canaryWeight?: number,
  ) {
    super(`${doing}: ${error.code ? `${error.code} ${error.reason}: ` : ''}${error.message}`);
    this.kind = error.kind;
  }
}

export class KubeActuator {
  private readonly writer: RolloutWriter;
  private readonly recorder: EventRecorder;

  constructor(
    kc: KubeConfig,
    private readonly routers: Routers,
    private readonly expectations: Expectations,
    onEventError: (err: { message: string }, reason: string) => void,
  ) {
    this.writer = new RolloutWriter(kc);
    this.recorder = new EventRecorder(kc, { onError: (err, ev) => onEventError(err, ev.reason) });
  }

  event(rollout: Rollout, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    return this.recorder.record(rolloutRef(rollout), type, reason, message);
  }

  /**
   * The writes of one reconcile of `rollout` as cached. Status and annotation writes carry the version
   * they were decided on, followed through the reconcile as each write returns the next one.
   */
  for(key: string, rollout: Rollout): Actuator {
    const ns = rollout.metadata!.namespace!;
    const name = rollout.metadata!.name!;
    let version = rollout.metadata?.resourceVersion;
    const ex = this.expectations;
    /** A Rollout write's value, or its failure as a WriteError against the version it was based on. */
    const written = <T>(doing: string, r: WriteResult<T>): T => {
      if (!r.ok) throw new WriteError('rollout', doing, r.error, version);
      return r.value;
    };
    /** A write that sent something moved the Rollout past `version`: the next write is based on `next`. */
    const moved = (next: string | undefined) => {
      if (next === undefined) return next;
      ex.rolloutPast(key, version);
      version = next;
      return next;
    };
    const routeWrite = async (
      doing: string,
      current: KubernetesObject | undefined,
      write: () => Promise<SetWeightsResult>,
      canaryWeight?: number,
    ) => {
      const r = await write();
      if (!r.ok)
        throw new WriteError('route', doing, r.error, current?.metadata?.resourceVersion, canaryWeight);
      if (r.outcome !== 'unchanged') ex.routePast(key, current);
      return r;
    };
    return {
      patchStatus: async (_r, before, after) =>
        moved(
          written(
            'status patch',
            await this.writer.patchStatus(ns, name, before, after, { resourceVersion: version }),
          ),
        ),
      setWeights: async (target, canaryWeight, current) => {
        const r = await routeWrite(
          `${target.kind} ${target.namespace}/${target.name}`,
          current,
          () => this.routers.for(target).setWeights(target, canaryWeight, current),
          canaryWeight,
        );
        return (r.ok && r.created) || current;
      },
      releaseTraffic: (target, current) =>
        routeWrite(`releasing ${target.kind} ${target.namespace}/${target.name}`, current, () =>
          this.routers.for(target).release(target, current),
        ),
      event: (r, type, reason, message) => this.event(r, type, reason, message),
      clearAnnotations: async (_r, keys) =>
        moved(written('annotation removal', await this.writer.clearAnnotations(ns, name, keys))),
      addFinalizer: async (r) => {
        if (written('adding the finalizer', await this.writer.addFinalizer(r))) ex.rolloutPast(key, version);
      },
      removeFinalizer: async (r) => {
        written('removing the finalizer', await this.writer.removeFinalizer(r));
      },
    };
  }
}
