// What a Service change brings back (issue 16: cost at scale): the Rollouts that read that Service, and
// no other Rollout of its namespace, which at thousands of Rollouts would be thousands of reconciles.
import { expect } from 'chai';
import { useController } from '../support/controller-suite.js';

describe('a Service change (sandbox, perch controller at debug level)', function () {
  this.timeout(120_000);
  const suite = useController({ args: () => Promise.resolve(['--log-level', 'debug']) });

  it('brings back the Rollout waiting for it, and not a Rollout that reads other Services', async () => {
    const e = await suite.env('service-events', ['web', 'web-v1', 'web-v2', 'app', 'app-v1']);
    // No analysis: neither Rollout reads Prometheus, so nothing but these Services brings them back.
    await e.createRollout('other', { steps: [{ setWeight: 100 }] });
    await e.phase('other', 'Succeeded');
    await e.createRollout('waiting', {
      service: 'app',
      stableService: 'app-v1',
      canaryService: 'app-v2',
      steps: [{ setWeight: 100 }],
    });
    const missing = await e.until('waiting', (r) => r.status?.phase === 'Invalid', 'Invalid: no app-v2');
    expect(missing.status?.message).to.contain('spec.canaryService: Service');
    const logs = suite.controller().logs;
    const reconciled = (name: string, from: number) =>
      logs.slice(from).filter((l) => l.msg === 'reconciled' && l.rollout === `${e.ns}/${name}`).length;
    const from = logs.length;
    // A Service no Rollout reads, then the one 'waiting' needs: their events come in this order, and the
    // work queue is first in, first out, so a reconcile of 'other' for the first would come before 'waiting' runs.
    await e.service('unrelated');
    await e.service('app-v2');
    await e.until('waiting', (r) => r.status?.phase === 'Succeeded', 'Succeeded');
    expect(reconciled('waiting', from)).to.be.greaterThan(0);
    expect(reconciled('other', from), "reconciles of 'other' after the Service events").to.equal(0);
  });
});
