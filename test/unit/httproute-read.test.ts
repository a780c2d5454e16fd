// The HTTPRoute router's pure parts: rule choice, reading the split, status.parents, problems, and the
// JSON Patch it plans (ops exactly, `test`s carrying the backendRefs as read). No server.
import type { KubernetesObject } from '@kubernetes/client-node';
import { expect } from 'chai';
import { createdRoute, routeProblem, weightPatch } from '../../src/k8s/httproute/plan.js';
import { readRoute, reportedParents, routesAt } from '../../src/k8s/httproute/read.js';
import { chooseRules, type BackendRef, type Rule } from '../../src/k8s/httproute/rules.js';
import type { HttpRouteTarget } from '../../src/k8s/router.js';

const UID = '5a0e3c1e-0000-4000-8000-000000000002';
const target = (extra: Partial<HttpRouteTarget> = {}): HttpRouteTarget => ({
  kind: 'HTTPRoute',
  apiVersion: 'gateway.networking.k8s.io/v1',
  namespace: 'shop',
  name: 'web',
  rootService: 'web',
  stableService: 'web-v1',
  canaryService: 'web-v2',
  rollout: { name: 'web', uid: UID },
  stablePort: 8080,
  ...extra,
});

const ANNOTATED = { 'perch.dev/managed-by': 'web' };

function route(
  rules: Rule[],
  metadata: KubernetesObject['metadata'] = { annotations: ANNOTATED },
  status?: object,
) {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'web', namespace: 'shop', ...metadata },
    spec: { parentRefs: [{ group: '', kind: 'Service', name: 'web' }], rules },
    ...(status ? { status } : {}),
  } as KubernetesObject;
}

const stable = (weight?: number, extra: Partial<BackendRef> = {}): BackendRef => ({
  name: 'web-v1',
  port: 8080,
  ...(weight !== undefined ? { weight } : {}),
  ...extra,
});
const canary = (weight?: number, extra: Partial<BackendRef> = {}): BackendRef => ({
  name: 'web-v2',
  port: 8080,
  ...(weight !== undefined ? { weight } : {}),
  ...extra,
});
const other = (weight: number): BackendRef => ({ name: 'web-legacy', port: 8080, weight });
const rule = (...backendRefs: BackendRef[]): Rule => ({ backendRefs });
const named = (name: string, ...backendRefs: BackendRef[]): Rule => ({ name, backendRefs });

describe('HTTPRoute router: reading a route', () => {
  describe('chooseRules', () => {
    const rules = [
      named('api', stable(90), canary(10)),
      named('static', other(1)),
      named('beta', stable(50), canary(50)),
    ];

    it('by default chooses every rule with a backendRef naming the stable Service', () => {
      expect(chooseRules(route(rules), target())).to.deep.equal({ ok: true, indices: [0, 2] });
    });

    it('chooses by index and by name, in the order given, each rule once', () => {
      expect(chooseRules(route(rules), target({ rules: [2] }))).to.deep.equal({ ok: true, indices: [2] });
      expect(chooseRules(route(rules), target({ rules: ['beta', 0, 2] }))).to.deep.equal({
        ok: true,
        indices: [2, 0],
      });
    });

    it('refuses a chosen rule that does not name stable, and indices or names that do not exist', () => {
      expect(chooseRules(route(rules), target({ rules: [1] }))).to.have.property('ok', false);
      expect(chooseRules(route(rules), target({ rules: [3] }))).to.have.property('ok', false);
      expect(chooseRules(route(rules), target({ rules: ['nope'] }))).to.have.property('ok', false);
      expect(chooseRules(route([rule(other(1))]), target())).to.have.property('ok', false);
    });
  });

  describe('readRoute', () => {
    it("reads the canary's share of the stable and canary weights of the first chosen rule", () => {
      expect(readRoute(route([rule(stable(90), canary(10))]), target())).to.deep.equal({
        canaryWeight: 10,
        asPlanned: true,
        owned: 'annotated',
        reported: 'no mesh or gateway has accepted HTTPRoute web yet',
      });
      expect(readRoute(route([rule(stable(3), canary(1))]), target())).to.include({
        canaryWeight: 25,
        asPlanned: false,
      });
      // The first chosen rule, not the first rule.
      const two = route([rule(other(1)), rule(stable(40), canary(60))]);
      expect(readRoute(two, target()).canaryWeight).to.equal(60);
      expect(
        readRoute(
          route([named('a', stable(90), canary(10)), named('b', stable(70), canary(30))]),
          target({ rules: ['b'] }),
        ),
      ).to.include({ canaryWeight: 30, asPlanned: true });
    });

    it('reads an absent weight as 1, as Gateway API defaults it', () => {
      expect(readRoute(route([rule(stable(), canary())]), target())).to.include({
        canaryWeight: 50,
        asPlanned: false,
      });
      expect(readRoute(route([rule(stable(), canary(3))]), target()).canaryWeight).to.equal(75);
      // stable alone with no weight: 1 of 1, canary 0, not as Perch writes it (stable 100).
      expect(readRoute(route([rule(stable())]), target())).to.include({ canaryWeight: 0, asPlanned: false });
    });

    it('reads a missing canary ref as 0, and as planned at 0 when stable is at 100', () => {
      expect(readRoute(route([rule(stable(100))]), target())).to.include({
        canaryWeight: 0,
        asPlanned: true,
      });
      expect(readRoute(route([rule(stable(100), canary(0))]), target())).to.include({
        canaryWeight: 0,
        asPlanned: true,
      });
      expect(readRoute(route([rule(stable(0), canary(100))]), target())).to.include({
        canaryWeight: 100,
        asPlanned: true,
      });
    });

    it("ignores other backendRefs of the rule: they are not Perch's", () => {
      const r = route([rule(stable(90), other(500), canary(10), { name: 'mirror', port: 80, weight: 0 })]);
      expect(readRoute(r, target())).to.include({ canaryWeight: 10, asPlanned: true });
    });

    it('does not match refs to another namespace, another kind or another group', () => {
      for (const foreign of [
        canary(50, { namespace: 'elsewhere' }),
        canary(50, { kind: 'ServiceImport', group: 'multicluster.x-k8s.io' }),
        canary(50, { group: 'example.com' }),
      ]) {
        expect(readRoute(route([rule(stable(50), foreign)]), target()), JSON.stringify(foreign)).to.include({
          canaryWeight: 0,
        });
      }
      // Only foreign stable refs: the route cannot carry the split.
      const r = route([rule(stable(100, { namespace: 'elsewhere' }))]);
      expect(readRoute(r, target())).to.include({ canaryWeight: 0, asPlanned: false });
      // Explicit defaults and the route's own namespace do match.
      const explicit = route([
        rule(stable(80, { group: '', kind: 'Service', namespace: 'shop' }), canary(20, { kind: 'Service' })),
      ]);
      expect(readRoute(explicit, target())).to.include({ canaryWeight: 20, asPlanned: true });
    });

    it('matches a target naming its Services by FQDN', () => {
      const t = target({
        stableService: 'web-v1.shop.svc.cluster.local',
        canaryService: 'web-v2.shop.svc.cluster.local',
      });
      expect(readRoute(route([rule(stable(70), canary(30))]), t)).to.include({
        canaryWeight: 30,
        asPlanned: true,
      });
    });

    it('is as planned only when every chosen rule routes the share as Perch writes it', () => {
      const both = [rule(stable(90), canary(10)), rule(other(1)), rule(stable(90), canary(10))];
      expect(readRoute(route(both), target()).asPlanned).to.equal(true);
      const apart = [rule(stable(90), canary(10)), rule(stable(80), canary(20))];
      expect(readRoute(route(apart), target())).to.include({ canaryWeight: 10, asPlanned: false });
      // Not chosen, so not Perch's business.
      expect(readRoute(route(apart), target({ rules: [0] })).asPlanned).to.equal(true);
      // A chosen rule missing its canary ref is as planned at 0 only.
      expect(routesAt(route([rule(stable(100)), rule(stable(100), canary(0))]), target(), 0)).to.equal(true);
      expect(routesAt(route([rule(stable(90), canary(10)), rule(stable(90))]), target(), 10)).to.equal(false);
      // Same share, other scale: not as Perch writes it.
      expect(readRoute(route([rule(stable(9), canary(1))]), target())).to.include({
        canaryWeight: 10,
        asPlanned: false,
      });
    });

    it('reads two refs to stable (two ports) written at 100-w as w, as planned', () => {
      const r = route([rule(stable(90), stable(90, { port: 9090 }), canary(10))]);
      expect(readRoute(r, target())).to.include({ canaryWeight: 10, asPlanned: true });
      expect(
        routesAt(route([rule(stable(90), stable(80, { port: 9090 }), canary(10))]), target(), 10),
      ).to.equal(false);
    });

    it('reads a route that cannot carry the split as canary 0, not as planned', () => {
      expect(readRoute(route([rule(other(1))]), target())).to.include({ canaryWeight: 0, asPlanned: false });
      expect(readRoute(route([]), target())).to.include({ canaryWeight: 0, asPlanned: false });
      const bare = {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'HTTPRoute',
        metadata: { name: 'web' },
      };
      expect(readRoute(bare, target())).to.include({ canaryWeight: 0, asPlanned: false, owned: 'foreign' });
      expect(readRoute(route([rule(stable(90), canary(10))]), target({ rules: [4] })).asPlanned).to.equal(
        false,
      );
    });

    it('reads lastWritten from perch.dev/canary-weight and ownership from the owner reference or annotation', () => {
      const rules = [rule(stable(90), canary(10))];
      expect(
        readRoute(route(rules, { annotations: { ...ANNOTATED, 'perch.dev/canary-weight': '10' } }), target()),
      ).to.include({ lastWritten: 10, owned: 'annotated' });
      expect(
        readRoute(route(rules, { annotations: { 'perch.dev/canary-weight': 'ten' } }), target()),
      ).to.not.have.property('lastWritten');
      const owner = { apiVersion: 'perch.dev/v1alpha1', kind: 'Rollout', name: 'web', uid: UID };
      expect(readRoute(route(rules, { ownerReferences: [owner] }), target()).owned).to.equal('owner');
      expect(
        readRoute(route(rules, { annotations: { 'perch.dev/managed-by': 'other' } }), target()).owned,
      ).to.equal('foreign');
    });
  });

  describe('reportedParents', () => {
    const accepted = (type: string) => ({ type, status: 'True', reason: type, message: '' });

    it('says when no mesh or gateway has reported on the route', () => {
      expect(reportedParents(route([]), 'web')).to.equal('no mesh or gateway has accepted HTTPRoute web yet');
      expect(reportedParents(route([], undefined, { parents: [] }), 'web')).to.equal(
        'no mesh or gateway has accepted HTTPRoute web yet',
      );
    });

    it('names each parent, its controller, and its Accepted and ResolvedRefs conditions', () => {
      const status = {
        parents: [
          {
            parentRef: { group: '', kind: 'Service', name: 'web' },
            controllerName: 'perch.dev/sandbox-mesh',
            conditions: [accepted('Accepted'), accepted('ResolvedRefs'), accepted('Programmed')],
          },
        ],
      };
      expect(readRoute(route([rule(stable(100))], undefined, status), target()).reported).to.equal(
        'HTTPRoute web: Service/web via perch.dev/sandbox-mesh: Accepted=True, ResolvedRefs=True',
      );
    });

    it('gives reason and message of a False condition, and every parent (a Gateway by default)', () => {
      const status = {
        parents: [
          {
            parentRef: { name: 'public' },
            controllerName: 'example.com/gateway',
            conditions: [
              {
                type: 'ResolvedRefs',
                status: 'False',
                reason: 'BackendNotFound',
                message: 'Service web-v2 not found',
              },
              { type: 'Accepted', status: 'True', reason: 'Accepted' },
            ],
          },
          {
            parentRef: { kind: 'Service', name: 'web' },
            controllerName: 'linkerd.io/gateway',
            conditions: [],
          },
          {
            parentRef: { kind: 'Service', name: 'api' },
            controllerName: 'istio.io/mesh',
            conditions: [
              {
                type: 'Accepted',
                status: 'False',
                reason: 'NotAllowedByListeners',
                message: 'x'.repeat(300),
              },
            ],
          },
        ],
      };
      const line = reportedParents(route([], undefined, status), 'web');
      expect(line).to.equal(
        'HTTPRoute web: Gateway/public via example.com/gateway: Accepted=True, ResolvedRefs=False (BackendNotFound: Service web-v2 not found); ' +
          'Service/web via linkerd.io/gateway: no conditions yet; ' +
          `Service/api via istio.io/mesh: Accepted=False (NotAllowedByListeners: ${'x'.repeat(119)}…)`,
      );
    });
  });
});

describe('HTTPRoute router: problems', () => {
  it('accepts a route that can carry the split, and a route it would create', () => {
    expect(routeProblem(target(), route([rule(stable(100))]))).to.equal(undefined);
    expect(routeProblem(target(), undefined)).to.equal(undefined);
    expect(routeProblem(target({ rules: [0] }), undefined)).to.equal(undefined);
  });

  it('names a chosen rule index that does not exist', () => {
    expect(routeProblem(target({ rules: [0, 3] }), route([rule(stable(100)), rule(stable(100))]))).to.equal(
      'rules: HTTPRoute web has no rule 3 (its rules are 0..1); choose existing rules by index or name',
    );
    expect(routeProblem(target({ rules: [0] }), route([]))).to.equal(
      'rules: HTTPRoute web has no rule 0 (it has no rules); choose existing rules by index or name',
    );
  });

  it('names a chosen rule name that does not exist', () => {
    expect(routeProblem(target({ rules: ['canary'] }), route([named('api', stable(100))]))).to.equal(
      'rules: HTTPRoute web has no rule named "canary" (its rules are 0..0); choose existing rules by index or name',
    );
  });

  it('names a chosen rule with no backendRef naming the stable Service', () => {
    expect(routeProblem(target({ rules: [1] }), route([rule(stable(100)), rule(other(1))]))).to.equal(
      'rules: rule 1 of HTTPRoute web has no backendRef naming the stable Service web-v1; ' +
        'add {name: web-v1, port: <its port>} to its backendRefs or choose another rule',
    );
    expect(
      routeProblem(target({ rules: ['static'] }), route([named('static', stable(1, { namespace: 'x' }))])),
    ).to.match(
      /^rules: the rule named "static" of HTTPRoute web has no backendRef naming the stable Service web-v1;/,
    );
  });

  it('names a route none of whose rules names the stable Service (default choice)', () => {
    expect(routeProblem(target(), route([rule(other(1)), rule(canary(1))]))).to.equal(
      'no rule of HTTPRoute web has a backendRef naming the stable Service web-v1; ' +
        'add {name: web-v1, port: <its port>} to the backendRefs of the rule that should carry the split',
    );
  });

  it('needs the stable port to create a route', () => {
    const t = target();
    delete t.stablePort;
    expect(routeProblem(t, undefined)).to.equal(
      'Service web-v1 has no port: HTTPRoute web does not exist, and the route Perch creates needs the ' +
        'stable Service port for its backendRefs; give the Service a port',
    );
    // An existing route does not.
    expect(routeProblem(t, route([rule(stable(100))]))).to.equal(undefined);
  });

  it('refuses rules other than rule 0 for a route it would create (it has one rule)', () => {
    expect(routeProblem(target({ rules: [0, 1, 'api'] }), undefined)).to.equal(
      'rules: HTTPRoute web does not exist, and the route Perch creates has one rule (rule 0), so 1, "api" ' +
        'cannot be chosen; leave rules out, or create the route yourself (annotated perch.dev/managed-by) with those rules',
    );
  });

  it('refuses stable and canary that are the same Service or not Service names', () => {
    expect(routeProblem(target({ canaryService: 'web-v1.shop.svc.cluster.local' }), undefined)).to.equal(
      'stable and canary are the same Service web-v1',
    );
    expect(routeProblem(target({ canaryService: 'Web_V2' }), undefined)).to.match(/must be Service names$/);
    expect(routeProblem(target({ rootService: 'web.elsewhere.svc.cluster.local' }), undefined)).to.equal(
      'root service web.elsewhere.svc.cluster.local is not a Service of namespace shop',
    );
  });
});

describe('HTTPRoute router: what it writes', () => {
  it('creates one rule splitting stable/canary on the stable port, parent the root Service, owned by the Rollout', () => {
    expect(createdRoute(target({ rootService: 'web.shop.svc.cluster.local' }), 10)).to.deep.equal({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: {
        name: 'web',
        namespace: 'shop',
        annotations: {
          'perch.dev/managed-by': 'web',
          'perch.dev/canary-weight': '10',
          'perch.dev/routed-services': 'web-v1,web-v2',
        },
        ownerReferences: [
          {
            apiVersion: 'perch.dev/v1alpha1',
            kind: 'Rollout',
            name: 'web',
            uid: UID,
            controller: true,
            blockOwnerDeletion: true,
          },
        ],
      },
      spec: {
        parentRefs: [{ group: '', kind: 'Service', name: 'web' }],
        rules: [
          {
            backendRefs: [
              { name: 'web-v1', port: 8080, weight: 90 },
              { name: 'web-v2', port: 8080, weight: 10 },
            ],
          },
        ],
      },
    });
    const beta = createdRoute(target({ apiVersion: 'gateway.networking.k8s.io/v1beta1' }), 0);
    expect(beta.apiVersion).to.equal('gateway.networking.k8s.io/v1beta1');
    expect(
      (beta as { spec: { rules: Rule[] } }).spec.rules[0]!.backendRefs!.map((r) => r.weight),
    ).to.deep.equal([100, 0]);
  });

  it('replaces the two weights of a rule, pinned by a test of its backendRefs as read', () => {
    const refs = [stable(90, { filters: [{ type: 'RequestHeaderModifier' }] }), other(0), canary(10)];
    const r = route([rule(...refs)], { annotations: { ...ANNOTATED, 'perch.dev/canary-weight': '10' } });
    expect(weightPatch(target(), 50, r)).to.deep.equal([
      { op: 'test', path: '/spec/rules/0/backendRefs', value: refs },
      { op: 'replace', path: '/spec/rules/0/backendRefs/0/weight', value: 50 },
      { op: 'replace', path: '/spec/rules/0/backendRefs/2/weight', value: 50 },
      { op: 'add', path: '/metadata/annotations/perch.dev~1canary-weight', value: '50' },
      { op: 'add', path: '/metadata/annotations/perch.dev~1routed-services', value: 'web-v1,web-v2' },
    ]);
  });

  it('adds the canary ref with the stable ref port, group and kind where it is missing and w > 0', () => {
    const refs = [stable(100, { group: '', kind: 'Service', port: 9000 }), other(0)];
    expect(weightPatch(target(), 10, route([rule(...refs)]))).to.deep.equal([
      { op: 'test', path: '/spec/rules/0/backendRefs', value: refs },
      { op: 'replace', path: '/spec/rules/0/backendRefs/0/weight', value: 90 },
      {
        op: 'add',
        path: '/spec/rules/0/backendRefs/-',
        value: { group: '', kind: 'Service', name: 'web-v2', port: 9000, weight: 10 },
      },
      { op: 'add', path: '/metadata/annotations/perch.dev~1canary-weight', value: '10' },
      { op: 'add', path: '/metadata/annotations/perch.dev~1routed-services', value: 'web-v1,web-v2' },
    ]);
  });

  it('sets 0 on the refs of Services it routed to before (perch.dev/routed-services) that the run no longer names', () => {
    // The canary was web-v2 at 40; a new run names web-v3: web-v2's ref must carry nothing, now and later.
    const refs = [stable(60), canary(40), { name: 'web-v3', port: 8080, weight: 0 }];
    const r = route([rule(...refs)], {
      annotations: {
        ...ANNOTATED,
        'perch.dev/canary-weight': '40',
        'perch.dev/routed-services': 'web-v1,web-v2',
      },
    });
    const next = target({ canaryService: 'web-v3' });
    expect(readRoute(r, next).asPlanned).to.equal(false);
    expect(weightPatch(next, 0, r)).to.deep.equal([
      { op: 'test', path: '/spec/rules/0/backendRefs', value: refs },
      { op: 'replace', path: '/spec/rules/0/backendRefs/0/weight', value: 100 },
      { op: 'replace', path: '/spec/rules/0/backendRefs/1/weight', value: 0 },
      { op: 'add', path: '/metadata/annotations/perch.dev~1canary-weight', value: '0' },
      { op: 'add', path: '/metadata/annotations/perch.dev~1routed-services', value: 'web-v1,web-v3' },
    ]);
    // Once web-v2 is at 0 the route is as planned; a ref of a Service Perch never routed is not its to zero.
    const after = route([rule(stable(100), canary(0), { name: 'web-v3', port: 8080, weight: 0 }, other(5))], {
      annotations: {
        ...ANNOTATED,
        'perch.dev/canary-weight': '0',
        'perch.dev/routed-services': 'web-v1,web-v3',
      },
    });
    expect(routesAt(after, next, 0)).to.equal(true);
    expect(routesAt(r, next, 0)).to.equal(false);
  });

  it('adds nothing for a missing canary at 0, and adds absent weights', () => {
    const refs = [stable()];
    expect(weightPatch(target(), 0, route([rule(...refs)], { annotations: {} }))).to.deep.equal([
      { op: 'test', path: '/spec/rules/0/backendRefs', value: refs },
      { op: 'add', path: '/spec/rules/0/backendRefs/0/weight', value: 100 },
      { op: 'add', path: '/metadata/annotations/perch.dev~1canary-weight', value: '0' },
      { op: 'add', path: '/metadata/annotations/perch.dev~1routed-services', value: 'web-v1,web-v2' },
    ]);
  });

  it('writes every chosen rule (every ref to stable and canary), no other rule, and creates annotations', () => {
    const first = [stable(90), canary(10)];
    const second = [canary(), stable(1), stable(1, { port: 9090 })];
    const r = route([rule(...first), rule(other(1)), rule(...second)], {});
    expect(weightPatch(target(), 100, r)).to.deep.equal([
      { op: 'test', path: '/spec/rules/0/backendRefs', value: first },
      { op: 'replace', path: '/spec/rules/0/backendRefs/0/weight', value: 0 },
      { op: 'replace', path: '/spec/rules/0/backendRefs/1/weight', value: 100 },
      { op: 'test', path: '/spec/rules/2/backendRefs', value: second },
      { op: 'add', path: '/spec/rules/2/backendRefs/0/weight', value: 100 },
      { op: 'replace', path: '/spec/rules/2/backendRefs/1/weight', value: 0 },
      { op: 'replace', path: '/spec/rules/2/backendRefs/2/weight', value: 0 },
      {
        op: 'add',
        path: '/metadata/annotations',
        value: { 'perch.dev/canary-weight': '100', 'perch.dev/routed-services': 'web-v1,web-v2' },
      },
    ]);
    // Only the chosen rule when the spec names it.
    expect(
      weightPatch(target({ rules: [2] }), 100, r).map((op) => (op as { path: string }).path),
    ).to.deep.equal([
      '/spec/rules/2/backendRefs',
      '/spec/rules/2/backendRefs/0/weight',
      '/spec/rules/2/backendRefs/1/weight',
      '/spec/rules/2/backendRefs/2/weight',
      '/metadata/annotations',
    ]);
  });

  it('only pins and annotates when the weights are already right', () => {
    const refs = [stable(90), canary(10)];
    expect(weightPatch(target(), 10, route([rule(...refs)]))).to.deep.equal([
      { op: 'test', path: '/spec/rules/0/backendRefs', value: refs },
      { op: 'add', path: '/metadata/annotations/perch.dev~1canary-weight', value: '10' },
      { op: 'add', path: '/metadata/annotations/perch.dev~1routed-services', value: 'web-v1,web-v2' },
    ]);
  });

  it("copies what it read into the test, so later changes to the cached object don't leak in", () => {
    const r = route([rule(stable(90), canary(10))]);
    const ops = weightPatch(target(), 20, r) as { value: BackendRef[] }[];
    (r as { spec: { rules: Rule[] } }).spec.rules[0]!.backendRefs![0]!.weight = 1;
    expect(ops[0]!.value[0]!.weight).to.equal(90);
  });
});
