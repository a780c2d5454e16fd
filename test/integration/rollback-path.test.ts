// The rollback's critical path (issue 16): from a failing round to stable 100 written, nothing waits that
// need not. Here the rollback's Event is held open in the fault proxy while the TrafficSplit must already
// route stable 100.
import { expect } from 'chai';
import { waitFor } from '../../src/sandbox/wait.js';
import { sharedControlPlane } from '../support/control-plane.js';
import { startController } from '../support/controller-process.js';
import { proxyInFront } from '../support/fault-proxy.js';
import { analysis, canaryTraffic, RolloutEnv, sharedPrometheus } from '../support/rollout-env.js';

describe('the rollback path (sandbox + real Prometheus, fault proxy in front)', function () {
  this.timeout(180_000);

  it("writes stable 100 while the rollback's Event is still being written", async () => {
    const cp = await sharedControlPlane();
    const front = await proxyInFront(cp);
    const controller = await startController(front.kubeconfig, (await sharedPrometheus()).prometheus.url);
    const e = await RolloutEnv.create('rollback-path');
    try {
      await canaryTraffic(e, { rps: 50, errorRate: 1, latencyMs: 20 });
      // The run's second Event is the rollback's: RunStarted (with the first 10 %), then AnalysisFailed.
      const events = `/namespaces/${e.ns}/events`;
      let posted = 0;
      const held = front.proxy.holdNext(
        (method, path) => method === 'POST' && path.endsWith(events) && ++posted === 2,
      );
      await e.createRollout('web', {
        steps: [{ setWeight: 10 }, { analysis: { iterations: 1 } }, { setWeight: 100 }],
        analysis: analysis(),
      });
      const event = await held;
      // While that Event waits, the TrafficSplit goes to stable 100 all the same.
      await waitFor(async () => (e.weights('web').at(-1) === 0 ? true : undefined), {
        what: 'the TrafficSplit at stable 100 while the Event is held',
        timeoutMs: 20_000,
        intervalMs: 100,
      });
      expect(e.weights('web')).to.deep.equal([0, 10, 0]);
      expect(await event.release()).to.equal(201);
      const failed = await e.phase('web', 'Failed');
      expect(failed.status?.message).to.contain('request-success-rate');
      const reasons = (await e.eventsUntil('web', 'RolledBack')).map((x) => x.reason);
      expect(reasons).to.deep.equal(['RunStarted', 'AnalysisFailed', 'RolledBack']);
    } finally {
      e.close();
      await controller.stop();
      await front.proxy.close();
    }
  });
});
