// How `perch controller` reaches the API server and Prometheus, counted on the wire: runs' requests over a
// few kept-alive connections (a fault proxy and a TCP relay count them), and the API rate limit holding writes to --kube-api-qps.
import { CoordinationV1Api, CoreV1Api } from '@kubernetes/client-node';
import { expect } from 'chai';
import { configureClient } from '../../src/k8s/client-config.js';
import type { FaultRecord } from '../../src/sandbox/faults/proxy.js';
import { sharedControlPlane, testNamespace } from '../support/control-plane.js';
import { startController, type ControllerProcess } from '../support/controller-process.js';
import { proxyInFront } from '../support/fault-proxy.js';
import { analysis, canaryTraffic, RolloutEnv, sharedPrometheus } from '../support/rollout-env.js';
import { tcpCounter } from '../support/tcp-counter.js';

/** The most requests that arrived within `windowMs` of one another (a window starting at each request). */
function busiestWindow(records: FaultRecord[], windowMs: number): number {
  const at = records.map((r) => r.at).sort((a, b) => a - b);
  let most = 0;
  for (let i = 0, j = 0; i < at.length; i++) {
    while (j < at.length && at[j]! < at[i]! + windowMs) j++;
    most = Math.max(most, j - i);
  }
  return most;
}

describe('controller transport: kept-alive connections and the API rate limit', function () {
  this.timeout(180_000);
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const done of cleanup.splice(0).reverse()) await done();
  });
  async function controller(kubeconfig: string, prometheusUrl: string, args: string[]) {
    const c: ControllerProcess = await startController(kubeconfig, prometheusUrl, args);
    cleanup.push(() => c.stop());
    return c;
  }

  it('sends the runs’ API requests over a few connections, and keeps Prometheus connections across check rounds', async () => {
    const cp = await sharedControlPlane();
    const { prometheus } = await sharedPrometheus();
    const e = await RolloutEnv.create('keepalive');
    cleanup.push(() => e.close());
    await canaryTraffic(e);
    const front = await proxyInFront(cp);
    cleanup.push(() => front.proxy.close());
    const relay = await tcpCounter(prometheus.url);
    cleanup.push(() => relay.close());
    const ctl = await controller(front.kubeconfig, relay.url, ['--namespace', e.ns, '--workers', '3']);
    const started = await ctl.waitForLog((r) => r.msg === 'controller started', 30_000, 'the controller');
    expect(started.workers, 'the --workers flag reaches the work queue').to.equal(3);

    const names = ['a', 'b', 'c', 'd', 'e', 'f'];
    for (const name of names)
      await e.createRollout(name, {
        steps: [{ setWeight: 10 }, { analysis: { iterations: 2 } }, { setWeight: 50 }, { setWeight: 100 }],
        // Checks 5 s apart: longer than global fetch keeps an idle connection (4 s).
        analysis: analysis({ interval: '5s' }),
      });
    for (const name of names) await e.phase(name, 'Succeeded', 90_000);

    const records = front.proxy.records();
    const requests = records.filter((r) => !r.watch).length;
    const watches = records.filter((r) => r.watch).length;
    const connections = front.proxy.connectionCount();
    const queries = relay.connections.reduce((n, c) => n + c.requests.length, 0);
    // The longest a connection to Prometheus sat idle between two queries and was used again.
    const longestIdleReused = Math.max(
      0,
      ...relay.connections.flatMap((c) => c.requests.slice(1).map((at, i) => at - c.requests[i]!)),
    );
    console.log(
      `    API: ${requests} requests and ${watches} watches over ${connections} connections; ` +
        `Prometheus: ${queries} queries over ${relay.connections.length} connections, ` +
        `one reused after ${Math.round(longestIdleReused)} ms idle`,
    );
    expect(requests, 'six runs make many requests').to.be.greaterThan(60);
    // A watch holds a connection of its own; every other request shares a few (before: one each).
    expect(connections - watches).to.be.at.most(requests / 5);
    // Two rounds or more each; the six ask the same query (one canary), so rounds within a moment of one
    // another share a request (before: one query per Rollout per round, 12 or more).
    expect(queries, 'queries, identical ones shared').to.be.within(2, 2 * names.length - 1);
    // At most one connection per query in flight, and kept between rounds (before: dropped after 4 s idle).
    expect(relay.connections.length).to.be.at.most(names.length);
    expect(longestIdleReused).to.be.greaterThan(4500);
  });

  it('holds a burst of writes to --kube-api-qps: no 2 s carries more than the burst and two seconds’ worth', async () => {
    const cp = await sharedControlPlane();
    const e = await RolloutEnv.create('ratelimit');
    cleanup.push(() => e.close());
    const front = await proxyInFront(cp);
    cleanup.push(() => front.proxy.close());
    const [qps, burst] = [5, 5];
    await controller(front.kubeconfig, 'http://127.0.0.1:9', [
      '--namespace',
      e.ns,
      '--kube-api-qps',
      String(qps),
      '--kube-api-burst',
      String(burst),
    ]);
    const names = ['a', 'b', 'c', 'd', 'e', 'f'];
    await Promise.all(
      names.map((name) =>
        e.createRollout(name, { steps: [{ setWeight: 20 }, { setWeight: 60 }, { setWeight: 100 }] }),
      ),
    );
    for (const name of names) await e.phase(name, 'Succeeded', 120_000);

    const sent = front.proxy.records().filter((r) => !r.watch);
    const writes = sent.filter((r) => r.method !== 'GET');
    const busiest = busiestWindow(sent, 2000);
    console.log(
      `    ${sent.length} requests (${writes.length} writes); the busiest 2 s carried ${busiest} ` +
        `(limit ${burst} + 2 × ${qps})`,
    );
    expect(writes.length, 'six runs at once are a burst of writes').to.be.greaterThan(4 * (burst + 2 * qps));
    // A token bucket lets at most burst + qps × 2 s go in 2 s; 3 more for the proxy's arrival jitter.
    expect(busiest).to.be.at.most(burst + 2 * qps + 3);
    expect(busiest, 'the burst went out at once').to.be.at.least(burst);
  });

  it('queues requests past the limit in order and loses none, while a Lease request goes at once', async () => {
    const cp = await sharedControlPlane();
    const ns = await testNamespace(cp.kubeConfig(), 'ratelimit-lease');
    const front = await proxyInFront(cp);
    cleanup.push(() => front.proxy.close());
    const kc = configureClient(front.kubeConfig, { rateLimit: { qps: 2, burst: 1 } });
    const core = kc.makeApiClient(CoreV1Api);
    const names = ['cm-0', 'cm-1', 'cm-2', 'cm-3', 'cm-4', 'cm-5'];
    const creates = names.map((name) =>
      core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name } } }),
    );
    await kc.makeApiClient(CoordinationV1Api).createNamespacedLease({
      namespace: ns,
      body: { metadata: { name: 'lease' }, spec: { holderIdentity: 'me' } },
    });
    const creating = () =>
      front.proxy.records().filter((r) => r.method === 'POST' && r.path.includes('/configmaps'));
    expect(creating().length, 'the Lease did not wait behind the queued creates').to.be.below(names.length);
    await Promise.all(creates);
    expect(creating()).to.have.length(names.length);
    // Written one every 500 ms in the order asked: etcd's revisions (resourceVersion) show that order.
    const listed = await core.listNamespacedConfigMap({ namespace: ns });
    const written = listed.items
      .filter((c) => c.metadata?.name?.startsWith('cm-'))
      .sort((a, b) => Number(a.metadata?.resourceVersion) - Number(b.metadata?.resourceVersion))
      .map((c) => c.metadata?.name);
    expect(written).to.deep.equal(names);
    const arrived = creating().map((r) => r.at);
    expect(arrived.slice(1).every((at, i) => at - arrived[i]! > 300)).to.equal(true);
  });
});
