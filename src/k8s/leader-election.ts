// Leader election through a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it:
// acquire when free or expired, renew every retry period, stop leading when renewal fails too long.
import { CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { apiError } from './api-error.js';

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  /** Who we are: the holderIdentity written to the Lease. */
  identity?: string;
  /** How long a Lease holds after its last renewal (client-go default 15 s). */
  leaseDurationMs?: number;
  /** A leader that could not renew for this long steps down (default 10 s). */
  renewDeadlineMs?: number;
  /** How often to try to acquire or renew (default 2 s). */
  retryPeriodMs?: number;
  onError?: (message: string) => void;
}

export class LeaderElector {
  readonly identity: string;
  private readonly api: CoordinationV1Api;
  private readonly leaseMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryMs: number;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private leading = false;
  private lastRenewal = 0;
  private lostHandler: (() => void) | undefined;

  constructor(
    kc: KubeConfig,
    private readonly opts: LeaderElectionOptions,
  ) {
    this.api = kc.makeApiClient(CoordinationV1Api);
    this.identity = opts.identity ?? `${hostname()}_${randomBytes(4).toString('hex')}`;
    this.leaseMs = opts.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
    this.retryMs = opts.retryPeriodMs ?? 2_000;
  }

  /** Resolves once this process holds the Lease; `onLost` runs if it later cannot keep it. */
  acquire(onLost: () => void): Promise<void> {
    this.lostHandler = onLost;
    return new Promise((resolve) => {
      const attempt = async () => {
        if (this.stopped) return;
        const ok = await this.tryAcquireOrRenew();
        if (ok) this.lastRenewal = Date.now();
        if (ok && !this.leading) {
          this.leading = true;
          resolve();
        } else if (!ok && this.leading && Date.now() - this.lastRenewal > this.renewDeadlineMs) {
          // Another leader may act once our Lease expires: stop before that can overlap with us.
          this.leading = false;
          this.stopped = true;
          this.lostHandler?.();
          return;
        }
        this.timer = setTimeout(() => void attempt(), this.retryMs);
      };
      void attempt();
    });
  }

  /** Stops renewing and, when leading, releases the Lease so another replica takes over at once. */
  async release(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (!this.leading) return;
    this.leading = false;
    try {
      const lease = await this.api.readNamespacedLease({
        name: this.opts.name,
        namespace: this.opts.namespace,
      });
      if (lease.spec?.holderIdentity !== this.identity) return;
      lease.spec = {
        ...lease.spec,
        holderIdentity: undefined,
        leaseDurationSeconds: 1,
        renewTime: new V1MicroTime(Date.now()),
      };
      await this.api.replaceNamespacedLease({
        name: this.opts.name,
        namespace: this.opts.namespace,
        body: lease,
      });
    } catch (err) {
      this.opts.onError?.(`releasing the Lease: ${apiError(err).message}`);
    }
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { name, namespace } = this.opts;
    const now = new V1MicroTime(Date.now());
    const seconds = Math.max(1, Math.ceil(this.leaseMs / 1000));
    let lease: V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (apiError(err).kind !== 'notFound') {
        this.opts.onError?.(`reading the Lease: ${apiError(err).message}`);
        return false;
      }
      try {
        await this.api.createNamespacedLease({
          namespace,
          body: {
            metadata: { name, namespace },
            spec: {
              holderIdentity: this.identity,
              leaseDurationSeconds: seconds,
              acquireTime: now,
              renewTime: now,
              leaseTransitions: 0,
            },
          },
        });
        return true;
      } catch (e) {
        if (apiError(e).kind !== 'conflict')
          this.opts.onError?.(`creating the Lease: ${apiError(e).message}`);
        return false;
      }
    }
    const spec = lease.spec ?? {};
    const mine = spec.holderIdentity === this.identity;
    const renewed = spec.renewTime ? new Date(spec.renewTime).getTime() : 0;
    const expired =
      !spec.holderIdentity || renewed + (spec.leaseDurationSeconds ?? seconds) * 1000 < Date.now();
    if (!mine && !expired) return false;
    lease.spec = {
      ...spec,
      holderIdentity: this.identity,
      leaseDurationSeconds: seconds,
      renewTime: now,
      acquireTime: mine ? spec.acquireTime : now,
      leaseTransitions: (spec.leaseTransitions ?? 0) + (mine ? 0 : 1),
    };
    try {
      // The resourceVersion read above makes this a compare-and-swap: two candidates cannot both win.
      await this.api.replaceNamespacedLease({ name, namespace, body: lease });
      return true;
    } catch (err) {
      if (apiError(err).kind !== 'conflict')
        this.opts.onError?.(`updating the Lease: ${apiError(err).message}`);
      return false;
    }
  }
}
