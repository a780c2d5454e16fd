// The demo's check of a person's HTTPRoute after the runs: weights of the run's Services and canary refs
// appended are Perch's; a changed match, filter, other backendRef, rule or parent is reported, named.
import { expect } from 'chai';
import type { KubernetesObject } from '@kubernetes/client-node';
import { changesBeyondWeights } from '../../src/sandbox/demo/route-changes.js';

const services = new Set(['web-v1', 'web-v2', 'web-v3']);

interface Ref {
  group?: string;
  kind?: string;
  name: string;
  port: number;
  weight?: number;
}
interface Rule {
  name?: string;
  matches: { headers?: { type: string; name: string; value: string }[]; path: object }[];
  filters?: object[];
  backendRefs: Ref[];
}
type Route = KubernetesObject & {
  spec: { parentRefs: { group: string; kind: string; name: string; port: number }[]; rules: Rule[] };
};

function route(): Route {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'web', namespace: 'shop' },
    spec: {
      parentRefs: [{ group: '', kind: 'Service', name: 'web', port: 80 }],
      rules: [
        {
          name: 'pinned',
          matches: [
            {
              headers: [{ type: 'Exact', name: 'x-pin', value: 'v1' }],
              path: { type: 'PathPrefix', value: '/' },
            },
          ],
          filters: [
            { type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-p', value: '1' }] } },
          ],
          backendRefs: [{ group: '', kind: 'Service', name: 'web-v1', port: 80, weight: 1 }],
        },
        {
          name: 'split',
          matches: [{ path: { type: 'PathPrefix', value: '/' } }],
          backendRefs: [
            { group: '', kind: 'Service', name: 'web-v1', port: 80, weight: 100 },
            { group: '', kind: 'Service', name: 'cdn', port: 80, weight: 5 },
          ],
        },
      ],
    },
  };
}

describe('perch demo: what changed in a person HTTPRoute beyond the weights', () => {
  it('nothing, when only the run Services weights moved and a canary ref was appended', () => {
    const after = route();
    after.spec.rules[1]!.backendRefs[0]!.weight = 0;
    after.spec.rules[1]!.backendRefs.push({
      group: '',
      kind: 'Service',
      name: 'web-v2',
      port: 80,
      weight: 100,
    });
    // The same object with its keys in another order reads the same.
    after.spec.rules[0] = Object.fromEntries(
      Object.entries(after.spec.rules[0]!).reverse(),
    ) as unknown as Rule;
    expect(changesBeyondWeights(route(), after, services)).to.deep.equal([]);
  });

  it('names a changed match, filter, parent, foreign weight, and an added ref that is not the run', () => {
    const after = route();
    after.spec.rules[0]!.matches[0]!.headers![0]!.value = 'v2';
    after.spec.rules[0]!.filters = [];
    after.spec.parentRefs[0]!.port = 8080;
    after.spec.rules[1]!.backendRefs[1]!.weight = 0;
    after.spec.rules[1]!.backendRefs.push({ name: 'other', port: 80 });
    after.spec.rules[1]!.backendRefs[0]!.port = 81;
    expect(changesBeyondWeights(route(), after, services)).to.deep.equal([
      'spec.parentRefs changed',
      'rule pinned: matches changed',
      'rule pinned: filters changed',
      'rule split: backendRef 0 (web-v1) changed',
      'rule split: backendRef 1 (cdn) changed',
      'rule split: backendRef other added',
    ]);
  });

  it('names a rule taken out or a field taken away', () => {
    const fewer = route();
    fewer.spec.rules.pop();
    expect(changesBeyondWeights(route(), fewer, services)).to.deep.equal([
      'spec.rules: 2 rules before, 1 now',
    ]);
    const noName = route();
    delete noName.spec.rules[1]!.name;
    expect(changesBeyondWeights(route(), noName, services)).to.deep.equal(['rule split: name changed']);
  });
});
