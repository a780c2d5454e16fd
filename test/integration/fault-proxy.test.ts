// The seeded fault-injecting proxy in front of the real API server: replayable faults,
// a faithful pass-through when faults are off, and watches that survive periodic cuts.
import type { KubeConfig } from '@kubernetes/client-node';
import { expect } from 'chai';
import { request } from 'node:https';
import { Informer } from '../../src/k8s/informer.js';
import type { ControlPlane } from '../../src/sandbox/control-plane/index.js';
import {
  NO_FAULTS,
  parseFaultSpec,
  type FaultProxy,
  type FaultSpec,
} from '../../src/sandbox/faults/proxy.js';
import { sharedControlPlane, testNamespace } from '../support/control-plane.js';
import { proxyInFront } from '../support/fault-proxy.js';
import { EventLog } from '../support/events.js';
import { kubectlOk } from '../support/kubectl.js';
import {
  canaryWeight,
  splitClient,
  trafficSplit,
  TS_REF,
  type TrafficSplit,
} from '../support/trafficsplit.js';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function send(cp: ControlPlane, base: string, method: string, path: string, body?: object): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {
      authorization: `Bearer ${cp.token}`,
      accept: 'application/json',
    };
    if (body) headers['content-type'] = 'application/merge-patch+json';
    const req = request(`${base}${path}`, { method, ca: cp.caPem, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
    });
    req.once('error', reject);
    req.end(body ? JSON.stringify(body) : undefined);
  });
}

describe('fault proxy', function () {
  this.timeout(120_000);
  let cp: ControlPlane;
  let kc: KubeConfig;
  const proxies: FaultProxy[] = [];
  const inFront = async (spec: FaultSpec) => {
    const front = await proxyInFront(cp, spec);
    proxies.push(front.proxy);
    return front;
  };
  const proxy = async (spec: FaultSpec) => (await inFront(spec)).proxy;

  before(async () => {
    cp = await sharedControlPlane();
    kc = cp.kubeConfig();
  });
  afterEach(async () => {
    for (const p of proxies.splice(0)) await p.close();
  });

  it('gives the same faults to a recorded run of 1,000 requests twice with the same seed', async () => {
    const ns = await testNamespace(kc, 'faults-replay');
    await splitClient(kc).create(trafficSplit(ns, 'web', 0));
    const path = `/apis/split.smi-spec.io/v1alpha2/namespaces/${ns}/trafficsplits/web`;
    const spec = parseFaultSpec('seed=1234,500=0.08,429=0.05,409=0.05');

    const run = async () => {
      const p = await proxy(spec);
      const observed: string[] = [];
      for (let i = 0; i < 1000; i++) {
        const write = i % 3 === 0;
        const a = write
          ? await send(cp, p.url, 'PATCH', path, { spec: trafficSplit(ns, 'web', i % 100).spec })
          : await send(cp, p.url, 'GET', path);
        observed.push(`${write ? 'PATCH' : 'GET'} ${a.status}`);
        if (a.status === 429) expect(a.headers['retry-after']).to.equal('1');
        if (a.status >= 400) expect(JSON.parse(a.body.toString()).kind).to.equal('Status');
      }
      const records = p.records();
      await p.close();
      return { observed, records };
    };

    const first = await run();
    const second = await run();
    expect(second.observed).to.deep.equal(first.observed);
    expect(second.records.map((r) => r.fault)).to.deep.equal(first.records.map((r) => r.fault));
    // What the clients saw is what the proxy recorded, request by request.
    first.records.forEach((r, i) => {
      const status = first.observed[i]!.split(' ')[1];
      expect(status, `request ${i}`).to.equal(r.fault === 'none' ? '200' : r.fault);
    });
    const count = (code: string) => first.observed.filter((o) => o.endsWith(` ${code}`)).length;
    expect(count('500')).to.be.within(50, 110);
    expect(count('429')).to.be.within(25, 75);
    expect(count('409')).to.be.within(5, 35); // writes only: a third of the requests
    expect(first.observed.filter((o) => o.startsWith('GET ') && o.endsWith(' 409'))).to.have.length(0);
  });

  it('with faults off, forwards every byte: the same status, headers and body as the API server', async () => {
    const ns = await testNamespace(kc, 'faults-off');
    await splitClient(kc).create(trafficSplit(ns, 'web', 25));
    const p = await proxy(NO_FAULTS);
    for (const path of [
      `/apis/split.smi-spec.io/v1alpha2/namespaces/${ns}/trafficsplits/web`,
      `/apis/split.smi-spec.io/v1alpha2/namespaces/${ns}/trafficsplits/missing`,
      '/version',
    ]) {
      const direct = await send(cp, cp.apiServerUrl, 'GET', path);
      const proxied = await send(cp, p.url, 'GET', path);
      expect(proxied.status, path).to.equal(direct.status);
      expect(proxied.body.equals(direct.body), `${path} body`).to.equal(true);
      expect(proxied.headers['content-type']).to.equal(direct.headers['content-type']);
    }
    expect(p.records().every((r) => r.fault === 'none' && r.latencyMs === 0)).to.equal(true);
  });

  it('with faults off, client-node and kubectl work through it unchanged', async () => {
    const ns = await testNamespace(kc, 'faults-off-clients');
    const { proxy: p, kubeconfig, kubeConfig: viaProxy } = await inFront(NO_FAULTS);
    const splits = splitClient(viaProxy);
    const informer = new Informer<TrafficSplit>(viaProxy, { ...TS_REF, namespace: ns });
    const seen = new EventLog<number>();
    informer.onAdd((t) => seen.push(canaryWeight(t))).onUpdate((t) => seen.push(canaryWeight(t)));
    await informer.start();
    try {
      await splits.create(trafficSplit(ns, 'web', 10));
      await splits.setCanary(ns, 'web', 60);
      await seen.find((w) => w === 60);
      const out = JSON.parse(
        await kubectlOk(kubeconfig, [
          'get',
          'trafficsplits.v1alpha2.split.smi-spec.io',
          'web',
          '-n',
          ns,
          '-o',
          'json',
        ]),
      );
      expect(out.spec.backends).to.deep.equal(trafficSplit(ns, 'web', 60).spec.backends);
      await splits.delete(ns, 'web');
    } finally {
      informer.stop();
    }
    expect(seen.seen).to.deep.equal([10, 60]);
    expect(p.records().some((r) => r.watch)).to.equal(true);
  });

  it('adds the seeded latency before forwarding', async () => {
    const p = await proxy({ ...NO_FAULTS, seed: 5, latencyMs: 60, jitterMs: 40 });
    const started = Date.now();
    const a = await send(cp, p.url, 'GET', '/version');
    expect(a.status).to.equal(200);
    const [r] = p.records();
    expect(r!.latencyMs).to.be.within(60, 99);
    expect(Date.now() - started).to.be.at.least(r!.latencyMs);
  });

  it('cuts watches every N seconds, and an informer through it still sees every change', async () => {
    const ns = await testNamespace(kc, 'faults-watch-cut');
    const { proxy: p, kubeConfig: viaProxy } = await inFront({ ...NO_FAULTS, watchCutSeconds: 1 });
    const informer = new Informer<TrafficSplit>(
      viaProxy,
      { ...TS_REF, namespace: ns },
      { initialBackoffMs: 50 },
    );
    const seen = new EventLog<number>();
    informer.onAdd((t) => seen.push(canaryWeight(t))).onUpdate((t) => seen.push(canaryWeight(t)));
    await informer.start();
    const splits = splitClient(kc);
    try {
      await splits.create(trafficSplit(ns, 'web', 0));
      // Each change is made after the watch it would have arrived on was cut.
      for (let w = 1; w <= 3; w++) {
        const cut = p.records().filter((r) => r.watch).length;
        await new Promise<void>((resolve) => p.events.once('watch', () => resolve()));
        expect(p.records().filter((r) => r.watch).length).to.equal(cut + 1);
        await splits.setCanary(ns, 'web', w * 20);
        await seen.find((x) => x === w * 20, 20_000, `weight ${w * 20}`);
      }
    } finally {
      informer.stop();
    }
    expect(seen.seen.filter((x) => x > 0)).to.deep.equal([20, 40, 60]);
    expect(informer.stats.lists).to.equal(1);
  });
});
