// The informer (client-node ListWatch under src/k8s/informer.ts) against the real API server:
// events, resuming after a cut watch or an API server restart, and relisting after a real 410 Gone.
import {
  ApiextensionsV1Api,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
} from '@kubernetes/client-node';
import { expect } from 'chai';
import { request } from 'node:https';
import { Informer } from '../../src/k8s/informer.js';
import { withoutBookkeeping } from '../../src/k8s/slim.js';
import { waitFor } from '../../src/sandbox/wait.js';
import type { ControlPlane } from '../../src/sandbox/control-plane/index.js';
import { advanceRevision, compact } from '../../src/sandbox/control-plane/etcd-admin.js';
import { NO_FAULTS, type FaultProxy } from '../../src/sandbox/faults/proxy.js';
import { sharedControlPlane, testNamespace } from '../support/control-plane.js';
import { proxyInFront } from '../support/fault-proxy.js';
import { EventLog } from '../support/events.js';
import {
  canaryWeight,
  splitClient,
  trafficSplit,
  TS_REF,
  type TrafficSplit,
} from '../support/trafficsplit.js';

type Seen = { type: 'add' | 'update' | 'delete'; name: string; canary: number };

function record(informer: Informer<TrafficSplit>): EventLog<Seen> {
  const log = new EventLog<Seen>();
  const push = (type: Seen['type']) => (ts: TrafficSplit) =>
    log.push({ type, name: ts.metadata?.name ?? '', canary: canaryWeight(ts) });
  informer.onAdd(push('add')).onUpdate(push('update')).onDelete(push('delete'));
  return log;
}

const is = (type: Seen['type'], name: string, canary?: number) => (e: Seen) =>
  e.type === type && e.name === name && (canary === undefined || e.canary === canary);

describe('informer against the real API server', function () {
  this.timeout(90_000);
  let cp: ControlPlane;
  let kc: KubeConfig;
  const informers: Informer<TrafficSplit>[] = [];
  const proxies: FaultProxy[] = [];

  before(async () => {
    cp = await sharedControlPlane();
    kc = cp.kubeConfig();
  });
  afterEach(async () => {
    for (const i of informers.splice(0)) i.stop();
    for (const p of proxies.splice(0)) await p.close();
  });

  async function informerOn(
    namespace: string,
    config = kc,
  ): Promise<{ informer: Informer<TrafficSplit>; log: EventLog<Seen> }> {
    const informer = new Informer<TrafficSplit>(
      config,
      { ...TS_REF, namespace },
      { initialBackoffMs: 50, maxBackoffMs: 1000 },
    );
    informers.push(informer);
    const log = record(informer);
    await informer.start();
    return { informer, log };
  }

  it('sees add, update and delete', async () => {
    const ns = await testNamespace(kc, 'informer-events');
    const splits = splitClient(kc);
    await splits.create(trafficSplit(ns, 'before', 0));
    const { informer, log } = await informerOn(ns);
    expect(informer.get('before', ns)?.spec.service).to.equal('root');
    await log.find(is('add', 'before'));

    await splits.create(trafficSplit(ns, 'web', 0));
    await log.find(is('add', 'web', 0));
    await splits.setCanary(ns, 'web', 30);
    await log.find(is('update', 'web', 30));
    await splits.delete(ns, 'web');
    await log.find(is('delete', 'web'));
    expect(informer.get('web', ns)).to.equal(undefined);
    expect(informer.stats.lists).to.equal(1);
  });

  it('keeps what its transform leaves, for listed and watched objects alike (no managedFields cached)', async () => {
    const ns = await testNamespace(kc, 'informer-transform');
    const splits = splitClient(kc);
    await splits.create(trafficSplit(ns, 'listed', 0));
    const informer = new Informer<TrafficSplit>(
      kc,
      { ...TS_REF, namespace: ns },
      { transform: withoutBookkeeping },
    );
    informers.push(informer);
    const handed = new EventLog<TrafficSplit>();
    informer.onAdd(handed.push).onUpdate(handed.push);
    await informer.start();
    await splits.create(trafficSplit(ns, 'watched', 0));
    await splits.setCanary(ns, 'watched', 20);
    await handed.find((t) => t.metadata?.name === 'watched' && canaryWeight(t) === 20);
    // The API server keeps managedFields on every object; the cache and the handlers never see them.
    const server = await splits.get(ns, 'watched');
    expect(server.metadata?.managedFields ?? []).to.not.deep.equal([]);
    for (const name of ['listed', 'watched']) {
      const cached = informer.get(name, ns);
      expect(cached?.metadata?.resourceVersion, name).to.be.a('string');
      expect(cached?.metadata, name).to.not.have.property('managedFields');
    }
    expect(handed.seen.filter((t) => t.metadata?.managedFields !== undefined)).to.deep.equal([]);
  });

  it('resumes from its resourceVersion when the fault proxy cuts the watch, losing no event', async () => {
    const { proxy, kubeConfig: viaProxy } = await proxyInFront(cp);
    proxies.push(proxy);
    const ns = await testNamespace(kc, 'informer-cut');
    const splits = splitClient(kc);
    await splits.create(trafficSplit(ns, 'kept', 0));
    await splits.create(trafficSplit(ns, 'doomed', 0));
    const { informer, log } = await informerOn(ns, viaProxy);
    await log.find(is('add', 'doomed'));

    for (let round = 1; round <= 3; round++) {
      await watchOpen(proxy);
      expect(proxy.cutWatches()).to.equal(1);
      // Written while the informer is between watches: it must still see each of them.
      await splits.setCanary(ns, 'kept', round * 10);
      await splits.create(trafficSplit(ns, `new-${round}`, round));
      await log.find(is('update', 'kept', round * 10), 20_000, `update of kept to ${round * 10}`);
      await log.find(is('add', `new-${round}`, round));
    }
    await splits.delete(ns, 'doomed');
    await log.find(is('delete', 'doomed'));

    const watches = proxy.records().filter((r) => r.watch);
    expect(watches.length).to.be.at.least(4);
    // Every re-watch carried a resourceVersion: it resumed, it did not start from scratch.
    for (const w of watches)
      expect(new URL(w.path, 'https://x').searchParams.get('resourceVersion')).to.match(/^\d+$/);
    expect(informer.stats.lists, 'a cut watch resumes without a relist').to.equal(1);
    expect(log.seen.filter(is('update', 'kept')).map((e) => e.canary)).to.deep.equal([10, 20, 30]);
  });

  it('waits out a 429 as long as its Retry-After asks, telling onThrottled, not onError', async () => {
    // What kube-apiserver answers while a CRD's watch cache (re)initializes: 429 with Retry-After: 1.
    const { proxy, kubeConfig: viaProxy } = await proxyInFront(cp, {
      ...NO_FAULTS,
      error429: 1,
      retryAfterSeconds: 1,
    });
    proxies.push(proxy);
    const ns = await testNamespace(kc, 'informer-429');
    await splitClient(kc).create(trafficSplit(ns, 'web', 0));
    const errors: unknown[] = [];
    const throttles: number[] = [];
    let twice: () => void = () => {};
    let failed: (err: unknown) => void = () => {};
    const waitedOutTwice = new Promise<void>((resolve, reject) => {
      twice = resolve;
      failed = reject;
    });
    const informer = new Informer<TrafficSplit>(
      viaProxy,
      { ...TS_REF, namespace: ns },
      {
        initialBackoffMs: 50,
        maxBackoffMs: 5_000,
        onError: (err) => {
          errors.push(err);
          failed(new Error(`a 429 went to onError: ${String(err)}`));
        },
        onThrottled: (_err, retryInMs) => {
          if (throttles.push(retryInMs) === 2) twice();
        },
      },
    );
    informers.push(informer);
    const log = record(informer);
    const synced = informer.start();
    await waitedOutTwice;
    proxy.spec.error429 = 0;
    await synced;
    await log.find(is('add', 'web'));

    expect(errors).to.deep.equal([]);
    // Without Retry-After the backoff from 50 ms would have tried again after 50, 100, 200 ms.
    expect(throttles.slice(0, 2)).to.deep.equal([1000, 1000]);
    expect(informer.stats.throttled).to.equal(throttles.length);
    // Each read turned away (discovery or the list) was tried again only after the second it was asked to wait.
    const reads = proxy.records().filter((r) => r.method === 'GET' && !r.watch);
    expect(reads.filter((r) => r.fault === '429').length).to.equal(throttles.length);
    reads.forEach((r, i) => {
      const next = reads[i + 1];
      if (r.fault === '429' && next)
        expect(next.at - r.at, `read ${i + 1} came after the wait`).to.be.at.least(990);
    });
  });

  it('keeps every change across a kube-apiserver restart', async () => {
    const ns = await testNamespace(kc, 'informer-restart');
    const splits = splitClient(kc);
    await splits.create(trafficSplit(ns, 'web', 0));
    await splits.create(trafficSplit(ns, 'old', 0));
    const { informer, log } = await informerOn(ns);
    await log.find(is('add', 'old'));

    await cp.restartApiServer();
    await splits.setCanary(ns, 'web', 50);
    await splits.create(trafficSplit(ns, 'after', 5));
    await splits.delete(ns, 'old');

    await log.find(is('update', 'web', 50), 30_000, 'update after restart');
    await log.find(is('add', 'after', 5));
    await log.find(is('delete', 'old'));
    expect(
      informer
        .list(ns)
        .map((t) => t.metadata?.name)
        .sort(),
    ).to.deep.equal(['after', 'web']);
    expect(informer.stats.restarts, 'the dropped connection was retried').to.be.at.least(1);
  });

  it('relists after a real 410 Gone when its resourceVersion was compacted away', async () => {
    const ns = await testNamespace(kc, 'informer-gone');
    const splits = splitClient(kc);
    await splits.create(trafficSplit(ns, 'web', 0));
    await splits.create(trafficSplit(ns, 'old', 0));
    const { informer, log } = await informerOn(ns);
    await log.find(is('add', 'old'));
    const staleVersion = informer.resourceVersion();
    expect(staleVersion).to.match(/^\d+$/);

    // While the API server is down, move etcd past the informer's resourceVersion and compact the history.
    await cp.restartApiServer(async () => compact(cp.etcdUrl, await advanceRevision(cp.etcdUrl)));

    // The server itself answers a watch from that version with 410 Gone ("too old resource version").
    const gone = await watchOnce(
      cp,
      `/apis/split.smi-spec.io/v1alpha2/namespaces/${ns}/trafficsplits?watch=true&resourceVersion=${staleVersion}`,
    );
    if (process.env.PERCH_TEST_VERBOSE) console.log(gone);
    expect(gone, 'the API server refuses the compacted resourceVersion').to.match(/^410 |"code":410[,}]/);

    await splits.setCanary(ns, 'web', 40);
    await splits.delete(ns, 'old');
    await log.find(is('update', 'web', 40), 30_000, 'update after the 410');
    await log.find(is('delete', 'old'));
    expect(informer.stats.lists, 'the 410 made it list again').to.be.at.least(2);
    expect(informer.list(ns).map((t) => t.metadata?.name)).to.deep.equal(['web']);
  });

  it('turns notServed when a version it listed stops being served, and served again from a fresh list', async () => {
    const ns = await testNamespace(kc, 'informer-unserved');
    const ext = kc.makeApiClient(ApiextensionsV1Api);
    const name = 'trafficsplits.split.smi-spec.io';
    const versions = (await ext.readCustomResourceDefinition({ name })).spec.versions;
    const i = versions.findIndex((v: { name: string }) => v.name === 'v1alpha4');
    const serve = (served: boolean) =>
      ext.patchCustomResourceDefinition(
        { name, body: [{ op: 'replace', path: `/spec/versions/${i}/served`, value: served }] },
        setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
      );
    const informer = new Informer<TrafficSplit>(
      kc,
      { ...TS_REF, apiVersion: 'split.smi-spec.io/v1alpha4', namespace: ns },
      { initialBackoffMs: 50, maxBackoffMs: 500 },
    );
    informers.push(informer);
    const states = new EventLog<string>();
    informer.onStateChange((state) => states.push(state));
    await informer.start();
    expect(informer.state()).to.equal('served');
    let off = Infinity;
    try {
      // The list succeeded; now only the watch can tell: it answers 404.
      await serve(false);
      await states.find((s) => s === 'notServed', 30_000, 'notServed after the version was turned off');
      off = states.seen.length;
    } finally {
      await serve(true);
    }
    await waitFor(async () => (states.seen.slice(off).includes('served') ? true : undefined), {
      what: 'served again',
      timeoutMs: 30_000,
      intervalMs: 100,
    });
  });
});

/** Resolves once `proxy` has an open watch stream (now, or when the next one is forwarded). */
function watchOpen(proxy: FaultProxy): Promise<void> {
  if (proxy.openWatchCount() > 0) return Promise.resolve();
  return new Promise((resolve) => proxy.events.once('watch', () => resolve()));
}

/** Opens a watch and returns the status plus its first line (a watch answers a stale version with an ERROR event or 410). */
function watchOnce(cp: ControlPlane, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${cp.apiServerUrl}${path}`,
      { ca: cp.caPem, headers: { authorization: `Bearer ${cp.token}` } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          body += d;
          if (body.includes('\n')) {
            req.destroy();
            resolve(`${res.statusCode} ${body}`);
          }
        });
        res.on('end', () => resolve(`${res.statusCode} ${body}`));
      },
    );
    req.once('error', (err) => (req.destroyed ? undefined : reject(err)));
    req.setTimeout(10_000, () => req.destroy(new Error('no answer to the watch in 10 s')));
    req.end();
  });
}
