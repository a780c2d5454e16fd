// What one run writes, read from the API server's audit log (issue 16): a run that starts on a routing
// object Perch creates writes it at stable 100 and the first weight on it in the same reconcile, told by
// one status write and one Event, and no write is refused as a conflict along the way.
import { expect } from 'chai';
import { sharedAuditLog, readAuditLog, type AuditEvent } from '../support/control-plane.js';
import { startController } from '../support/controller-process.js';
import { RolloutEnv } from '../support/rollout-env.js';

describe("a run's writes, from the audit log (sandbox + perch controller)", function () {
  this.timeout(120_000);

  it('creates the TrafficSplit at stable 100 and writes the first weight on it after one status write, with one Event for both', async () => {
    const e = await RolloutEnv.create('run-writes');
    // No analysis: nothing asks Prometheus, so an unreachable address serves.
    const controller = await startController(e.cp.kubeconfig, 'http://127.0.0.1:9', ['--namespace', e.ns]);
    try {
      await e.createRollout('web', { steps: [{ setWeight: 10 }, { setWeight: 50 }, { setWeight: 100 }] });
      await e.phase('web', 'Succeeded');
      const reasons = (await e.eventsUntil('web', 'Promoted')).map((x) => x.reason);
      expect(reasons).to.deep.equal(['RunStarted', 'WeightChanged', 'WeightChanged', 'Promoted']);
      expect(e.weights('web')).to.deep.equal([0, 10, 50, 100]);

      const audit = await sharedAuditLog();
      const mine = (x: AuditEvent) =>
        x.stage === 'ResponseComplete' &&
        x.objectRef?.namespace === e.ns &&
        (x.userAgent ?? '').startsWith('perch-controller/') &&
        ['create', 'patch', 'update', 'delete'].includes(x.verb);
      const writes = readAuditLog(audit)
        .filter(mine)
        .sort((a, b) => a.requestReceivedTimestamp.localeCompare(b.requestReceivedTimestamp));
      const what = (x: AuditEvent) =>
        `${x.verb} ${x.objectRef?.resource}${x.objectRef?.subresource ? `/${x.objectRef.subresource}` : ''} ${x.responseStatus?.code}`;
      expect(
        writes.filter((x) => (x.responseStatus?.code ?? 0) >= 300).map(what),
        'no write refused',
      ).to.deep.equal([]);
      const routeAndStatus = writes.filter((x) => x.objectRef?.resource !== 'events').map(what);
      expect(routeAndStatus.slice(0, 4)).to.deep.equal([
        'patch rollouts 200', // the finalizer
        'patch rollouts/status 200', // the run started, at step 1's 10 %
        'create trafficsplits 201', // stable 100
        'patch trafficsplits 200', // 90/10, on the object the create returned
      ]);
    } finally {
      e.close();
      await controller.stop();
    }
  });
});
