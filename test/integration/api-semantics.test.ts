// The API server behaviours Perch relies on, checked on the real one: optimistic concurrency,
// the status subresource, garbage collection of owned objects, and room for many Services.
import {
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { expect } from 'chai';
import { fileURLToPath } from 'node:url';
import { apiError } from '../../src/k8s/api-error.js';
import { Informer } from '../../src/k8s/informer.js';
import { installCrds, type ControlPlane } from '../../src/sandbox/control-plane/index.js';
import { sharedControlPlane, testNamespace } from '../support/control-plane.js';
import { EventLog } from '../support/events.js';
import { splitClient, trafficSplit, TS_REF, type TrafficSplit } from '../support/trafficsplit.js';

const WIDGET = { group: 'test.perch.dev', version: 'v1', plural: 'widgets' } as const;
interface Widget extends KubernetesObject {
  spec: { size: number };
  status?: { phase?: string; observedGeneration?: number };
}
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

describe('API server semantics', function () {
  this.timeout(60_000);
  let cp: ControlPlane;
  let kc: KubeConfig;

  before(async () => {
    cp = await sharedControlPlane();
    kc = cp.kubeConfig();
  });

  it('refuses an update carrying a stale resourceVersion with 409 Conflict', async () => {
    const ns = await testNamespace(kc, 'stale-rv');
    const splits = splitClient(kc);
    const created = await splits.create(trafficSplit(ns, 'web', 0));
    const fresh = await splits.replace({ ...created, spec: trafficSplit(ns, 'web', 10).spec });
    expect(fresh.metadata?.resourceVersion).to.not.equal(created.metadata?.resourceVersion);
    try {
      await splits.replace({ ...created, spec: trafficSplit(ns, 'web', 20).spec });
      expect.fail('a replace with a stale resourceVersion must be refused');
    } catch (err) {
      const e = apiError(err);
      expect(e.code).to.equal(409);
      expect(e.kind).to.equal('conflict');
      expect(e.message).to.contain('the object has been modified');
    }
    const now = await splits.get(ns, 'web');
    expect(now.spec.backends).to.deep.equal(trafficSplit(ns, 'web', 10).spec.backends);
  });

  describe('status subresource', () => {
    let api: CustomObjectsApi;
    before(async () => {
      await installCrds(kc, fileURLToPath(new URL('../../../test/fixtures/crds', import.meta.url)));
      api = kc.makeApiClient(CustomObjectsApi);
    });

    it('a status write leaves the spec alone, and a spec write leaves the status alone', async () => {
      const namespace = await testNamespace(kc, 'status-subresource');
      const base = { ...WIDGET, namespace, name: 'w' };
      const created = (await api.createNamespacedCustomObject({
        ...WIDGET,
        namespace,
        body: { apiVersion: 'test.perch.dev/v1', kind: 'Widget', metadata: { name: 'w' }, spec: { size: 1 } },
      })) as Widget;
      expect(created.metadata?.generation).to.equal(1);

      // Through /status: the status changes, the spec in the same body is ignored, the generation stays.
      const afterStatus = (await api.patchNamespacedCustomObjectStatus(
        { ...base, body: { spec: { size: 99 }, status: { phase: 'Ready', observedGeneration: 1 } } },
        mergePatch,
      )) as Widget;
      expect(afterStatus.status).to.deep.equal({ phase: 'Ready', observedGeneration: 1 });
      expect(afterStatus.spec.size).to.equal(1);
      expect(afterStatus.metadata?.generation).to.equal(1);

      // Through the main resource: the spec changes and bumps the generation, the status in the body is ignored.
      const afterSpec = (await api.patchNamespacedCustomObject(
        { ...base, body: { spec: { size: 2 }, status: { phase: 'Overwritten' } } },
        mergePatch,
      )) as Widget;
      expect(afterSpec.spec.size).to.equal(2);
      expect(afterSpec.status?.phase).to.equal('Ready');
      expect(afterSpec.metadata?.generation).to.equal(2);
    });
  });

  it('garbage-collects dependents when their owner is deleted', async () => {
    const ns = await testNamespace(kc, 'garbage-collection');
    const core = kc.makeApiClient(CoreV1Api);
    const owner = await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: 'owner' } },
    });
    const ownerRef = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      name: 'owner',
      uid: owner.metadata!.uid!,
      controller: true,
    };
    const splits = splitClient(kc);
    const owned = trafficSplit(ns, 'owned', 0);
    owned.metadata!.ownerReferences = [ownerRef];
    await splits.create(owned);
    await splits.create(trafficSplit(ns, 'independent', 0));

    const informer = new Informer<TrafficSplit>(kc, { ...TS_REF, namespace: ns });
    const deleted = new EventLog<string>();
    informer.onDelete((ts) => deleted.push(ts.metadata?.name ?? ''));
    await informer.start();
    try {
      await core.deleteNamespacedConfigMap({ namespace: ns, name: 'owner' });
      await deleted.find(
        (n) => n === 'owned',
        30_000,
        'the garbage collector to delete the owned TrafficSplit',
      );
      expect(informer.list(ns).map((t) => t.metadata?.name)).to.deep.equal(['independent']);
    } finally {
      informer.stop();
    }
  });

  it('holds more than 256 Services in one namespace, each with its own cluster IP', async function () {
    // A /24 Service range (the sandbox's old one) is full at about 250: the benchmarks need thousands.
    this.timeout(120_000);
    const ns = await testNamespace(kc, 'many-services');
    const core = kc.makeApiClient(CoreV1Api);
    const count = 300;
    const batch = 25;
    const started = performance.now();
    for (let first = 0; first < count; first += batch) {
      await Promise.all(
        Array.from({ length: Math.min(batch, count - first) }, (_, i) =>
          core.createNamespacedService({
            namespace: ns,
            body: { metadata: { name: `svc-${first + i}` }, spec: { ports: [{ port: 80 }] } },
          }),
        ),
      );
    }
    const seconds = (performance.now() - started) / 1000;
    const list = await core.listNamespacedService({ namespace: ns });
    const ips = new Set(list.items.map((s) => s.spec?.clusterIP));
    expect(list.items).to.have.length(count);
    expect(ips.size).to.equal(count);
    expect([...ips].every((ip) => typeof ip === 'string' && /^10\./.test(ip))).to.equal(true);
    process.stderr.write(
      `      (${count} Services created in ${seconds.toFixed(1)} s, ${batch} at a time)\n`,
    );
  });
});
