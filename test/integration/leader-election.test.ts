// Two `perch controller --leader-elect` replicas: one leads and reconciles, the other waits; when the
// leader is killed with SIGKILL the other takes over the Lease and the run goes on where it stood.
import { CoordinationV1Api } from '@kubernetes/client-node';
import { expect } from 'chai';
import { sharedControlPlane } from '../support/control-plane.js';
import { startController, type ControllerProcess } from '../support/controller-process.js';
import { RolloutEnv, sharedPrometheus } from '../support/rollout-env.js';

describe('leader election (two controller replicas)', function () {
  this.timeout(120_000);
  const replicas: ControllerProcess[] = [];
  let env: RolloutEnv | undefined;
  after(async () => {
    env?.close();
    for (const r of replicas) await r.stop();
  });

  it('one replica leads; after it is killed the other takes over and finishes the run', async () => {
    const cp = await sharedControlPlane();
    const prometheus = (await sharedPrometheus()).prometheus.url;
    env = await RolloutEnv.create('leader');
    const e = env;
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
});
