// What the controller's watch caches keep of each object (src/k8s/slim.ts). Pure, no server.
import type { KubernetesObject, V1Service } from '@kubernetes/client-node';
import { expect } from 'chai';
import { LAST_APPLIED, serviceSkeleton, withoutBookkeeping } from '../../src/k8s/slim.js';

const managedFields = [
  { manager: 'kubectl', operation: 'Apply', fieldsType: 'FieldsV1', fieldsV1: { 'f:spec': {} } },
];

describe('slim watch-cache objects', () => {
  it('drops managedFields and the last-applied annotation, keeping everything a write reads', () => {
    const obj = {
      apiVersion: 'perch.dev/v1alpha1',
      kind: 'Rollout',
      metadata: {
        name: 'web',
        namespace: 'shop',
        uid: 'u-1',
        resourceVersion: '42',
        generation: 3,
        finalizers: ['perch.dev/traffic'],
        ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'x', uid: 'u-2' }],
        annotations: { [LAST_APPLIED]: '{"big":"copy"}', 'perch.dev/paused': 'true' },
        managedFields,
      },
      spec: { service: 'web' },
      status: { phase: 'Progressing' },
    } as KubernetesObject;
    const slim = withoutBookkeeping(obj);
    expect(slim).to.deep.equal({
      ...obj,
      metadata: {
        name: 'web',
        namespace: 'shop',
        uid: 'u-1',
        resourceVersion: '42',
        generation: 3,
        finalizers: ['perch.dev/traffic'],
        ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'x', uid: 'u-2' }],
        annotations: { 'perch.dev/paused': 'true' },
      },
    });
    expect(obj.metadata?.managedFields, 'the original is not changed').to.equal(managedFields);
  });

  it('keeps an annotations map emptied of last-applied as a map, and returns a lean object as it is', () => {
    const only = { metadata: { name: 'a', annotations: { [LAST_APPLIED]: '{}' } } } as KubernetesObject;
    expect(withoutBookkeeping(only).metadata?.annotations).to.deep.equal({});
    const none = { metadata: { name: 'b' } } as KubernetesObject;
    expect(withoutBookkeeping(none)).to.equal(none);
  });

  it('keeps of a Service its identity and first port only', () => {
    const svc: V1Service = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: {
        name: 'web-v1',
        namespace: 'shop',
        uid: 'u-3',
        resourceVersion: '7',
        labels: { a: 'b' },
        managedFields,
      },
      spec: {
        ports: [{ port: 8080, name: 'http' }, { port: 9090 }],
        selector: { app: 'web' },
        clusterIP: '10.0.0.1',
      },
    };
    expect(serviceSkeleton(svc)).to.deep.equal({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'web-v1', namespace: 'shop', uid: 'u-3', resourceVersion: '7' },
      spec: { ports: [{ port: 8080 }] },
    });
    expect(serviceSkeleton({ metadata: { name: 'headless' }, spec: {} })).to.not.have.property('spec');
  });
});
