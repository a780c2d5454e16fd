// The TrafficSplit router, the Rollout writer and the Event recorder against the suite's real API server.
// Requests are counted at a fault proxy (no faults) in front of it: a write Perch should not send is visible.
import {
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type CoreV1Event,
  type KubeConfig,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { expect } from 'chai';
import type { Rollout, RolloutStatus, SmiApiVersion } from '../../src/api/v1alpha1.js';
import { EventRecorder, rolloutRef } from '../../src/k8s/events.js';
import { RolloutWriter } from '../../src/k8s/rollout-writer.js';
import { readSplit, TrafficRouter, type SplitTarget } from '../../src/k8s/trafficsplit/router.js';
import type { ControlPlane } from '../../src/sandbox/control-plane/index.js';
import type { FaultRecord } from '../../src/sandbox/faults/proxy.js';
import { sharedControlPlane, testNamespace } from '../support/control-plane.js';
import { proxyInFront, type ProxyInFront } from '../support/fault-proxy.js';
import { kubectlOk } from '../support/kubectl.js';

interface AnySplit extends KubernetesObject {
  spec: {
    service: string;
    backends: { service: string; weight: number | string }[];
    matches?: { kind: string; name: string; apiGroup?: string }[];
  };
}

const VERSIONS = ['v1alpha1', 'v1alpha2', 'v1alpha3', 'v1alpha4'] as const;
const ROLLOUTS = { group: 'perch.dev', version: 'v1alpha1', plural: 'rollouts' } as const;
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const MATCHES = [
  { kind: 'HTTPRouteGroup', name: 'api-routes', apiGroup: 'specs.smi-spec.io' },
  { kind: 'TCPRoute', name: 'tcp-routes' },
];

describe('TrafficSplit router, Rollout writer and Events on the real API server', function () {
  this.timeout(60_000);
  let cp: ControlPlane;
  let kc: KubeConfig;
  let front: ProxyInFront;
  let custom: CustomObjectsApi;

  before(async () => {
    cp = await sharedControlPlane();
    kc = cp.kubeConfig();
    front = await proxyInFront(cp);
    custom = kc.makeApiClient(CustomObjectsApi);
  });

  after(async () => {
    await front?.proxy.close();
  });

  /** What reaches the API server (through the proxy) while `fn` runs. */
  async function requestsDuring<T>(fn: () => Promise<T>): Promise<{ result: T; requests: FaultRecord[] }> {
    const start = front.proxy.records().length;
    const result = await fn();
    return { result, requests: front.proxy.records().slice(start) };
  }

  /** A namespace with the Services stable, canary and root, and a Rollout "web" to own things. */
  async function world(prefix: string, version: (typeof VERSIONS)[number] = 'v1alpha2') {
    const namespace = await testNamespace(kc, prefix);
    const core = kc.makeApiClient(CoreV1Api);
    for (const name of ['stable', 'canary', 'root']) {
      // Headless: the suite's service IP range is small, and nothing here needs a cluster IP.
      await core.createNamespacedService({
        namespace,
        body: {
          metadata: { name },
          spec: { clusterIP: 'None', ports: [{ port: 80 }], selector: { app: name } },
        },
      });
    }
    const rollout = (await custom.createNamespacedCustomObject({
      ...ROLLOUTS,
      namespace,
      body: {
        apiVersion: 'perch.dev/v1alpha1',
        kind: 'Rollout',
        metadata: { name: 'web' },
        spec: {
          service: 'root',
          stableService: 'stable',
          canaryService: 'canary',
          steps: [{ setWeight: 10 }],
        },
      },
    })) as Rollout;
    const target: SplitTarget = {
      kind: 'TrafficSplit',
      namespace,
      name: 'web',
      rootService: 'root',
      stableService: 'stable',
      canaryService: 'canary',
      apiVersion: `split.smi-spec.io/${version}` as SmiApiVersion,
      rollout: { name: 'web', uid: rollout.metadata!.uid! },
    };
    const ts = { group: 'split.smi-spec.io', version, plural: 'trafficsplits', namespace };
    return {
      namespace,
      rollout,
      target,
      getSplit: (name = 'web') => custom.getNamespacedCustomObject({ ...ts, name }) as Promise<AnySplit>,
      /** Someone else's edit of the split `web`: a merge patch, or a JSON patch when given an array. */
      editSplit: (body: object) =>
        custom.patchNamespacedCustomObject(
          { ...ts, name: 'web', body },
          Array.isArray(body) ? setHeaderOptions('Content-Type', PatchStrategy.JsonPatch) : mergePatch,
        ),
      createSplit: (body: AnySplit) =>
        custom.createNamespacedCustomObject({ ...ts, body }) as Promise<AnySplit>,
      getRollout: () =>
        custom.getNamespacedCustomObject({ ...ROLLOUTS, namespace, name: 'web' }) as Promise<Rollout>,
    };
  }

  describe('TrafficRouter', () => {
    let router: TrafficRouter;
    before(() => {
      router = new TrafficRouter(front.kubeConfig);
    });

    const steps: [number, { service: string; weight: number }[]][] = [
      [
        10,
        [
          { service: 'stable', weight: 90 },
          { service: 'canary', weight: 10 },
        ],
      ],
      [
        50,
        [
          { service: 'stable', weight: 50 },
          { service: 'canary', weight: 50 },
        ],
      ],
      [100, [{ service: 'canary', weight: 100 }]],
    ];

    for (const version of VERSIONS) {
      it(`${version}: creates the split at stable 100, then routes 90/10, 50/50 and canary 100`, async () => {
        const w = await world(`router-${version}`, version);
        const fqdn = `root.${w.namespace}.svc.cluster.local`;

        const created = await requestsDuring(() => router.setWeights(w.target, 0, undefined));
        expect(created.result).to.include({ ok: true, outcome: 'created' });
        expect(created.requests.map((r) => r.method)).to.deep.equal(['POST']);
        let ts = await w.getSplit();
        // The object as made, so a write that follows in the same reconcile carries its resourceVersion.
        expect(created.result.ok && created.result.created?.metadata?.resourceVersion).to.equal(
          ts.metadata?.resourceVersion,
        );
        expect(ts.apiVersion).to.equal(`split.smi-spec.io/${version}`);
        expect(ts.spec).to.deep.equal({ service: fqdn, backends: [{ service: 'stable', weight: 100 }] });
        expect(ts.metadata?.ownerReferences).to.deep.equal([
          {
            apiVersion: 'perch.dev/v1alpha1',
            kind: 'Rollout',
            name: 'web',
            uid: w.target.rollout.uid,
            controller: true,
            blockOwnerDeletion: true,
          },
        ]);
        expect(ts.metadata?.annotations).to.deep.equal({
          'perch.dev/managed-by': 'web',
          'perch.dev/canary-weight': '0',
        });
        expect(readSplit(ts, w.target)).to.deep.equal({
          canaryWeight: 0,
          asPlanned: true,
          lastWritten: 0,
          owned: 'owner',
        });

        for (const [weight, backends] of steps) {
          const patched = await requestsDuring(() => router.setWeights(w.target, weight, ts));
          expect(patched.result, `canary ${weight}`).to.deep.equal({ ok: true, outcome: 'patched' });
          expect(patched.requests.map((r) => [r.method, r.path.split('?')[0]])).to.deep.equal([
            ['PATCH', `/apis/split.smi-spec.io/${version}/namespaces/${w.namespace}/trafficsplits/web`],
          ]);
          ts = await w.getSplit();
          expect(ts.spec).to.deep.equal({ service: fqdn, backends });
          expect(readSplit(ts, w.target)).to.deep.equal({
            asPlanned: true,
            canaryWeight: weight,
            lastWritten: weight,
            owned: 'owner',
          });
        }
      });
    }

    for (const version of ['v1alpha3', 'v1alpha4'] as const) {
      it(`${version}: adopts a split annotated managed-by and keeps its route matches through every patch`, async () => {
        const w = await world(`router-matches-${version}`, version);
        await w.createSplit({
          apiVersion: `split.smi-spec.io/${version}`,
          kind: 'TrafficSplit',
          metadata: { name: 'web', annotations: { 'perch.dev/managed-by': 'web', team: 'checkout' } },
          spec: { service: 'root', backends: [{ service: 'stable', weight: 100 }], matches: MATCHES },
        });
        let ts = await w.getSplit();
        expect(readSplit(ts, w.target)).to.include({ canaryWeight: 0, owned: 'annotated' });

        for (const [weight, backends] of steps) {
          const r = await router.setWeights(w.target, weight, ts);
          expect(r, `canary ${weight}`).to.deep.equal({ ok: true, outcome: 'patched' });
          ts = await w.getSplit();
          expect(ts.spec.backends).to.deep.equal(backends);
          expect(ts.spec.matches, `matches after canary ${weight}`).to.deep.equal(MATCHES);
          expect(ts.spec.service).to.equal(`root.${w.namespace}.svc.cluster.local`);
        }
        // Adopted, not taken over: no ownerReference (deleting the Rollout must not delete the user's split).
        expect(ts.metadata?.ownerReferences).to.equal(undefined);
        expect(ts.metadata?.annotations).to.deep.equal({
          'perch.dev/managed-by': 'web',
          team: 'checkout',
          'perch.dev/canary-weight': '100',
        });
      });
    }

    it('v1alpha1: reads quantity weights and rewrites them as whole numbers totalling 100', async () => {
      const w = await world('router-quantities', 'v1alpha1');
      await w.createSplit({
        apiVersion: 'split.smi-spec.io/v1alpha1',
        kind: 'TrafficSplit',
        metadata: { name: 'web', annotations: { 'perch.dev/managed-by': 'web' } },
        spec: {
          service: `root.${w.namespace}.svc.cluster.local`,
          backends: [
            { service: 'stable', weight: '1500m' },
            { service: 'canary', weight: '500m' },
          ],
        },
      });
      let ts = await w.getSplit();
      expect(readSplit(ts, w.target)).to.include({ canaryWeight: 25, owned: 'annotated' });
      expect(await router.setWeights(w.target, 25, ts)).to.deep.equal({ ok: true, outcome: 'patched' });
      ts = await w.getSplit();
      expect(ts.spec.backends).to.deep.equal([
        { service: 'stable', weight: 75 },
        { service: 'canary', weight: 25 },
      ]);
    });

    it("sends nothing at all when the backends already are what they should be ('unchanged')", async () => {
      const w = await world('router-unchanged');
      expect(await router.setWeights(w.target, 0)).to.include({ ok: true, outcome: 'created' });
      expect(await router.setWeights(w.target, 50, await w.getSplit())).to.deep.equal({
        ok: true,
        outcome: 'patched',
      });
      const ts = await w.getSplit();

      for (let i = 0; i < 3; i++) {
        const again = await requestsDuring(() => router.setWeights(w.target, 50, ts));
        expect(again.result).to.deep.equal({ ok: true, outcome: 'unchanged' });
        expect(again.requests, 'requests for an unchanged split').to.deep.equal([]);
      }
      // Nor did any write for the object reach the server since the one patch.
      const splitPath = `/apis/split.smi-spec.io/v1alpha2/namespaces/${w.namespace}/trafficsplits/web`;
      const writes = front.proxy
        .records()
        .filter((r) => WRITES.has(r.method) && r.path.split('?')[0] === splitPath);
      expect(writes.map((r) => r.method)).to.deep.equal(['PATCH']);
      expect((await w.getSplit()).metadata?.resourceVersion).to.equal(ts.metadata?.resourceVersion);
    });

    it('refuses a foreign TrafficSplit with NotOwned and leaves it untouched', async () => {
      const w = await world('router-foreign');
      const base = (name: string, annotations?: Record<string, string>): AnySplit => ({
        apiVersion: 'split.smi-spec.io/v1alpha2',
        kind: 'TrafficSplit',
        metadata: { name, annotations },
        spec: { service: 'root', backends: [{ service: 'stable', weight: 100 }] },
      });
      await w.createSplit(base('web'));
      await w.createSplit(base('other', { 'perch.dev/managed-by': 'another-rollout' }));

      for (const name of ['web', 'other']) {
        const ts = await w.getSplit(name);
        const target = { ...w.target, name };
        expect(readSplit(ts, target).owned).to.equal('foreign');
        const refused = await requestsDuring(() => router.setWeights(target, 10, ts));
        expect(refused.result.ok).to.equal(false);
        expect(refused.result).to.have.nested.property('error.kind', 'notOwned');
        expect(refused.result).to.have.nested.property('error.reason', 'NotOwned');
        expect(refused.requests).to.deep.equal([]);
        const after = await w.getSplit(name);
        expect(after.metadata?.resourceVersion).to.equal(ts.metadata?.resourceVersion);
        expect(after.spec).to.deep.equal(ts.spec);
      }
    });

    it('classifies a create that finds the split already there as a conflict (the cache was behind)', async () => {
      const w = await world('router-conflict');
      expect(await router.setWeights(w.target, 0)).to.include({ ok: true, outcome: 'created' });
      const again = await router.setWeights(w.target, 10);
      expect(again.ok).to.equal(false);
      expect(again).to.have.nested.property('error.kind', 'conflict');
      expect(again).to.have.nested.property('error.code', 409);
    });

    it('patches with the resourceVersion it read: a change it has not seen answers a conflict, untouched', async () => {
      const w = await world('router-precondition');
      await router.setWeights(w.target, 0);
      const read = await w.getSplit();
      // Someone else's edit after Perch's read.
      await w.editSplit({ metadata: { labels: { owner: 'someone-else' } } });
      const r = await router.setWeights(w.target, 10, read);
      expect(r).to.have.nested.property('error.kind', 'conflict');
      expect((await w.getSplit()).spec.backends).to.deep.equal([{ service: 'stable', weight: 100 }]);
      const fresh = await w.getSplit();
      expect(await router.setWeights(w.target, 10, fresh)).to.deep.equal({ ok: true, outcome: 'patched' });
    });

    it('releases a split: its ownerReference gone, perch.dev/released-from set, weights and other references kept', async () => {
      const w = await world('router-release');
      await router.setWeights(w.target, 0);
      await router.setWeights(w.target, 100, await w.getSplit());
      // Another owner that exists (the garbage collector drops references to owners that do not).
      const keeper = await kc
        .makeApiClient(CoreV1Api)
        .createNamespacedConfigMap({ namespace: w.namespace, body: { metadata: { name: 'keeper' } } });
      const other = { apiVersion: 'v1', kind: 'ConfigMap', name: 'keeper', uid: keeper.metadata!.uid! };
      await w.editSplit([{ op: 'add', path: '/metadata/ownerReferences/0', value: other }]);
      const before = await w.getSplit();
      expect(await router.release(w.target, before)).to.deep.equal({ ok: true, outcome: 'patched' });
      const after = await w.getSplit();
      expect(after.metadata?.ownerReferences).to.deep.equal([other]);
      expect(after.metadata?.annotations?.['perch.dev/released-from']).to.equal('web');
      expect(after.metadata?.annotations?.['perch.dev/managed-by']).to.equal('web');
      expect(after.spec.backends).to.deep.equal([{ service: 'canary', weight: 100 }]);
      // Released already: nothing to send. From a stale read whose reference index moved: a conflict.
      const noop = await requestsDuring(() => router.release(w.target, after));
      expect(noop.result).to.deep.equal({ ok: true, outcome: 'unchanged' });
      expect(noop.requests).to.deep.equal([]);
      const stale = structuredClone(before);
      stale.metadata!.ownerReferences = [...stale.metadata!.ownerReferences!].reverse();
      expect(await router.release(w.target, stale)).to.have.nested.property('error.kind', 'conflict');
    });

    it('refuses an invalid target before sending anything', async () => {
      const w = await world('router-invalid');
      const bad = { ...w.target, rootService: `root.elsewhere.svc.cluster.local` };
      const r = await requestsDuring(() => router.setWeights(bad, 10));
      expect(r.result).to.have.nested.property('error.kind', 'invalid');
      expect(r.requests).to.deep.equal([]);
      const halfway = await router.setWeights(w.target, 10.5);
      expect(halfway).to.have.nested.property('error.kind', 'invalid');
    });
  });

  describe('RolloutWriter', () => {
    let writer: RolloutWriter;
    before(() => {
      writer = new RolloutWriter(front.kubeConfig);
    });

    it('patchStatus sends only the diff, removes fields, and sends nothing when nothing changed', async () => {
      const w = await world('writer-status');
      const first: RolloutStatus = {
        observedGeneration: 1,
        phase: 'Paused',
        pauseReason: 'Manual',
        canaryWeight: 10,
        stableWeight: 90,
        step: '1/1',
      };
      const firstWrite = await writer.patchStatus(w.namespace, 'web', undefined, first);
      expect(firstWrite.ok && firstWrite.value).to.equal((await w.getRollout()).metadata?.resourceVersion);
      expect((await w.getRollout()).status).to.deep.equal(first);

      // Someone else's field, in neither `before` nor `after`: a diff leaves it, a whole-status write would not.
      await custom.patchNamespacedCustomObjectStatus(
        {
          ...ROLLOUTS,
          namespace: w.namespace,
          name: 'web',
          body: { status: { message: 'written elsewhere' } },
        },
        mergePatch,
      );
      const second: RolloutStatus = {
        ...first,
        phase: 'Progressing',
        pauseReason: undefined,
        canaryWeight: 20,
      };
      const sent = await requestsDuring(() => writer.patchStatus(w.namespace, 'web', first, second));
      expect(sent.result.ok && typeof sent.result.value).to.equal('string');
      expect(sent.requests.map((r) => [r.method, r.path.split('?')[0]])).to.deep.equal([
        ['PATCH', `/apis/perch.dev/v1alpha1/namespaces/${w.namespace}/rollouts/web/status`],
      ]);
      const now = await w.getRollout();
      expect(now.status).to.deep.equal({
        observedGeneration: 1,
        phase: 'Progressing',
        canaryWeight: 20,
        stableWeight: 90,
        step: '1/1',
        message: 'written elsewhere',
      });
      expect(now.metadata?.generation).to.equal(1);

      const same = await requestsDuring(() =>
        writer.patchStatus(w.namespace, 'web', second, structuredClone(second)),
      );
      expect(same.result).to.deep.equal({ ok: true, value: undefined });
      expect(same.requests).to.deep.equal([]);
    });

    it('patchStatus with a stale resourceVersion is refused as a conflict', async () => {
      const w = await world('writer-status-rv');
      const stale = w.rollout.metadata!.resourceVersion!;
      await writer.patchStatus(w.namespace, 'web', undefined, { phase: 'Pending' });
      const r = await writer.patchStatus(
        w.namespace,
        'web',
        undefined,
        { phase: 'Progressing' },
        { resourceVersion: stale },
      );
      expect(r).to.have.nested.property('error.kind', 'conflict');
      expect((await w.getRollout()).status?.phase).to.equal('Pending');
    });

    it('clearAnnotations removes just the named annotations', async () => {
      const w = await world('writer-annotations');
      await custom.patchNamespacedCustomObject(
        {
          ...ROLLOUTS,
          namespace: w.namespace,
          name: 'web',
          body: {
            metadata: { annotations: { 'perch.dev/resume': 'true', 'perch.dev/promote': 'true', team: 'a' } },
          },
        },
        mergePatch,
      );
      const r = await writer.clearAnnotations(w.namespace, 'web', ['perch.dev/resume', 'perch.dev/promote']);
      const now = await w.getRollout();
      expect(r).to.deep.equal({ ok: true, value: now.metadata?.resourceVersion });
      expect(now.metadata?.annotations).to.deep.equal({ team: 'a' });
      expect(now.metadata?.generation).to.equal(1);
      const none = await requestsDuring(() => writer.clearAnnotations(w.namespace, 'web', []));
      expect(none.result).to.deep.equal({ ok: true, value: undefined });
      expect(none.requests).to.deep.equal([]);
      // A one-shot someone set to something else since is not removed unseen: a conflict, nothing changed.
      await custom.patchNamespacedCustomObject(
        {
          ...ROLLOUTS,
          namespace: w.namespace,
          name: 'web',
          body: { metadata: { annotations: { 'perch.dev/abort': 'later' } } },
        },
        mergePatch,
      );
      const changed = await writer.clearAnnotations(w.namespace, 'web', ['perch.dev/abort']);
      expect(changed).to.have.nested.property('error.kind', 'conflict');
      expect((await w.getRollout()).metadata?.annotations?.['perch.dev/abort']).to.equal('later');
    });

    it("adds and removes perch.dev/traffic, and never loses another writer's finalizer", async () => {
      const w = await world('writer-finalizer');
      const finalizersNow = async () => (await w.getRollout()).metadata?.finalizers;
      expect(await writer.addFinalizer(w.rollout)).to.deep.equal({ ok: true, value: true });
      expect(await finalizersNow()).to.deep.equal(['perch.dev/traffic']);
      const added = await w.getRollout();
      const noop = await requestsDuring(() => writer.addFinalizer(added));
      expect(noop.result).to.deep.equal({ ok: true, value: false });
      expect(noop.requests).to.deep.equal([]);

      // Another controller adds its finalizer; our cached copy (`added`) has not seen it.
      await custom.patchNamespacedCustomObject(
        {
          ...ROLLOUTS,
          namespace: w.namespace,
          name: 'web',
          body: [{ op: 'add', path: '/metadata/finalizers/0', value: 'example.com/other' }],
        },
        setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
      );
      const stale = await writer.removeFinalizer(added);
      expect(stale.ok).to.equal(false);
      expect(stale).to.have.nested.property('error.kind', 'conflict');
      expect(await finalizersNow()).to.deep.equal(['example.com/other', 'perch.dev/traffic']);
      const staleAdd = await writer.addFinalizer(w.rollout);
      expect(staleAdd).to.have.nested.property('error.kind', 'conflict');

      const fresh = await w.getRollout();
      expect(await writer.removeFinalizer(fresh)).to.deep.equal({ ok: true, value: true });
      expect(await finalizersNow()).to.deep.equal(['example.com/other']);
      expect(await writer.removeFinalizer(await w.getRollout())).to.deep.equal({ ok: true, value: false });
      expect(await writer.addFinalizer(await w.getRollout())).to.deep.equal({ ok: true, value: true });
      expect(await finalizersNow()).to.deep.equal(['example.com/other', 'perch.dev/traffic']);

      // Leave nothing that would hold the namespace's deletion.
      await custom.patchNamespacedCustomObject(
        { ...ROLLOUTS, namespace: w.namespace, name: 'web', body: { metadata: { finalizers: null } } },
        mergePatch,
      );
    });
  });

  describe('EventRecorder', () => {
    const eventsOf = async (namespace: string, name: string) =>
      (
        await kc
          .makeApiClient(CoreV1Api)
          .listNamespacedEvent({ namespace, fieldSelector: `involvedObject.name=${name}` })
      ).items.sort((a: CoreV1Event, b: CoreV1Event) => (a.reason ?? '').localeCompare(b.reason ?? ''));

    it('writes Events on the Rollout that kubectl shows, and counts identical repeats on one Event', async () => {
      const w = await world('events');
      const errors: unknown[] = [];
      const recorder = new EventRecorder(front.kubeConfig, {
        onError: (e) => errors.push(e),
        instance: 'test-host',
      });
      const ref = rolloutRef(w.rollout);

      await recorder.record(ref, 'Normal', 'RunStarted', 'run started for generation 1');
      const repeat = await requestsDuring(() =>
        recorder.record(ref, 'Normal', 'RunStarted', 'run started for generation 1'),
      );
      expect(repeat.requests.map((r) => r.method)).to.deep.equal(['PATCH']);
      // Concurrent repeats queue behind each other instead of racing to create.
      await Promise.all(
        [1, 2].map(() => recorder.record(ref, 'Normal', 'RunStarted', 'run started for generation 1')),
      );
      await recorder.record(ref, 'Warning', 'TrafficDrift', 'TrafficSplit weights changed outside Perch');
      expect(errors).to.deep.equal([]);

      const events = await eventsOf(w.namespace, 'web');
      expect(events.map((e) => [e.reason, e.type, e.count])).to.deep.equal([
        ['RunStarted', 'Normal', 4],
        ['TrafficDrift', 'Warning', 1],
      ]);
      const started = events[0]!;
      expect(started.involvedObject).to.deep.include({
        apiVersion: 'perch.dev/v1alpha1',
        kind: 'Rollout',
        namespace: w.namespace,
        name: 'web',
        uid: w.target.rollout.uid,
      });
      expect(started.message).to.equal('run started for generation 1');
      expect(started.source).to.deep.equal({ component: 'perch-controller', host: 'test-host' });
      expect(started.reportingComponent).to.equal('perch.dev/controller');
      expect(started.firstTimestamp).to.be.instanceOf(Date);
      expect(started.lastTimestamp!.getTime()).to.be.at.least(started.firstTimestamp!.getTime());

      const listed = JSON.parse(
        await kubectlOk(cp.kubeconfig, [
          'get',
          'events',
          '-n',
          w.namespace,
          '--field-selector',
          'involvedObject.name=web',
          '-o',
          'json',
        ]),
      ) as { items: CoreV1Event[] };
      expect(listed.items.map((e) => e.reason).sort()).to.deep.equal(['RunStarted', 'TrafficDrift']);
      const described = await kubectlOk(cp.kubeconfig, ['describe', 'rollout', 'web', '-n', w.namespace]);
      expect(described).to.match(/Normal\s+RunStarted\s+.*\(x4 over .*\)\s+perch-controller\s+run started/);
      expect(described).to.match(
        /Warning\s+TrafficDrift\s+.*perch-controller\s+TrafficSplit weights changed/,
      );
    });

    it('starts a new Event once the window has passed', async () => {
      const w = await world('events-window');
      let clock = Date.parse('2030-01-01T00:00:00Z');
      const recorder = new EventRecorder(kc, { windowMs: 60_000, now: () => clock });
      const ref = { namespace: w.namespace, name: 'web', uid: w.target.rollout.uid };
      await recorder.record(ref, 'Normal', 'Paused', 'paused by a person');
      clock += 30_000;
      await recorder.record(ref, 'Normal', 'Paused', 'paused by a person');
      clock += 61_000;
      await recorder.record(ref, 'Normal', 'Paused', 'paused by a person');
      const counts = (await eventsOf(w.namespace, 'web')).map((e) => e.count).sort();
      expect(counts).to.deep.equal([1, 2]);
    });

    it('never throws into the caller: a failed write goes to onError', async () => {
      const errors: { kind: string; reason: string }[] = [];
      const recorder = new EventRecorder(kc, {
        onError: (e, event) => errors.push({ kind: e.kind, reason: event.reason }),
      });
      const ref = { namespace: 'no-such-namespace-for-events', name: 'web', uid: 'u' };
      await recorder.record(ref, 'Normal', 'RunStarted', 'never written');
      expect(errors).to.deep.equal([{ kind: 'notFound', reason: 'RunStarted' }]);
      const throwing = new EventRecorder(kc, {
        onError: () => {
          throw new Error('logger down');
        },
      });
      await throwing.record(ref, 'Normal', 'RunStarted', 'never written');
    });
  });
});
