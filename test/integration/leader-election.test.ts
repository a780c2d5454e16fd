// `perch controller --leader-elect` replicas: one leads and reconciles, the others wait; a leader killed,
// or frozen and continued, is replaced, and the audit log shows one replica's writes at a time, clocks skewed.
import { CoordinationV1Api } from '@kubernetes/client-node';
import { expect } from 'chai';
import type { RolloutSpec } from '../../src/api/v1alpha1.js';
import { waitFor } from '../../src/sandbox/wait.js';
import {
  readAuditLog,
  sharedAuditLog,
  sharedControlPlane,
  type AuditEvent,
} from '../support/control-plane.js';
import { startController, type ControllerProcess } from '../support/controller-process.js';
import { RolloutEnv, sharedPrometheus } from '../support/rollout-env.js';

const WRITES = new Set(['create', 'update', 'patch', 'delete']);
const WRITTEN = new Set(['rollouts', 'trafficsplits', 'events']);

/** The controller's writes in `ns` (Leases aside), in the order the API server received them. */
function controllerWrites(auditLog: string, ns: string): AuditEvent[] {
  return readAuditLog(auditLog)
    .filter(
      (e) =>
        e.stage === 'ResponseComplete' &&
        e.objectRef?.namespace === ns &&
        WRITES.has(e.verb) &&
        WRITTEN.has(e.objectRef.resource ?? '') &&
        (e.userAgent ?? '').startsWith('perch-controller/'),
    )
    .sort((a, b) => a.requestReceivedTimestamp.localeCompare(b.requestReceivedTimestamp));
}

/** Consecutive writes by the same writer folded into one: [a, a, b, a] → [a, b, a]. */
function runs(writers: string[]): string[] {
  return writers.filter((w, i) => i === 0 || writers[i - 1] !== w);
}

describe('leader election (controller replicas)', function () {
  this.timeout(180_000);
  const replicas: ControllerProcess[] = [];
  const envs: RolloutEnv[] = [];
  // Replicas watch every namespace: one left running would reconcile the next test's Rollouts.
  afterEach(async () => {
    for (const e of envs.splice(0)) e.close();
    for (const r of replicas.splice(0)) await r.stop();
  });

  it('one replica leads; after it is killed the other takes over and finishes the run', async () => {
    const cp = await sharedControlPlane();
    const prometheus = (await sharedPrometheus()).prometheus.url;
    const e = await RolloutEnv.create('leader');
    envs.push(e);
    const args = [
      '--leader-elect',
      '--leader-elect-namespace',
      e.ns,
      '--leader-elect-lease-duration',
      '3s',
      '--leader-elect-renew-deadline',
      '2s',
      '--leader-elect-retry-period',
      '250ms',
    ];
    const first = await startController(cp.kubeconfig, prometheus, args);
    replicas.push(first);
    const led = await first.waitForLog(
      (r) => r.msg === 'started leading',
      30_000,
      'the first replica leading',
    );
    const second = await startController(cp.kubeconfig, prometheus, args);
    replicas.push(second);
    await second.waitForLog((r) => r.msg === 'waiting for leadership', 10_000, 'the second replica waiting');

    const leases = e.kc.makeApiClient(CoordinationV1Api);
    const lease = await leases.readNamespacedLease({ name: 'perch-controller', namespace: e.ns });
    expect(lease.spec?.holderIdentity).to.equal(led.identity);

    await e.createRollout('web', { steps: [{ setWeight: 10 }, { pause: {} }, { setWeight: 100 }] });
    await e.until(
      'web',
      (r) => r.status?.pauseReason === 'PauseStep',
      'the pause step, reached by the leader',
    );
    expect(
      second.logs.some((r) => r.msg === 'started leading'),
      'the standby never led',
    ).to.equal(false);
    const standbyMetrics = await (await fetch(`http://${second.metricsAddress}/metrics`)).text();
    expect(standbyMetrics, 'the standby wrote no status').to.not.match(
      /perch_kube_requests_total\{verb="patch",resource="rollouts\/status"/,
    );

    await first.kill();
    const took = await second.waitForLog(
      (r) => r.msg === 'started leading',
      30_000,
      'the second replica taking over',
    );
    expect(took.identity).to.not.equal(led.identity);
    const after = await leases.readNamespacedLease({ name: 'perch-controller', namespace: e.ns });
    expect(after.spec?.holderIdentity).to.equal(took.identity);
    expect(after.spec?.leaseTransitions).to.equal(1);

    await e.annotate('web', { 'perch.dev/resume': 'true' });
    await e.phase('web', 'Succeeded');
    expect(e.weights('web')).to.deep.equal([0, 10, 100]);
  });
  it('clocks a minute apart: writes come from one replica at a time, a frozen leader continued writes nothing', async () => {
    const cp = await sharedControlPlane();
    const auditLog = await sharedAuditLog();
    const prometheus = (await sharedPrometheus()).prometheus.url;
    const names = ['r0', 'r1', 'r2'];
    const e = await RolloutEnv.create(
      'leader-skew',
      names.flatMap((n) => [n, `${n}-v1`, `${n}-v2`]),
    );
    envs.push(e);
    for (const n of names) {
      e.stableServices.set(n, `${n}-v1`);
      e.canaryServices.set(n, `${n}-v2`);
    }
    const args = [
      '--leader-elect',
      '--leader-elect-namespace',
      e.ns,
      '--leader-elect-lease-duration',
      '4s',
      '--leader-elect-renew-deadline',
      '3s',
      '--leader-elect-retry-period',
      '1s',
    ];
    const skewed = (ms: number) => ({ env: { PERCH_TEST_CLOCK_OFFSET_MS: String(ms) } });
    const leading = (p: ControllerProcess, what: string) =>
      p.waitForLog((r) => r.msg === 'started leading', 30_000, what).then((r) => String(r.identity));
    const waiting = (p: ControllerProcess, what: string) =>
      p.waitForLog((r) => r.msg === 'waiting for leadership', 30_000, what).then((r) => String(r.identity));

    // A's clock is 45 s behind, B's 45 s ahead: by renewTime, B sees A's Lease 90 s old.
    const behind = await startController(cp.kubeconfig, prometheus, args, skewed(-45_000));
    replicas.push(behind);
    const a = await leading(behind, 'A leading');
    const ahead = await startController(cp.kubeconfig, prometheus, args, skewed(45_000));
    replicas.push(ahead);
    const b = await waiting(ahead, 'B waiting');

    const steps: RolloutSpec['steps'] = [
      { setWeight: 10 },
      { pause: { duration: '1s' } },
      { setWeight: 20 },
      { pause: {} },
      { setWeight: 30 },
      { pause: { duration: '1s' } },
      { setWeight: 40 },
      { pause: {} },
      { setWeight: 60 },
      { pause: { duration: '1s' } },
      { setWeight: 100 },
    ];
    for (const n of names)
      await e.createRollout(n, { service: n, stableService: `${n}-v1`, canaryService: `${n}-v2`, steps });
    const pausedAt = (step: number, who: string) =>
      Promise.all(
        names.map((n) =>
          e.until(
            n,
            (r) => r.status?.pauseReason === 'PauseStep' && r.status.currentStepIndex === step,
            `the pause at step ${step}, reached by ${who}`,
          ),
        ),
      );
    await pausedAt(3, 'A');

    // Five renewals by A while B watches: more than a lease duration in which B must not take over.
    const leases = e.kc.makeApiClient(CoordinationV1Api);
    const renewals = new Set<number>();
    const lease = () => leases.readNamespacedLease({ name: 'perch-controller', namespace: e.ns });
    await waitFor(
      async () => {
        const l = await lease();
        expect(l.spec?.holderIdentity).to.equal(a);
        renewals.add(new Date(l.spec!.renewTime!).getTime());
        return renewals.size >= 6 ? true : undefined;
      },
      { what: 'five renewals of the Lease by A', timeoutMs: 30_000, intervalMs: 250 },
    );
    const renewed = Math.max(...renewals);
    expect(renewed - Date.now(), "A's renewTime, on its skewed clock").to.be.within(
      -45_000 - 5000,
      -45_000 + 1000,
    );
    expect(
      ahead.logs.some((r) => r.msg === 'started leading'),
      'B took a Lease A was renewing',
    ).to.equal(false);

    // A frozen mid-run: B takes over once the Lease has not changed for a lease duration, and goes on.
    behind.pause();
    expect(await leading(ahead, 'B taking over from the frozen A')).to.equal(b);
    for (const n of names) await e.annotate(n, { 'perch.dev/resume': 'true' });
    await pausedAt(7, 'B');

    // B frozen too; the next step is asked for while nobody runs. A, continued, sees it in its watch
    // but has not renewed within its deadline: it must write nothing and stop.
    ahead.pause();
    for (const n of names) await e.annotate(n, { 'perch.dev/resume': 'true' });
    const continuedAt = Date.now();
    behind.resume();
    const end = await behind.exited;
    expect(end.code, 'A exits once it finds it lost the Lease').to.equal(1);
    expect(
      behind.logs.some((r) => r.msg === 'lost leadership; stopping so another replica can take over'),
    ).to.equal(true);

    const lateByA = () =>
      controllerWrites(auditLog, e.ns)
        .filter(
          (w) => w.userAgent?.endsWith(` ${a}`) && Date.parse(w.requestReceivedTimestamp) >= continuedAt,
        )
        .map((w) => `${w.verb} ${w.requestURI}`);
    expect(lateByA(), 'writes by A after it was continued').to.deep.equal([]);

    // C takes over from B, frozen and then killed, and finishes the runs.
    const third = await startController(cp.kubeconfig, prometheus, args);
    replicas.push(third);
    const c = await waiting(third, 'C waiting');
    await ahead.kill();
    expect(await leading(third, 'C taking over from the killed B')).to.equal(c);
    for (const n of names) await e.phase(n, 'Succeeded');
    for (const n of names) expect(e.weights(n), n).to.deep.equal([0, 10, 20, 30, 40, 60, 100]);

    const who = (ev: AuditEvent) =>
      [a, b, c].find((id) => ev.userAgent?.endsWith(` ${id}`)) ?? `unknown (${ev.userAgent})`;
    let seen: string[] = [];
    const writes = await waitFor(
      async () => {
        const w = controllerWrites(auditLog, e.ns);
        seen = [...new Set(w.map((ev) => `${who(ev)} ${ev.verb} ${ev.objectRef?.resource}`))];
        return [a, b, c].every((id) => w.some((ev) => who(ev) === id)) ? w : undefined;
      },
      { what: 'writes by each of A, B and C in the audit log', timeoutMs: 10_000, intervalMs: 250 },
    ).catch((err: Error) => {
      throw new Error(`${err.message}; A=${a} B=${b} C=${c}; seen: ${seen.join(', ')}`);
    });
    const story = writes.map((w) => `${w.requestReceivedTimestamp} ${who(w)} ${w.verb} ${w.requestURI}`);
    expect(runs(writes.map(who)), story.join('\n')).to.deep.equal([a, b, c]);
    expect(lateByA(), 'writes by A after it was continued').to.deep.equal([]);
  });
});
