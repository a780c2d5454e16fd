// `perch uninstall`'s line per Rollout in the cases the e2e tests do not reach: no routing object, a
// resource the cluster does not serve, someone else's object, a live Service that does not exist.
import { expect } from 'chai';
import { line } from '../../src/cli/uninstall.js';
import type { RolloutRelease } from '../../src/controller/uninstall.js';

const base: RolloutRelease = {
  namespace: 'shop',
  name: 'web',
  outcome: 'released',
  route: 'TrafficSplit web',
  live: 'stable',
  liveService: 'web-v1',
  released: false,
  finalizerRemoved: true,
};

describe('perch uninstall: the line per Rollout', () => {
  it('says there was nothing to release when the routing object is missing or its resource not served', () => {
    expect(line({ ...base, found: { state: 'missing' } }, false, false)).to.equal(
      'shop/web: no TrafficSplit web to release, finalizer removed',
    );
    expect(line({ ...base, found: { state: 'notServed' } }, false, false)).to.equal(
      'shop/web: TrafficSplit web not served by this cluster, nothing to release, finalizer removed',
    );
  });

  it("leaves someone else's routing object as it is, and says so", () => {
    const foreign = { state: 'routed', canaryWeight: 30, owned: 'foreign' } as const;
    expect(line({ ...base, found: foreign }, false, false)).to.equal(
      "shop/web: TrafficSplit web is not Perch's, left as it is, finalizer removed",
    );
    expect(line({ ...base, found: foreign }, true, false)).to.equal(
      "shop/web: TrafficSplit web is not Perch's, would leave as it is, would remove the finalizer",
    );
  });

  it('names the live Service when it does not exist and the weight could not move to it', () => {
    const r: RolloutRelease = {
      ...base,
      live: 'canary',
      liveService: 'web-v2',
      released: true,
      found: { state: 'routed', canaryWeight: 40, owned: 'owner' },
    };
    expect(line(r, false, false)).to.equal(
      'shop/web: released TrafficSplit web at canary 40: the live Service web-v2 does not exist, finalizer removed',
    );
  });

  it('tells a Rollout deleted meanwhile, and one that took more than one look', () => {
    expect(line({ ...base, outcome: 'gone' }, false, false)).to.equal(
      'shop/web: deleted meanwhile, nothing to do',
    );
    const r: RolloutRelease = {
      ...base,
      released: true,
      wrote: 0,
      attempts: 2,
      found: { state: 'routed', canaryWeight: 10, owned: 'owner' },
    };
    expect(line(r, false, false)).to.equal(
      'shop/web: released TrafficSplit web at stable 100 (web-v1), was canary 10, finalizer removed (after 2 looks)',
    );
  });
});
