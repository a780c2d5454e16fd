// readSplit: a cached TrafficSplit of any SMI version into what the machine observes. Pure, no server.
import type { KubernetesObject } from '@kubernetes/client-node';
import { expect } from 'chai';
import { inspect } from 'node:util';
import type { SmiApiVersion } from '../../src/api/v1alpha1.js';
import {
  desiredBackends,
  readSplit,
  versionModule,
  type SplitTarget,
} from '../../src/k8s/trafficsplit/router.js';
import { parseQuantity } from '../../src/k8s/trafficsplit/v1alpha1.js';

const UID = '5a0e3c1e-0000-4000-8000-000000000001';
const target = (apiVersion: SmiApiVersion = 'split.smi-spec.io/v1alpha2'): SplitTarget => ({
  kind: 'TrafficSplit',
  namespace: 'shop',
  name: 'web',
  rootService: 'web',
  stableService: 'web-v1',
  canaryService: 'web-v2',
  apiVersion,
  rollout: { name: 'web', uid: UID },
});

function split(
  apiVersion: string,
  backends: { service: string; weight: unknown }[],
  metadata: KubernetesObject['metadata'] = {},
): KubernetesObject {
  return {
    apiVersion,
    kind: 'TrafficSplit',
    metadata: { name: 'web', namespace: 'shop', ...metadata },
    spec: { service: 'web.shop.svc.cluster.local', backends },
  } as KubernetesObject;
}

const owned = {
  ownerReferences: [{ apiVersion: 'perch.dev/v1alpha1', kind: 'Rollout', name: 'web', uid: UID }],
};

describe('parseQuantity (v1alpha1 weights)', () => {
  for (const [raw, value] of [
    [90, 90],
    ['90', 90],
    ['1', 1],
    ['500m', 0.5],
    ['1500m', 1.5],
    ['+2', 2],
    ['.5', 0.5],
    ['2.5', 2.5],
    ['1k', 1000],
    ['1Ki', 1024],
    ['1e2', 100],
    ['25E-1', 2.5],
    [0, 0],
  ] as const) {
    it(`reads ${inspect(raw)} as ${value}`, () => {
      expect(parseQuantity(raw)).to.be.closeTo(value, 1e-9);
    });
  }

  for (const raw of ['', 'abc', '-1', '1x', '1mi', -5, Number.NaN, null, undefined, {}]) {
    it(`refuses ${inspect(raw)}`, () => {
      expect(parseQuantity(raw)).to.equal(undefined);
    });
  }
});

describe('readSplit', () => {
  describe('weights at each version', () => {
    it('v1alpha1: quantities, normalized to whole percentages of the total', () => {
      const t = target('split.smi-spec.io/v1alpha1');
      const read = (a: unknown, b: unknown) =>
        readSplit(
          split('split.smi-spec.io/v1alpha1', [
            { service: 'web-v1', weight: a },
            { service: 'web-v2', weight: b },
          ]),
          t,
        ).canaryWeight;
      expect(read('500m', '500m')).to.equal(50);
      expect(read('1500m', '500m')).to.equal(25);
      expect(read('1', '1')).to.equal(50);
      expect(read(90, 10)).to.equal(10);
      expect(read('90', '10')).to.equal(10);
      expect(read('2', '1')).to.equal(33);
      expect(read('1', '2')).to.equal(67);
      expect(read('1k', '1k')).to.equal(50);
    });

    it('v1alpha2: integer weights', () => {
      const obj = split('split.smi-spec.io/v1alpha2', [
        { service: 'web-v1', weight: 90 },
        { service: 'web-v2', weight: 10 },
      ]);
      expect(readSplit(obj, target()).canaryWeight).to.equal(10);
    });

    it('v1alpha2: a quantity left by a v1alpha1 client still reads (the CRD converts with strategy None)', () => {
      const obj = split('split.smi-spec.io/v1alpha2', [
        { service: 'web-v1', weight: '750m' },
        { service: 'web-v2', weight: '250m' },
      ]);
      expect(readSplit(obj, target()).canaryWeight).to.equal(25);
    });

    for (const version of ['split.smi-spec.io/v1alpha3', 'split.smi-spec.io/v1alpha4'] as const) {
      it(`${version.split('/')[1]}: integer weights, matches ignored`, () => {
        const obj = split(version, [
          { service: 'web-v1', weight: 50 },
          { service: 'web-v2', weight: 50 },
        ]);
        (obj as { spec: Record<string, unknown> }).spec.matches = [
          { kind: 'HTTPRouteGroup', name: 'api', apiGroup: 'specs.smi-spec.io' },
        ];
        expect(readSplit(obj, target(version)).canaryWeight).to.equal(50);
      });
    }

    it("reads with the object's own version, whatever the target writes", () => {
      const obj = split('split.smi-spec.io/v1alpha1', [
        { service: 'web-v1', weight: '1' },
        { service: 'web-v2', weight: '3' },
      ]);
      expect(readSplit(obj, target('split.smi-spec.io/v1alpha4')).canaryWeight).to.equal(75);
    });

    it('stable alone is canary 0, canary alone is canary 100', () => {
      expect(
        readSplit(split('split.smi-spec.io/v1alpha2', [{ service: 'web-v1', weight: 100 }]), target()),
      ).to.have.property('canaryWeight', 0);
      expect(
        readSplit(split('split.smi-spec.io/v1alpha2', [{ service: 'web-v2', weight: 100 }]), target()),
      ).to.have.property('canaryWeight', 100);
    });

    it('counts a backend written as the namespace FQDN as that Service', () => {
      const obj = split('split.smi-spec.io/v1alpha2', [
        { service: 'web-v1', weight: 80 },
        { service: 'web-v2.shop.svc.cluster.local', weight: 20 },
      ]);
      expect(readSplit(obj, target()).canaryWeight).to.equal(20);
    });

    it('counts other backends in the total, and unreadable weights or backends as nothing', () => {
      const obj = split('split.smi-spec.io/v1alpha2', [
        { service: 'web-v1', weight: 50 },
        { service: 'web-v2', weight: 25 },
        { service: 'web-legacy', weight: 25 },
        { service: 'web-v3', weight: 'lots' },
      ]);
      expect(readSplit(obj, target()).canaryWeight).to.equal(25);
      const empty = { apiVersion: 'split.smi-spec.io/v1alpha2', kind: 'TrafficSplit', metadata: {} };
      expect(readSplit(empty, target()).canaryWeight).to.equal(0);
      expect(
        readSplit(split('split.smi-spec.io/v1alpha2', [{ service: 'web-v2', weight: 0 }]), target()),
      ).to.have.property('canaryWeight', 0);
    });
  });

  describe('ownership', () => {
    const backends = [{ service: 'web-v1', weight: 100 }];

    it("is 'owner' when an ownerReference carries the Rollout's uid", () => {
      expect(readSplit(split('split.smi-spec.io/v1alpha2', backends, owned), target()).owned).to.equal(
        'owner',
      );
    });

    it("is 'annotated' with perch.dev/managed-by: <rollout name>", () => {
      const obj = split('split.smi-spec.io/v1alpha2', backends, {
        annotations: { 'perch.dev/managed-by': 'web' },
      });
      expect(readSplit(obj, target()).owned).to.equal('annotated');
    });

    it("is 'foreign' otherwise: no marks, another Rollout's name, or a namesake's uid", () => {
      const other = (metadata: KubernetesObject['metadata']) =>
        readSplit(split('split.smi-spec.io/v1alpha2', backends, metadata), target()).owned;
      expect(other({})).to.equal('foreign');
      expect(other({ annotations: { 'perch.dev/managed-by': 'shop' } })).to.equal('foreign');
      expect(
        other({
          ownerReferences: [{ apiVersion: 'perch.dev/v1alpha1', kind: 'Rollout', name: 'web', uid: 'other' }],
        }),
      ).to.equal('foreign');
    });
  });

  describe('asPlanned', () => {
    const read = (backends: { service: string; weight: number | string }[], service?: string) => {
      const obj = split('split.smi-spec.io/v1alpha2', backends, owned);
      if (service) (obj as { spec: { service: string } }).spec.service = service;
      return readSplit(obj, target());
    };

    it('holds for exactly stable/canary at the observed weight under the root FQDN', () => {
      const r = read(
        [
          { service: 'web-v1', weight: 90 },
          { service: 'web-v2', weight: 10 },
        ],
        'web.shop.svc.cluster.local',
      );
      expect(r).to.include({ canaryWeight: 10, asPlanned: true });
    });

    it('fails for a third backend, such as the previous canary after a new generation', () => {
      const r = read([
        { service: 'web-v1', weight: 50 },
        { service: 'web-old', weight: 50 },
      ]);
      expect(r).to.include({ canaryWeight: 0, asPlanned: false });
    });
  });

  describe('lastWritten', () => {
    const backends = [{ service: 'web-v1', weight: 100 }];
    const withAnnotation = (value: string) =>
      readSplit(
        split('split.smi-spec.io/v1alpha2', backends, {
          ...owned,
          annotations: { 'perch.dev/canary-weight': value },
        }),
        target(),
      );

    it('is the perch.dev/canary-weight annotation', () => {
      expect(withAnnotation('10')).to.deep.equal({
        canaryWeight: 0,
        asPlanned: true,
        lastWritten: 10,
        owned: 'owner',
      });
      expect(withAnnotation('0').lastWritten).to.equal(0);
      expect(withAnnotation('100').lastWritten).to.equal(100);
    });

    it('is absent without the annotation, or when it is not a percentage', () => {
      expect(readSplit(split('split.smi-spec.io/v1alpha2', backends, owned), target())).to.deep.equal({
        canaryWeight: 0,
        asPlanned: true,
        owned: 'owner',
      });
      for (const bad of ['', 'ten', '101', '-1', '1.5']) {
        expect(withAnnotation(bad), bad).to.not.have.property('lastWritten');
      }
    });
  });
});

describe('what the router writes', () => {
  it('backends that total 100 and leave out a backend at 0', () => {
    const t = target();
    expect(desiredBackends(t, 0)).to.deep.equal([{ service: 'web-v1', weight: 100 }]);
    expect(desiredBackends(t, 10)).to.deep.equal([
      { service: 'web-v1', weight: 90 },
      { service: 'web-v2', weight: 10 },
    ]);
    expect(desiredBackends(t, 100)).to.deep.equal([{ service: 'web-v2', weight: 100 }]);
  });

  it('one module per version family, whole numbers on the wire', () => {
    for (const v of ['v1alpha1', 'v1alpha2', 'v1alpha3', 'v1alpha4']) {
      const m = versionModule(`split.smi-spec.io/${v}`);
      expect(m, v).to.not.equal(undefined);
      expect(m!.formatWeight(90)).to.equal(90);
      expect(m!.spec('r', [{ service: 's', weight: 100 }])).to.deep.equal({
        service: 'r',
        backends: [{ service: 's', weight: 100 }],
      });
    }
    expect(versionModule('split.smi-spec.io/v1alpha3')).to.equal(versionModule('split.smi-spec.io/v1alpha4'));
    expect(versionModule('split.smi-spec.io/v1')).to.equal(undefined);
  });
});
