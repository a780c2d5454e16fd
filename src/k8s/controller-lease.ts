// Whether a controller is live, told as a standby tells it (its leader Lease renewed while watched), and
// holding that Lease while `perch uninstall` works, so that no controller starts leading meanwhile.
import { CoordinationV1Api, KubeConfig, type V1Lease } from '@kubernetes/client-node';
import { apiError } from './api-error.js';
import { configureClient } from './client-config.js';
import { DEFAULT_TIMINGS, LeaderElector } from './leader-election.js';

/** The Lease `perch controller --leader-elect` holds (in --leader-elect-namespace). */
export const CONTROLLER_LEASE = 'perch-controller';

export interface LeaseRef {
  namespace: string;
  name: string;
}

/** A Lease as read: who holds it ('' for no one), when it says it was renewed, for how long. */
export interface LeaseSeen extends LeaseRef {
  holder: string;
  renewTime?: Date;
  leaseDurationSeconds?: number;
}

function seen(lease: V1Lease): LeaseSeen {
  return {
    namespace: lease.metadata?.namespace ?? '',
    name: lease.metadata?.name ?? '',
    holder: lease.spec?.holderIdentity ?? '',
    ...(lease.spec?.renewTime ? { renewTime: new Date(lease.spec.renewTime) } : {}),
    ...(lease.spec?.leaseDurationSeconds !== undefined
      ? { leaseDurationSeconds: lease.spec.leaseDurationSeconds }
      : {}),
  };
}

/** The Leases named `name`: the one in `namespace`, or those of every namespace when it is undefined. */
export async function findLeases(kc: KubeConfig, name: string, namespace?: string): Promise<LeaseSeen[]> {
  const api = kc.makeApiClient(CoordinationV1Api);
  if (namespace !== undefined) {
    try {
      return [seen(await api.readNamespacedLease({ namespace, name }))];
    } catch (err) {
      if (apiError(err).kind === 'notFound') return [];
      throw err;
    }
  }
  const list = await api.listLeaseForAllNamespaces({ fieldSelector: `metadata.name=${name}` });
  return list.items.map(seen);
}

/** Held by this process until release(); refusal() says why writes must stop (the Lease was lost). */
export interface LeaseHold extends LeaseRef {
  refusal(): string | undefined;
  release(): Promise<void>;
}

export type TakeResult =
  | { ok: true; hold: LeaseHold }
  /** live: its holder renewed it while we watched; else it could not be taken (`reason`). */
  | { ok: false; live: boolean; lease: LeaseSeen; reason: string };

export interface TakeOptions {
  /** Written as holderIdentity while held. */
  identity: string;
  /**
   * How long a live holder may take to stop (release the Lease, or let it expire) before we give up;
   * 0 gives up at the first renewal seen. A silent holder's Lease is taken once it has gone unrenewed
   * for its lease duration, whatever this says.
   */
  waitMs: number;
  /** How often the Lease is read to see a renewal; default 1 s. */
  pollMs?: number;
  /** The user agent of the Lease requests; default the client's. */
  userAgent?: string;
  /** Told once when the Lease is first seen held by someone else and we wait. */
  onWaiting?: (lease: LeaseSeen) => void;
}

/** A KubeConfig of its own for each elector: acquire() fences writes on the config it is given. */
function copyOf(kc: KubeConfig): KubeConfig {
  const own = new KubeConfig();
  own.loadFromString(kc.exportConfig());
  return own;
}

/**
 * Takes the Lease as a controller replica would (LeaderElector: free, released, or unchanged for a lease
 * duration by our own clock), while reading it to see whether its holder renews it: a renewal seen, once
 * `waitMs` is up, means a live controller and we give up without having written anything.
 */
export async function takeLease(kc: KubeConfig, ref: LeaseRef, opts: TakeOptions): Promise<TakeResult> {
  const api = kc.makeApiClient(CoordinationV1Api);
  const own = copyOf(kc);
  if (opts.userAgent !== undefined) configureClient(own, { userAgent: opts.userAgent });
  let lastError = '';
  const elector = new LeaderElector(own, {
    ...ref,
    identity: opts.identity,
    onError: (message) => (lastError = message),
  });
  const lost: { reason?: string } = {};
  const taking = elector.acquire((reason) => (lost.reason = reason));
  const started = Date.now();
  const pollMs = opts.pollMs ?? 1000;
  let first: LeaseSeen | undefined;
  let latest: LeaseSeen = { ...ref, holder: '' };
  let renewed = false;
  let told = false;
  for (;;) {
    await Promise.race([taking, new Promise((done) => setTimeout(done, pollMs))]);
    if (elector.isLeader()) break;
    try {
      latest = seen(await api.readNamespacedLease(ref));
    } catch (err) {
      const e = apiError(err);
      // Missing: the elector creates it. Anything else but a passing fault ends the attempt.
      if (e.kind !== 'notFound' && e.kind !== 'transient') {
        await elector.release();
        return { ok: false, live: false, lease: latest, reason: `reading the Lease: ${e.message}` };
      }
    }
    if (latest.holder !== '' && latest.holder !== opts.identity) {
      if (!told) opts.onWaiting?.(latest);
      told = true;
      const stamp = (l: LeaseSeen) => `${l.holder} ${l.renewTime?.getTime() ?? ''}`;
      if (first && stamp(first) !== stamp(latest)) renewed = true;
      first ??= latest;
    }
    // Taken while we read: done. (Checked again here, so release() below never lets go of a Lease we hold.)
    if (elector.isLeader()) break;
    const waited = Date.now() - started;
    const expiryMs =
      Math.max(DEFAULT_TIMINGS.leaseDurationMs, (latest.leaseDurationSeconds ?? 0) * 1000) +
      3 * DEFAULT_TIMINGS.retryPeriodMs;
    if ((renewed && waited >= opts.waitMs) || waited >= Math.max(opts.waitMs, expiryMs)) {
      // Not leading, so release() only stops the elector: nothing is written.
      await elector.release();
      return {
        ok: false,
        live: renewed,
        lease: latest,
        reason: renewed
          ? 'renewed while we watched'
          : `not taken within ${Math.round(waited / 1000)} s${lastError ? `: ${lastError}` : ''}`,
      };
    }
  }
  return {
    ok: true,
    hold: {
      ...ref,
      refusal: () => elector.writeRefusal() ?? (lost.reason ? `lost the Lease: ${lost.reason}` : undefined),
      release: () => elector.release(),
    },
  };
}
