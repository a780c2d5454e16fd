// Check rounds at scale against the real Prometheus, counted on the wire through a TCP relay: a bound on
// the queries in flight to one Prometheus, identical queries within a moment sent once, and a failing
// round's Rollout reconciled ahead of a backlog.
import { expect } from 'chai';
import { CheckRounds } from '../../src/controller/check-rounds.js';
import { CheckRunner } from '../../src/controller/checks.js';
import { PrometheusAllowlist } from '../../src/controller/prometheus-allowlist.js';
import { WorkQueue } from '../../src/controller/work-queue.js';
import { waitFor } from '../../src/sandbox/wait.js';
import { checkRollout } from '../support/check-rollout.js';
import { sharedPrometheus } from '../support/rollout-env.js';
import { tcpCounter, type TcpCounter } from '../support/tcp-counter.js';

/** A label value only: no Kubernetes here. */
const NS = 'rounds';
/** 1 for every Rollout, but a text of its own: no series has a `rollout` label, so `or` answers. */
const OWN_QUERY = 'count(up{rollout="{{ name }}"}) or vector(1)';

const rollout = (name: string, query: string, address: string) =>
  checkRollout({ name, namespace: NS, query, address });

/** The same text for every Rollout (no per-Rollout variable), answering 1. */
const SAME_QUERY = 'vector(1)';

/** 0, below every metric's `min: 1` here: a failed check. */
const FAILING_QUERY = 'vector(0)';

const noTemplates = { metricTemplate: () => undefined };

describe('check rounds against the real Prometheus', function () {
  this.timeout(60_000);
  /** Two ways to the same Prometheus, under two URLs. */
  let relay: TcpCounter;
  let relay2: TcpCounter;
  beforeEach(async () => {
    const { prometheus } = await sharedPrometheus();
    relay = await tcpCounter(prometheus.url);
    relay2 = await tcpCounter(prometheus.url);
  });
  afterEach(async () => {
    await relay?.close();
    await relay2?.close();
  });
  const runner = (maxInflight?: number) =>
    new CheckRunner({
      admission: { prometheus: new PrometheusAllowlist([relay.url, relay2.url]) },
      ...(maxInflight !== undefined ? { maxInflight } : {}),
    });
  const count = (r: TcpCounter) => r.connections.reduce((n, c) => n + c.requests.length, 0);
  const requests = () => count(relay);

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

  it('sends one query for Rollouts whose rendered query and Prometheus are the same within a moment', async () => {
    const checks = runner();
    const now = Date.now();
    const at = (ms: number) => new Date(now + ms);
    const verdicts = async (name: string, query: string, address: string, ms: number) =>
      (await checks.run(rollout(name, query, address), noTemplates, at(ms))).map((c) => c.verdict);
    // Twenty rounds at once: one request, every Rollout its verdict.
    const together = await Promise.all(
      Array.from({ length: 20 }, (_, i) => verdicts(`same${i}`, SAME_QUERY, relay.url, 0)),
    );
    expect(together).to.deep.equal(together.map(() => ['Pass']));
    expect(requests(), 'twenty identical rounds at once').to.equal(1);
    // Answered already, but the moment is the same: shared still.
    expect(await verdicts('later', SAME_QUERY, relay.url, 300)).to.deep.equal(['Pass']);
    expect(requests(), 'the same query 300 ms later').to.equal(1);
    // Another text, another Prometheus URL, or the next round: each asks on its own.
    expect(await verdicts('own', OWN_QUERY, relay.url, 300)).to.deep.equal(['Pass']);
    expect(requests(), 'another query text').to.equal(2);
    expect(await verdicts('elsewhere', SAME_QUERY, relay2.url, 0)).to.deep.equal(['Pass']);
    expect(count(relay2), 'the same query at another URL').to.equal(1);
    expect(requests()).to.equal(2);
    expect(await verdicts('next', SAME_QUERY, relay.url, 10_000)).to.deep.equal(['Pass']);
    expect(requests(), 'the next round, an interval later').to.equal(3);
  });

  it('reconciles the Rollout whose round failed before a backlog of others, and a passing one in its turn', async () => {
    const queue = new WorkQueue<string>();
    const handled: string[] = [];
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    queue.run(1, async (key) => {
      handled.push(key);
      if (key === 'held') await held;
    });
    try {
      const checks = runner();
      const rounds = new CheckRounds(checks, {
        queue,
        failed: (key, err) => expect.fail(`${key}: ${String(err)}`),
      });
      // The one worker is busy; fifty Rollouts wait behind it.
      queue.add('held');
      await waitFor(async () => (handled.length === 1 ? true : undefined), {
        what: 'the worker to take the first key',
        intervalMs: 100,
      });
      const backlog = Array.from({ length: 50 }, (_, i) => `${NS}/r${i}`);
      for (const key of backlog) queue.add(key);
      const lookups = {
        serviceExists: () => true,
        ...noTemplates,
        admission: { prometheus: new PrometheusAllowlist([relay.url]) },
      };
      const now = new Date();
      for (const [name, query] of [
        ['passing', SAME_QUERY],
        ['failing', FAILING_QUERY],
      ] as const)
        rounds.take(`${NS}/${name}`, rollout(name, query, relay.url), lookups, now);
      await waitFor(
        async () => (!rounds.asking(`${NS}/passing`) && !rounds.asking(`${NS}/failing`) ? true : undefined),
        { what: 'both rounds to finish', timeoutMs: 20_000, intervalMs: 100 },
      );
      release();
      await waitFor(async () => (handled.length === 53 ? true : undefined), {
        what: 'every key handled',
        intervalMs: 100,
      });
      expect(handled).to.deep.equal(['held', `${NS}/failing`, ...backlog, `${NS}/passing`]);
      const taken = rounds.take(`${NS}/failing`, rollout('failing', FAILING_QUERY, relay.url), lookups, now);
      expect(taken.map((c) => c.verdict)).to.deep.equal(['Fail']);
    } finally {
      release();
      await queue.shutdown();
    }
  });
});
