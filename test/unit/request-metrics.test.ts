import { expect } from 'chai';
import { classify } from '../../src/k8s/request-metrics.js';

describe('Kubernetes request classification (perch_kube_requests_total)', () => {
  for (const [method, path, verb, resource] of [
    ['GET', '/apis/perch.dev/v1alpha1/rollouts', 'list', 'rollouts'],
    ['GET', '/apis/perch.dev/v1alpha1/rollouts?watch=true&resourceVersion=5', 'watch', 'rollouts'],
    ['GET', '/apis/perch.dev/v1alpha1/namespaces/shop/rollouts/web', 'get', 'rollouts'],
    ['PATCH', '/apis/perch.dev/v1alpha1/namespaces/shop/rollouts/web/status', 'patch', 'rollouts/status'],
    ['POST', '/apis/split.smi-spec.io/v1alpha2/namespaces/shop/trafficsplits', 'create', 'trafficsplits'],
    ['POST', '/api/v1/namespaces/shop/events', 'create', 'events'],
    ['GET', '/api/v1/namespaces/shop', 'get', 'namespaces'],
    ['GET', '/api/v1/services?watch=1', 'watch', 'services'],
    ['DELETE', '/api/v1/namespaces/shop/services/web', 'delete', 'services'],
    ['PUT', '/apis/coordination.k8s.io/v1/namespaces/perch/leases/perch', 'update', 'leases'],
    ['GET', '/version', 'get', '/version'],
  ] as const) {
    it(`${method} ${path} → ${verb} ${resource}`, () => {
      expect(classify(method, path)).to.deep.equal({ verb, resource });
    });
  }
});
