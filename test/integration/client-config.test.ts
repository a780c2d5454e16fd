// configureClient on the real API server: the audit log shows perch-controller/<version> on every kind of
// request, a request the server does not answer fails at the timeout, and a fenced KubeConfig writes nothing.
import {
  CoordinationV1Api,
  CoreV1Api,
  KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
  type V1ConfigMap,
} from '@kubernetes/client-node';
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { apiError } from '../../src/k8s/api-error.js';
import { configureClient, FencedWriteError, userAgent, VERSION } from '../../src/k8s/client-config.js';
import { EventRecorder } from '../../src/k8s/events.js';
import { Informer } from '../../src/k8s/informer.js';
import { NO_FAULTS, type FaultProxy } from '../../src/sandbox/faults/proxy.js';
import { repoRoot } from '../../src/sandbox/repo.js';
import { waitFor } from '../../src/sandbox/wait.js';
import {
  readAuditLog,
  sharedAuditLog,
  sharedControlPlane,
  testNamespace,
  type AuditEvent,
} from '../support/control-plane.js';
import { proxyInFront } from '../support/fault-proxy.js';

const kind = (e: AuditEvent) =>
  `${e.verb} ${e.objectRef?.resource ?? ''}${e.objectRef?.subresource ? `/${e.objectRef.subresource}` : ''}`;

describe('API client configuration (user agent, timeouts, write fence)', function () {
  this.timeout(60_000);
  const proxies: FaultProxy[] = [];
  const informers: Informer<V1ConfigMap>[] = [];
  after(async () => {
    for (const i of informers) i.stop();
    for (const p of proxies) await p.close();
  });

  it('sends perch-controller/<version> on a list, a watch, a create, a patch, an Event and a Lease', async () => {
    const cp = await sharedControlPlane();
    const kc = cp.kubeConfig();
    const ns = await testNamespace(kc, 'client-ua');
    // Made before configureClient: clients ask the KubeConfig on each request, so they are covered too.
    const objects = KubernetesObjectApi.makeApiClient(kc);
    const tag = `ua-test-${randomBytes(3).toString('hex')}`;
    configureClient(kc, { userAgent: userAgent(tag) });
    const version = (JSON.parse(readFileSync(`${repoRoot}/package.json`, 'utf8')) as { version: string })
      .version;
    expect(VERSION).to.equal(version);
    expect(userAgent(tag)).to.match(new RegExp(`^perch-controller/${version.replaceAll('.', '\\.')} \\(`));

    const informer = new Informer<V1ConfigMap>(kc, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      plural: 'configmaps',
      namespace: ns,
    });
    informers.push(informer);
    await informer.start();
    await objects.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cm', namespace: ns } });
    await kc
      .makeApiClient(CoreV1Api)
      .patchNamespacedConfigMap(
        { name: 'cm', namespace: ns, body: { data: { k: 'v' } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    await new EventRecorder(kc).record(
      { namespace: ns, name: 'cm', uid: '' },
      'Normal',
      'Tested',
      'user agent test',
    );
    await kc.makeApiClient(CoordinationV1Api).createNamespacedLease({
      namespace: ns,
      body: { metadata: { name: 'lease' }, spec: { holderIdentity: tag } },
    });
    await waitFor(async () => (informer.get('cm', ns)?.data?.k === 'v' ? true : undefined), {
      what: 'the watch delivering the patch',
      intervalMs: 100,
    });

    const auditLog = await sharedAuditLog();
    const wanted = [
      'list configmaps',
      'watch configmaps',
      'create configmaps',
      'patch configmaps',
      'create events',
      'create leases',
    ];
    const ours = await waitFor(
      async () => {
        const found = readAuditLog(auditLog).filter(
          (e) => e.objectRef?.namespace === ns && e.userAgent === userAgent(tag),
        );
        const kinds = new Set(found.map(kind));
        return wanted.every((w) => kinds.has(w)) ? found : undefined;
      },
      { what: `audit events from ${userAgent(tag)} in ${ns}: ${wanted.join(', ')}`, intervalMs: 200 },
    );
    expect(ours.length).to.be.greaterThanOrEqual(wanted.length);
    // The namespace was created before configureClient: a client left alone says something else.
    const before = readAuditLog(auditLog).find(
      (e) => e.verb === 'create' && e.objectRef?.resource === 'namespaces' && e.objectRef?.name === ns,
    );
    expect(before?.userAgent ?? '').to.not.match(/^perch-controller\//);
  });

  it('fails a request the API server does not answer within the timeout, as a transient error', async () => {
    const cp = await sharedControlPlane();
    const ns = await testNamespace(cp.kubeConfig(), 'client-timeout');
    const front = await proxyInFront(cp, { ...NO_FAULTS, latencyMs: 3000 });
    proxies.push(front.proxy);
    const kc = configureClient(front.kubeConfig, { requestTimeoutMs: 400 });
    const started = performance.now();
    const err: unknown = await kc
      .makeApiClient(CoreV1Api)
      .listNamespacedConfigMap({ namespace: ns })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    const took = performance.now() - started;
    expect(err, 'the list should have timed out').to.not.equal(undefined);
    expect(apiError(err).kind).to.equal('transient');
    expect(took).to.be.within(350, 2500);
  });

  it('under a write fence sends reads and Lease writes, refuses other writes, and writes again once let', async () => {
    const cp = await sharedControlPlane();
    const kc = cp.kubeConfig();
    const ns = await testNamespace(kc, 'client-fence');
    let refusal: string | undefined = 'this process does not hold the Lease';
    configureClient(kc, { writeFence: () => refusal });
    const core = kc.makeApiClient(CoreV1Api);
    const create = (name: string) =>
      core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name } } });

    const err: unknown = await create('fenced').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(FencedWriteError);
    expect((err as Error).message).to.contain('this process does not hold the Lease');
    expect(
      (await core.listNamespacedConfigMap({ namespace: ns })).items.map((c) => c.metadata?.name),
    ).to.not.include('fenced');
    await kc.makeApiClient(CoordinationV1Api).createNamespacedLease({
      namespace: ns,
      body: { metadata: { name: 'lease' }, spec: { holderIdentity: 'me' } },
    });

    refusal = undefined;
    await create('let-through');
    const names = (await core.listNamespacedConfigMap({ namespace: ns })).items.map((c) => c.metadata?.name);
    expect(names).to.include('let-through').and.not.include('fenced');
  });
});
