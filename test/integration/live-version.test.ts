// Trust at the edges of a run (issue 14), end to end: the live-version rule on an edit and on deletion,
// a TrafficSplit version the cluster does not serve, and a weight an admission webhook always refuses.
import {
  AdmissionregistrationV1Api,
  ApiextensionsV1Api,
  PatchStrategy,
  setHeaderOptions,
  type V1CustomResourceDefinition,
} from '@kubernetes/client-node';
import { expect } from 'chai';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Rollout } from '../../src/api/v1alpha1.js';
import { servingKeyPair } from '../../src/sandbox/control-plane/index.js';
import { waitFor } from '../../src/sandbox/wait.js';
import { sharedControlPlane } from '../support/control-plane.js';
import { useController } from '../support/controller-suite.js';
import { together } from '../support/together.js';
import { analysis, canaryTraffic, type RolloutEnv } from '../support/rollout-env.js';

const condition = (r: Rollout, type: string) => r.status?.conditions?.find((c) => c.type === type);
const HEALTHY_RUN = {
  steps: [{ setWeight: 50 }, { analysis: { iterations: 1 } }, { setWeight: 100 }],
  analysis: analysis(),
};

describe('the live version (sandbox + real Prometheus)', function () {
  this.timeout(180_000);
  const suite = useController();

  // Side by side: they share nothing but the servers, and mostly wait on 1 s checks and the deadline. The
  // version the cluster stops serving comes after them, alone: it changes a CRD every test reads.
  together((test) => {
    test('a threshold edit after Succeeded keeps the split at canary 100 and starts no run', async () => {
      const e = await suite.env('edit-after-success');
      await canaryTraffic(e);
      await e.createRollout('web', HEALTHY_RUN);
      await e.phase('web', 'Succeeded');
      expect(e.weights('web')).to.deep.equal([0, 50, 100]);
      await e.patchSpec('web', {
        analysis: analysis({
          metrics: [
            {
              name: 'request-success-rate',
              query: analysis().metrics[0]!.query,
              thresholdRange: { min: 99.5 },
            },
          ],
        }),
      });
      const seen = await e.until('web', (r) => r.status?.observedGeneration === 2, 'generation 2 observed');
      expect(seen.status?.phase).to.equal('Succeeded');
      await e.eventsUntil('web', 'SpecUpdated');
      const again = await e.get('web');
      expect(again.status?.phase).to.equal('Succeeded');
      expect(again.status?.canaryWeight).to.equal(100);
      expect(e.weights('web'), 'the recorded split never left canary 100').to.deep.equal([0, 50, 100]);
      expect((await e.events('web')).filter((ev) => ev.reason === 'RunStarted')).to.have.length(1);
    });

    test('deleting a Succeeded Rollout leaves the split at canary 100, released, after the garbage collector acted', async () => {
      const e = await suite.env('delete-after-success');
      await canaryTraffic(e);
      await e.createRollout('web', HEALTHY_RUN);
      await e.phase('web', 'Succeeded');
      await e.deleteAndAwaitGarbageCollector('web');
      const split = await e.route('web');
      expect(split, 'the TrafficSplit outlives its Rollout').to.not.equal(undefined);
      expect((split as { spec?: { backends?: unknown } }).spec?.backends).to.deep.equal([
        { service: 'web-v2', weight: 100 },
      ]);
      expect(split!.metadata?.ownerReferences ?? []).to.deep.equal([]);
      expect(split!.metadata?.annotations?.['perch.dev/released-from']).to.equal('web');
      expect(e.weights('web')).to.deep.equal([0, 50, 100]);
    });

    test('a TrafficSplit patch an admission webhook always refuses ends the run Failed after the deadline', async () => {
      const cp = await sharedControlPlane();
      const e = await suite.env('webhook-refuses');
      await canaryTraffic(e);
      const webhook = await startDenyingWebhook(cp.dataDir);
      const admission = cp.kubeConfig().makeApiClient(AdmissionregistrationV1Api);
      const config = `perch-test-deny-${e.ns}`;
      await admission.createValidatingWebhookConfiguration({
        body: {
          metadata: { name: config },
          webhooks: [
            {
              name: 'deny-trafficsplit-updates.perch.test',
              admissionReviewVersions: ['v1'],
              sideEffects: 'None',
              failurePolicy: 'Fail',
              timeoutSeconds: 5,
              clientConfig: {
                url: `https://127.0.0.1:${webhook.port}/validate`,
                caBundle: Buffer.from(servingKeyPair(cp.dataDir).certPem).toString('base64'),
              },
              namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': e.ns } },
              rules: [
                {
                  apiGroups: ['split.smi-spec.io'],
                  apiVersions: ['*'],
                  operations: ['UPDATE'],
                  resources: ['trafficsplits'],
                },
              ],
            },
          ],
        },
      });
      try {
        // The configuration takes effect asynchronously: wait until an UPDATE is refused.
        await awaitWebhook(e);
        await e.createRollout('web', { ...HEALTHY_RUN, progressDeadlineSeconds: 8 });
        const refused = await e.until(
          'web',
          (r) => condition(r, 'TrafficRouted')?.reason === 'WriteRefused',
          'TrafficRouted=False WriteRefused',
        );
        expect(condition(refused, 'TrafficRouted')?.message).to.contain('denied the request');
        const failed = await e.phase('web', 'Failed', 60_000);
        expect(failed.status?.rollback?.reason).to.equal('ProgressDeadlineExceeded');
        expect(failed.status?.message).to.contain('canary 50% never routed');
        expect(e.weights('web'), 'the split never left stable 100').to.deep.equal([0]);
        const events = await e.eventsUntil('web', 'TrafficRefused');
        expect(events.filter((ev) => ev.reason === 'TrafficRefused').length).to.be.at.least(1);
      } finally {
        await admission.deleteValidatingWebhookConfiguration({ name: config });
        await webhook.close();
      }
    });
  });

  it('a v1alpha4 Rollout on a cluster serving only v1alpha2 is reported NotServed while another runs to Succeeded', async () => {
    const cp = await sharedControlPlane();
    const ext = cp.kubeConfig().makeApiClient(ApiextensionsV1Api);
    const name = 'trafficsplits.split.smi-spec.io';
    const original = await ext.readCustomResourceDefinition({ name });
    const only = (crd: V1CustomResourceDefinition, served: (v: string) => boolean) => [
      ...crd.spec.versions.map((v, i) => ({
        op: 'replace',
        path: `/spec/versions/${i}/served`,
        value: served(v.name),
      })),
    ];
    const patchVersions = (ops: object[]) =>
      ext.patchCustomResourceDefinition(
        { name, body: ops },
        setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
      );
    await patchVersions(only(original, (v) => v === 'v1alpha2'));
    try {
      const e = await suite.env('not-served');
      await canaryTraffic(e);
      await e.createRollout('old-mesh', {
        ...HEALTHY_RUN,
        trafficRouting: { smi: { trafficSplitName: 'old-mesh', apiVersion: 'split.smi-spec.io/v1alpha4' } },
      });
      await e.createRollout('web', HEALTHY_RUN);
      const reported = await e.until(
        'old-mesh',
        (r) => condition(r, 'TrafficRouted')?.reason === 'NotServed',
        'TrafficRouted=False NotServed',
      );
      expect(reported.status?.phase).to.equal('Invalid');
      expect(condition(reported, 'TrafficRouted')).to.include({ status: 'False', reason: 'NotServed' });
      expect(condition(reported, 'TrafficRouted')?.message).to.contain('split.smi-spec.io/v1alpha4');
      expect(condition(reported, 'Valid')).to.include({ status: 'False', reason: 'NotServed' });
      expect(reported.status?.observedGeneration).to.equal(1);
      await e.phase('web', 'Succeeded');
      expect(await e.route('old-mesh')).to.equal(undefined);
      // Served again: the same Rollout becomes valid and runs, with no restart of the controller.
      await patchVersions(only(original, (v) => v === 'v1alpha2' || v === 'v1alpha4'));
      await e.phase('old-mesh', 'Succeeded');
    } finally {
      await patchVersions(only(original, () => true));
    }
  });
});

/** Until the webhook configuration is in effect: an UPDATE of a probe TrafficSplit is refused. */
async function awaitWebhook(e: RolloutEnv): Promise<void> {
  const split = { group: 'split.smi-spec.io', version: 'v1alpha2', plural: 'trafficsplits', namespace: e.ns };
  await e.api.createNamespacedCustomObject({
    ...split,
    body: {
      apiVersion: 'split.smi-spec.io/v1alpha2',
      kind: 'TrafficSplit',
      metadata: { name: 'probe' },
      spec: { service: 'web', backends: [{ service: 'web-v1', weight: 100 }] },
    },
  });
  let n = 0;
  await waitFor(
    () =>
      e.api
        .patchNamespacedCustomObject(
          { ...split, name: 'probe', body: { metadata: { labels: { probe: String(++n) } } } },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        )
        .then(
          () => undefined,
          (err: { body?: unknown }) => (String(err.body).includes('frozen') ? true : undefined),
        ),
    { what: 'the admission webhook in effect', timeoutMs: 30_000, intervalMs: 250 },
  );
}

/** An HTTPS admission webhook on loopback that denies every request, with the API server's own key pair. */
async function startDenyingWebhook(dataDir: string): Promise<{ port: number; close(): Promise<void> }> {
  const { certPem, keyPem } = servingKeyPair(dataDir);
  const server: Server = createServer({ cert: certPem, key: keyPem }, (req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      const review = JSON.parse(body) as { request: { uid: string } };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          apiVersion: 'admission.k8s.io/v1',
          kind: 'AdmissionReview',
          response: {
            uid: review.request.uid,
            allowed: false,
            status: { code: 403, message: 'TrafficSplit weights are frozen in this namespace' },
          },
        }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
