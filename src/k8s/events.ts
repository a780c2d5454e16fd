// Kubernetes Events on Rollouts (core/v1), so `kubectl describe rollout` tells the run's story.
// Identical repeats within a window bump `count` on the Event already written, as client-go's recorder does.
import {
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type CoreV1Event,
  type KubeConfig,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { hostname } from 'node:os';
import { API_VERSION } from '../api/v1alpha1.js';
import { apiError, type ApiError } from './api-error.js';

export const EVENT_SOURCE_COMPONENT = 'perch-controller';
export const REPORTING_CONTROLLER = 'perch.dev/controller';

export type EventType = 'Normal' | 'Warning';

/** The Rollout an Event is about; the uid lets `kubectl describe` tell it from an older namesake. */
export interface RolloutRef {
  namespace: string;
  name: string;
  uid: string;
}

/** The RolloutRef of a Rollout as cached. */
export function rolloutRef(rollout: KubernetesObject): RolloutRef {
  const { namespace = '', name = '', uid = '' } = rollout.metadata ?? {};
  return { namespace, name, uid };
}

export interface EventRecorderOptions {
  /** Told about each Event that could not be written; recording itself never fails. */
  onError?: (error: ApiError, event: { reason: string; message: string }) => void;
  /** Repeats closer together than this bump `count`; default 10 minutes (client-go's aggregation window). */
  windowMs?: number;
  /** Distinct Events remembered for counting (oldest forgotten first); default 1024. */
  maxRemembered?: number;
  /** reportingInstance and source.host; default the host name. */
  instance?: string;
  /** The clock, for tests; default Date.now. */
  now?: () => number;
}

interface Remembered {
  /** The Event object's name, for the count patch. */
  name: string;
  count: number;
  lastSeen: number;
}

export class EventRecorder {
  private readonly api: CoreV1Api;
  private readonly windowMs: number;
  private readonly maxRemembered: number;
  private readonly instance: string;
  private readonly now: () => number;
  /** Insertion-ordered, so the first key is the least recently recorded one. */
  private readonly remembered = new Map<string, Remembered>();
  /** Per key, the last write in flight: repeats wait for it, or both would create an Event. */
  private readonly inFlight = new Map<string, Promise<void>>();
  private sequence = 0;

  constructor(
    kc: KubeConfig,
    private readonly opts: EventRecorderOptions = {},
  ) {
    this.api = kc.makeApiClient(CoreV1Api);
    this.windowMs = opts.windowMs ?? 10 * 60_000;
    this.maxRemembered = opts.maxRemembered ?? 1024;
    this.instance = opts.instance ?? hostname();
    this.now = opts.now ?? Date.now;
  }

  /** Records an Event on the Rollout. Resolves when written or given up on; never rejects. */
  record(rollout: RolloutRef, type: EventType, reason: string, message: string): Promise<void> {
    const key = JSON.stringify([rollout.namespace, rollout.name, rollout.uid, type, reason, message]);
    const previous = this.inFlight.get(key) ?? Promise.resolve();
    const next = previous.then(() => this.write(key, rollout, type, reason, message));
    this.inFlight.set(key, next);
    void next.finally(() => {
      if (this.inFlight.get(key) === next) this.inFlight.delete(key);
    });
    return next;
  }

  private async write(key: string, rollout: RolloutRef, type: EventType, reason: string, message: string) {
    const now = this.now();
    try {
      const seen = this.remembered.get(key);
      if (seen && now - seen.lastSeen < this.windowMs) {
        if (await this.bump(rollout.namespace, seen, now)) {
          this.remember(key, seen);
          return;
        }
      }
      const name = await this.create(rollout, type, reason, message, now);
      this.remember(key, { name, count: 1, lastSeen: now });
    } catch (err) {
      this.remembered.delete(key);
      try {
        this.opts.onError?.(apiError(err), { reason, message });
      } catch {
        // A failing logger must not turn a lost Event into a failed reconcile either.
      }
    }
  }

  /** Counts one more on the existing Event; false when it is gone (Events expire, an hour by default). */
  private async bump(namespace: string, seen: Remembered, now: number): Promise<boolean> {
    try {
      await this.api.patchNamespacedEvent(
        {
          namespace,
          name: seen.name,
          body: { count: seen.count + 1, lastTimestamp: new Date(now).toISOString() },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    } catch (err) {
      if (apiError(err).kind === 'notFound') return false;
      throw err;
    }
    seen.count++;
    seen.lastSeen = now;
    return true;
  }

  private async create(rollout: RolloutRef, type: EventType, reason: string, message: string, now: number) {
    // client-go's naming: the object's name and a unique hex suffix (nanoseconds there, ms plus a sequence here).
    const suffix = (BigInt(Math.floor(now)) * 1_000_000n + BigInt(this.sequence++ % 1_000_000)).toString(16);
    const at = new Date(now);
    const event: CoreV1Event = {
      metadata: { name: `${rollout.name}.${suffix}`, namespace: rollout.namespace },
      involvedObject: {
        apiVersion: API_VERSION,
        kind: 'Rollout',
        namespace: rollout.namespace,
        name: rollout.name,
        uid: rollout.uid,
      },
      type,
      reason,
      message,
      count: 1,
      firstTimestamp: at,
      lastTimestamp: at,
      source: { component: EVENT_SOURCE_COMPONENT, host: this.instance },
      reportingComponent: REPORTING_CONTROLLER,
      reportingInstance: this.instance,
    };
    const created = await this.api.createNamespacedEvent({ namespace: rollout.namespace, body: event });
    return created.metadata?.name ?? event.metadata.name!;
  }

  private remember(key: string, entry: Remembered): void {
    this.remembered.delete(key);
    this.remembered.set(key, entry);
    while (this.remembered.size > this.maxRemembered) {
      const oldest = this.remembered.keys().next().value;
      if (oldest === undefined) break;
      this.remembered.delete(oldest);
    }
  }
}
