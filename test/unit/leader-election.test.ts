// Leader-election timings and the test-only clock offset: refused with the flags named, before any
// request, in the class and in `perch controller`.
import { KubeConfig } from '@kubernetes/client-node';
import { expect } from 'chai';
import { controllerCommand } from '../../src/cli/controller.js';
import { UsageError } from '../../src/cli/usage-error.js';
import {
  DEFAULT_TIMINGS,
  LeaderElector,
  systemClock,
  testClockOffsetMs,
  timingsError,
} from '../../src/k8s/leader-election.js';

const t = (leaseDurationMs: number, renewDeadlineMs: number, retryPeriodMs: number) => ({
  leaseDurationMs,
  renewDeadlineMs,
  retryPeriodMs,
});

/** A KubeConfig that points nowhere: the constructor must refuse before any request. */
function nowhere(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromClusterAndUser(
    { name: 'c', server: 'https://127.0.0.1:1', skipTLSVerify: false },
    { name: 'u' },
  );
  return kc;
}

describe('leader election timings', () => {
  it("accepts client-go's defaults and lease > renew deadline > 1.2 × retry period", () => {
    expect(timingsError(DEFAULT_TIMINGS)).to.equal(undefined);
    expect(timingsError(t(4000, 3000, 1000))).to.equal(undefined);
    expect(timingsError(t(1001, 1000, 833))).to.equal(undefined);
  });

  it('refuses a lease no longer than the renew deadline, naming both flags', () => {
    for (const bad of [t(10_000, 10_000, 2000), t(5000, 10_000, 2000)]) {
      const msg = timingsError(bad);
      expect(msg).to.contain('--leader-elect-lease-duration').and.contain('--leader-elect-renew-deadline');
    }
    expect(timingsError(t(5000, 10_000, 2000)))
      .to.contain('(5s)')
      .and.contain('(10s)');
  });

  it('refuses a renew deadline not above 1.2 × the retry period, naming both flags', () => {
    for (const bad of [t(15_000, 2400, 2000), t(15_000, 2000, 2000), t(15_000, 1000, 2000)]) {
      const msg = timingsError(bad);
      expect(msg, JSON.stringify(bad)).to.contain('--leader-elect-renew-deadline');
      expect(msg, JSON.stringify(bad)).to.contain('--leader-elect-retry-period');
    }
    expect(timingsError(t(15_000, 2401, 2000))).to.equal(undefined);
  });

  it('refuses zero, negative and non-finite durations, naming the flag', () => {
    expect(timingsError(t(0, 3000, 1000))).to.contain('--leader-elect-lease-duration 0');
    expect(timingsError(t(4000, -1, 1000))).to.contain('--leader-elect-renew-deadline -1');
    expect(timingsError(t(4000, 3000, NaN))).to.contain('--leader-elect-retry-period NaN');
  });

  it('the LeaderElector refuses bad timings when it is made, with the same message', () => {
    expect(
      () =>
        new LeaderElector(nowhere(), {
          namespace: 'n',
          name: 'l',
          leaseDurationMs: 2000,
          renewDeadlineMs: 3000,
        }),
    ).to.throw(
      /--leader-elect-lease-duration \(2s\) must be longer than --leader-elect-renew-deadline \(3s\)/,
    );
    expect(() => new LeaderElector(nowhere(), { namespace: 'n', name: 'l', retryPeriodMs: 9000 })).to.throw(
      /--leader-elect-renew-deadline \(10s\) must be longer than 1.2 × --leader-elect-retry-period \(9s\)/,
    );
  });

  it('perch controller refuses them as a usage error before it reads a kubeconfig', async () => {
    const refused = async (args: string[]) => {
      try {
        await controllerCommand(['--kubeconfig', '/nonexistent/kubeconfig', ...args]);
      } catch (err) {
        return err;
      }
      throw new Error(`perch controller ${args.join(' ')} was not refused`);
    };
    const lease = await refused([
      '--leader-elect-lease-duration',
      '3s',
      '--leader-elect-renew-deadline',
      '3s',
    ]);
    expect(lease).to.be.instanceOf(UsageError);
    expect((lease as Error).message).to.contain('--leader-elect-lease-duration (3s) must be longer');
    const retry = await refused(['--leader-elect-retry-period', '9s']);
    expect(retry).to.be.instanceOf(UsageError);
    expect((retry as Error).message).to.contain('--leader-elect-retry-period (9s)');
    const timeout = await refused(['--request-timeout', 'soon']);
    expect(timeout).to.be.instanceOf(UsageError);
    expect((timeout as Error).message).to.contain('--request-timeout soon');
  });
});

describe('the test-only clock offset (PERCH_TEST_CLOCK_OFFSET_MS)', () => {
  it('shifts only the wall clock written into the Lease, never the monotonic one', () => {
    expect(testClockOffsetMs({})).to.equal(0);
    expect(testClockOffsetMs({ PERCH_TEST_CLOCK_OFFSET_MS: '-45000' })).to.equal(-45_000);
    const skewed = systemClock(3_600_000);
    const plain = systemClock(0);
    expect(skewed.wall() - plain.wall()).to.be.within(3_600_000 - 50, 3_600_000 + 50);
    expect(Math.abs(skewed.monotonic() - plain.monotonic())).to.be.lessThan(50);
  });

  it('refuses anything but whole milliseconds, naming the variable', () => {
    expect(() => testClockOffsetMs({ PERCH_TEST_CLOCK_OFFSET_MS: '30s' })).to.throw(
      /PERCH_TEST_CLOCK_OFFSET_MS=30s/,
    );
    expect(() => testClockOffsetMs({ PERCH_TEST_CLOCK_OFFSET_MS: '1.5' })).to.throw(/whole milliseconds/);
  });
});
