// LeaderElector on the suite's real API server, its time on a fake clock: a Lease expires by when this
// process saw it change, whatever the holder's clock says, and a leader stops before a standby may start.
import { CoordinationV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { createClock, type Clock, type TimerId } from '@sinonjs/fake-timers';
import { expect } from 'chai';
import { FencedWriteError } from '../../src/k8s/client-config.js';
import { LeaderElector, type ElectionClock } from '../../src/k8s/leader-election.js';
import { NO_FAULTS, type FaultProxy } from '../../src/sandbox/faults/proxy.js';
import { sharedControlPlane, testNamespace } from '../support/control-plane.js';
import { proxyInFront } from '../support/fault-proxy.js';

const TIMINGS = { leaseDurationMs: 4000, renewDeadlineMs: 3000, retryPeriodMs: 1000 };
const SKEW = 60_000;
const LEASE = 'perch-controller';

interface Rig {
  clock: Clock;
  /** Added to the monotonic clock without running timers: a process stopped, then continued. */
  paused: { ms: number };
  ns: string;
  kc: KubeConfig;
  elector(identity: string, wallOffsetMs: number, kc?: KubeConfig): LeaderElector;
  lease(): Promise<{ holder?: string; transitions?: number; renewTime?: number }>;
}

async function rig(prefix: string): Promise<Rig> {
  const cp = await sharedControlPlane();
  const kc = cp.kubeConfig();
  const ns = await testNamespace(kc, prefix);
  const clock = createClock(Date.now());
  const paused = { ms: 0 };
  const electionClock = (wallOffsetMs: number): ElectionClock => ({
    monotonic: () => clock.now + paused.ms,
    wall: () => clock.now + paused.ms + wallOffsetMs,
    setTimeout: (callback, ms) => clock.setTimeout(callback, ms),
    clearTimeout: (handle) => clock.clearTimeout(handle as TimerId),
  });
  const leases = kc.makeApiClient(CoordinationV1Api);
  return {
    clock,
    paused,
    ns,
    kc,
    elector: (identity, wallOffsetMs, through = cp.kubeConfig()) =>
      new LeaderElector(through, {
        namespace: ns,
        name: LEASE,
        identity,
        ...TIMINGS,
        clock: electionClock(wallOffsetMs),
      }),
    async lease() {
      const l = await leases.readNamespacedLease({ name: LEASE, namespace: ns });
      return {
        holder: l.spec?.holderIdentity,
        transitions: l.spec?.leaseTransitions,
        renewTime: l.spec?.renewTime ? new Date(l.spec.renewTime).getTime() : undefined,
      };
    },
  };
}

describe('LeaderElector on a fake clock (real API server)', function () {
  this.timeout(60_000);
  const proxies: FaultProxy[] = [];
  const electors: LeaderElector[] = [];
  after(async () => {
    for (const e of electors) await e.release();
    for (const p of proxies) await p.close();
  });

  /**
   * `holder` renews once at 1 s; `standby` sees that change at 1.5 s and must wait exactly one lease
   * duration from then, by its own clock, whatever renewTime the holder's skewed clock wrote.
   */
  async function takeoverByObservation(holderOffset: number, standbyOffset: number) {
    const r = await rig(`le-skew-${holderOffset > 0 ? 'ahead' : 'behind'}`);
    const start = r.clock.now;
    const holder = r.elector('holder', holderOffset);
    const standby = r.elector('standby', standbyOffset);
    expect(await holder.tryAcquireOrRenew(), 'the holder creates the Lease').to.equal(true);
    const written = await r.lease();
    expect(written.renewTime! - start, 'renewTime is on the holder’s skewed clock').to.equal(holderOffset);
    expect(await standby.tryAcquireOrRenew(), 'a fresh Lease is not taken').to.equal(false);

    r.clock.tick(1000);
    expect(await holder.tryAcquireOrRenew(), 'the holder renews').to.equal(true);
    r.clock.tick(500);
    expect(await standby.tryAcquireOrRenew(), 'the standby sees the renewal at 1.5 s').to.equal(false);
    r.clock.tick(TIMINGS.leaseDurationMs - 1);
    expect(await standby.tryAcquireOrRenew(), 'one ms before a lease duration since the change').to.equal(
      false,
    );
    expect((await r.lease()).holder).to.equal('holder');
    r.clock.tick(1);
    expect(await standby.tryAcquireOrRenew(), 'a lease duration after the change it saw').to.equal(true);
    const taken = await r.lease();
    expect(taken).to.include({ holder: 'standby', transitions: 1 });
    expect(taken.renewTime! - r.clock.now).to.equal(standbyOffset);
  }

  it('a standby whose clock is ahead never takes a Lease whose renewTime looks two minutes old', async () => {
    // The holder's clock is a minute behind, the standby's a minute ahead: by renewTime the Lease
    // expired long ago, so comparing timestamps would take it at once, while the holder still renews.
    await takeoverByObservation(-SKEW, +SKEW);
  });

  it('a standby whose clock is behind takes over a lease duration after the last change, not later', async () => {
    // By renewTime the Lease would hold two more minutes after the holder died.
    await takeoverByObservation(+SKEW, -SKEW);
  });

  it('a leader that cannot renew calls onLost at its renew deadline, before a standby may take over', async () => {
    const r = await rig('le-deadline');
    const cp = await sharedControlPlane();
    // The leader talks through a proxy; setting its latency later hangs every request of the leader's.
    const front = await proxyInFront(cp, { ...NO_FAULTS });
    proxies.push(front.proxy);
    const leader = r.elector('leader', 0, front.kubeConfig);
    const standby = r.elector('standby', 0);
    electors.push(leader, standby);
    const lost: { at: number; reason: string }[] = [];
    const start = r.clock.now;
    await leader.acquire((reason) => lost.push({ at: r.clock.now, reason }));
    expect(leader.isLeader()).to.equal(true);
    expect(await standby.tryAcquireOrRenew()).to.equal(false);

    front.proxy.spec.latencyMs = 5000;
    r.clock.tick(TIMINGS.renewDeadlineMs - 1);
    expect(lost, 'still within the renew deadline').to.deep.equal([]);
    expect(leader.isLeader()).to.equal(true);
    r.clock.tick(1);
    expect(lost).to.have.length(1);
    expect(lost[0]!.at).to.equal(start + TIMINGS.renewDeadlineMs);
    expect(lost[0]!.reason).to.contain('renew deadline (3s)');
    expect(leader.isLeader()).to.equal(false);
    // Its writes stop at once, without waiting for the hung renewal.
    const write = await front.kubeConfig
      .makeApiClient(CoreV1Api)
      .createNamespacedConfigMap({ namespace: r.ns, body: { metadata: { name: 'late' } } })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(write).to.be.instanceOf(FencedWriteError);

    expect(await standby.tryAcquireOrRenew(), 'the leader stopped, the Lease still holds').to.equal(false);
    r.clock.tick(TIMINGS.leaseDurationMs - TIMINGS.renewDeadlineMs - 1);
    expect(await standby.tryAcquireOrRenew()).to.equal(false);
    r.clock.tick(1);
    expect(
      await standby.tryAcquireOrRenew(),
      'a lease duration after the standby saw the last renewal',
    ).to.equal(true);
    expect(r.clock.now, 'the standby took over after the leader had stopped').to.be.greaterThan(lost[0]!.at);
    expect(lost, 'onLost runs once').to.have.length(1);
  });

  it('a leader paused past its renew deadline refuses to write before any of its timers runs', async () => {
    const r = await rig('le-paused');
    const leader = r.elector('leader', 0, r.kc);
    electors.push(leader);
    const lost: string[] = [];
    await leader.acquire((reason) => lost.push(reason));
    const core = r.kc.makeApiClient(CoreV1Api);
    await core.createNamespacedConfigMap({ namespace: r.ns, body: { metadata: { name: 'while-leading' } } });

    r.paused.ms = TIMINGS.renewDeadlineMs; // SIGSTOP … SIGCONT: time went on, no timer fired
    const write = await core
      .createNamespacedConfigMap({ namespace: r.ns, body: { metadata: { name: 'after-pause' } } })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(write).to.be.instanceOf(FencedWriteError);
    expect((write as Error).message).to.contain('not renewed within the renew deadline');
    expect(lost, 'the deadline timer has not run yet').to.deep.equal([]);
    const names = (await core.listNamespacedConfigMap({ namespace: r.ns })).items.map(
      (c) => c.metadata?.name,
    );
    expect(names).to.include('while-leading').and.not.include('after-pause');
  });

  it('a leader that finds another holder stops at once; release hands the Lease over without waiting', async () => {
    const r = await rig('le-handover');
    const first = r.elector('first', 0);
    const second = r.elector('second', 0);
    const third = r.elector('third', 0);
    electors.push(first, second, third);
    const lost: string[] = [];
    await first.acquire((reason) => lost.push(reason));
    await first.release();
    expect((await r.lease()).holder ?? '').to.equal('');
    expect(await second.tryAcquireOrRenew(), 'a released Lease is free now').to.equal(true);
    expect(lost).to.deep.equal([]);

    const secondLost: string[] = [];
    const leading = second.acquire((reason) => secondLost.push(reason));
    await leading;
    // Someone takes the Lease behind the leader's back; its next renewal sees it and it stops.
    const leases = r.kc.makeApiClient(CoordinationV1Api);
    const lease = await leases.readNamespacedLease({ name: LEASE, namespace: r.ns });
    lease.spec = { ...lease.spec, holderIdentity: 'third' };
    await leases.replaceNamespacedLease({ name: LEASE, namespace: r.ns, body: lease });
    expect(await second.tryAcquireOrRenew()).to.equal(false);
    expect(secondLost).to.have.length(1);
    expect(secondLost[0]).to.contain('held by third');
    expect(second.isLeader()).to.equal(false);
  });
});
