// The official Gateway API CRDs the sandbox installs, checked on the real API server: HTTPRoute served
// at v1 and v1beta1, the pinned release, and the official schema's own CEL rules on a GAMMA route.
import { ApiextensionsV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { expect } from 'chai';
import { apiError } from '../../src/k8s/api-error.js';
import { pinnedGatewayApiVersion, type ControlPlane } from '../../src/sandbox/control-plane/index.js';
import { sharedControlPlane, testNamespace } from '../support/control-plane.js';
import { kubectlOk } from '../support/kubectl.js';

const GROUP = 'gateway.networking.k8s.io';
const VERSIONS = ['v1', 'v1beta1'] as const;

interface BackendRef {
  group?: string;
  kind?: string;
  name: string;
  port?: number;
  weight?: number;
}

/** A mesh (GAMMA) route: its parent is the root Service, its backends the stable and canary Services. */
function meshRoute(version: string, namespace: string, name: string, backendRefs: BackendRef[]) {
  return {
    apiVersion: `${GROUP}/${version}`,
    kind: 'HTTPRoute',
    metadata: { name, namespace },
    spec: {
      parentRefs: [{ group: '', kind: 'Service', name: 'web', port: 8080 }],
      rules: [{ backendRefs }],
    },
  };
}

describe('Gateway API CRDs in the sandbox', function () {
  this.timeout(60_000);
  let cp: ControlPlane;
  let kc: KubeConfig;
  let api: CustomObjectsApi;

  before(async () => {
    cp = await sharedControlPlane();
    kc = cp.kubeConfig();
    api = kc.makeApiClient(CustomObjectsApi);
  });

  it('serves HTTPRoute at gateway.networking.k8s.io/v1 and v1beta1 (discovery)', async () => {
    const group = JSON.parse(await kubectlOk(cp.kubeconfig, ['get', '--raw', `/apis/${GROUP}`])) as {
      versions: { version: string }[];
      preferredVersion: { version: string };
    };
    expect(group.versions.map((v) => v.version)).to.include.members([...VERSIONS]);
    expect(group.preferredVersion.version).to.equal('v1');
    for (const version of VERSIONS) {
      const list = JSON.parse(
        await kubectlOk(cp.kubeconfig, ['get', '--raw', `/apis/${GROUP}/${version}`]),
      ) as { resources: { name: string; kind: string; namespaced: boolean; verbs: string[] }[] };
      const routes = list.resources.find((r) => r.name === 'httproutes');
      expect(routes, `httproutes in /apis/${GROUP}/${version}`).to.include({
        kind: 'HTTPRoute',
        namespaced: true,
      });
      expect(routes?.verbs).to.include.members(['get', 'list', 'watch', 'patch']);
      expect(list.resources.map((r) => r.name)).to.include('httproutes/status');
    }
  });

  it('installs the release pinned in tools/gateway-api/go.mod, standard channel', async () => {
    const version = pinnedGatewayApiVersion();
    const crds = (await kc.makeApiClient(ApiextensionsV1Api).listCustomResourceDefinition()).items.filter(
      (c) => c.spec.group === GROUP,
    );
    expect(crds.map((c) => c.metadata?.name)).to.include.members([
      `httproutes.${GROUP}`,
      `gateways.${GROUP}`,
      `gatewayclasses.${GROUP}`,
      `referencegrants.${GROUP}`,
    ]);
    for (const crd of crds) {
      expect(crd.metadata?.annotations?.[`${GROUP}/bundle-version`], crd.metadata?.name).to.equal(version);
      expect(crd.metadata?.annotations?.[`${GROUP}/channel`], crd.metadata?.name).to.equal('standard');
    }
  });

  for (const version of VERSIONS) {
    it(`${version}: accepts a route whose parent is a Service, with two weighted Service backends`, async () => {
      const namespace = await testNamespace(kc, `gamma-route-${version}`);
      const backends = [
        { name: 'web-stable', port: 8080, weight: 90 },
        { name: 'web-canary', port: 8080, weight: 10 },
      ];
      await api.createNamespacedCustomObject({
        group: GROUP,
        version,
        namespace,
        plural: 'httproutes',
        body: meshRoute(version, namespace, 'web', backends),
      });
      // Read back through the other version: one stored object, both versions serve it.
      const other = VERSIONS.find((v) => v !== version)!;
      const read = (await api.getNamespacedCustomObject({
        group: GROUP,
        version: other,
        namespace,
        plural: 'httproutes',
        name: 'web',
      })) as ReturnType<typeof meshRoute>;
      expect(read.apiVersion).to.equal(`${GROUP}/${other}`);
      expect(read.spec.parentRefs).to.deep.equal([{ group: '', kind: 'Service', name: 'web', port: 8080 }]);
      // The official schema's defaults fill in each backendRef's group and kind.
      expect(read.spec.rules[0]?.backendRefs).to.deep.equal(
        backends.map((b) => ({ group: '', kind: 'Service', ...b })),
      );
    });

    it(`${version}: refuses a Service backendRef without a port, by the official CRD's own CEL rule`, async () => {
      const namespace = await testNamespace(kc, `gamma-no-port-${version}`);
      const body = meshRoute(version, namespace, 'web', [
        { name: 'web-stable', port: 8080, weight: 90 },
        { name: 'web-canary', weight: 10 },
      ]);
      const err = await api
        .createNamespacedCustomObject({ group: GROUP, version, namespace, plural: 'httproutes', body })
        .then(
          () => expect.fail('a Service backendRef without a port must be refused'),
          (e: unknown) => apiError(e),
        );
      expect(err.code).to.equal(422);
      expect(err.kind).to.equal('invalid');
      expect(err.message)
        .to.contain('spec.rules[0].backendRefs[1]')
        .and.to.contain('Must have port for Service reference');
    });
  }
});
