// Check rounds at scale against the real Prometheus, counted on the wire through a TCP relay: a bound on
// the queries in flight to one Prometheus.
import { expect } from 'chai';
import type { Rollout } from '../../src/api/v1alpha1.js';
import { CheckRunner } from '../../src/controller/checks.js';
import { PrometheusAllowlist } from '../../src/controller/prometheus-allowlist.js';
import { sharedPrometheus } from '../support/rollout-env.js';
import { tcpCounter, type TcpCounter } from '../support/tcp-counter.js';

/** A label value only: no Kubernetes here. */
const NS = 'rounds';
/** 1 for every Rollout, but a text of its own: no series has a `rollout` label, so `or` answers. */
const OWN_QUERY = 'count(up{rollout="{{ name }}"}) or vector(1)';

function rollout(name: string, query: string, address: string): Rollout {
  return {
    apiVersion: 'perch.dev/v1alpha1',
    kind: 'Rollout',
    metadata: { name, namespace: NS, generation: 1 },
    spec: {
      service: 'web',
      stableService: 'web-v1',
      canaryService: 'web-v2',
      steps: [{ setWeight: 10 }, { analysis: { iterations: 1 } }],
      analysis: {
        interval: '10s',
        failureLimit: 0,
        inconclusiveLimit: 2,
        errorLimit: 4,
        prometheus: { address },
        metrics: [{ name: 'answer', query, thresholdRange: { min: 1 } }],
      },
    },
  };
}

const noTemplates = { metricTemplate: () => undefined };

describe('check rounds against the real Prometheus', function () {
  this.timeout(60_000);
  let relay: TcpCounter;
  beforeEach(async () => {
    const { prometheus } = await sharedPrometheus();
    relay = await tcpCounter(prometheus.url);
  });
  afterEach(async () => {
    await relay?.close();
  });
  const runner = (maxInflight?: number) =>
    new CheckRunner({
      admission: { prometheus: new PrometheusAllowlist([relay.url]) },
      ...(maxInflight !== undefined ? { maxInflight } : {}),
    });
  const requests = () => relay.connections.reduce((n, c) => n + c.requests.length, 0);

  it('keeps at most maxInflight queries to one Prometheus in flight, the rest waiting their turn', async () => {
    const checks = runner(3);
    const now = new Date();
    const rounds = await Promise.all(
      Array.from({ length: 24 }, (_, i) =>
        checks.run(rollout(`r${i}`, OWN_QUERY, relay.url), noTemplates, now),
      ),
    );
    expect(rounds.map((r) => r.map((c) => c.verdict))).to.deep.equal(rounds.map(() => ['Pass']));
    expect(requests(), 'one query per Rollout').to.equal(24);
    // Each query in flight needs a connection of its own: the relay saw how many were ever open at once.
    expect(relay.connections.length, 'connections opened').to.be.within(1, 3);
  });
});
