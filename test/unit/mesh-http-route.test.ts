// The sandbox mesh's reading of GAMMA HTTPRoutes, without servers: Service parents, matches and their
// precedence, backends by weight (0 never, 1 by default), refs it cannot follow, and the route table's choice.
import type { KubernetesObject } from '@kubernetes/client-node';
import { expect } from 'chai';
import {
  readHttpRoute,
  requestMatches,
  RootRules,
  serviceParents,
  type Decision,
  type RequestFacts,
} from '../../src/sandbox/mesh/http-route-rules.js';
import { RouteTable } from '../../src/sandbox/mesh/route-table.js';

const NS = 'shop';
const serviceParent = (name: string, extra: Record<string, unknown> = {}) => ({
  group: '',
  kind: 'Service',
  name,
  ...extra,
});

interface RouteOptions {
  name?: string;
  parents?: unknown[];
  rules?: unknown[];
  created?: string;
  generation?: number;
  labels?: Record<string, string>;
}

function httpRoute(opts: RouteOptions = {}): KubernetesObject {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: {
      name: opts.name ?? 'web',
      namespace: NS,
      creationTimestamp: (opts.created ?? '2024-05-01T10:00:00Z') as unknown as Date,
      generation: opts.generation ?? 1,
      resourceVersion: '1',
      ...(opts.labels ? { labels: opts.labels } : {}),
    },
    spec: {
      parentRefs: opts.parents ?? [serviceParent('web', { port: 80 })],
      rules: opts.rules ?? [
        {
          backendRefs: [
            { name: 'web-v1', port: 80, weight: 70 },
            { name: 'web-v2', port: 80, weight: 30 },
          ],
        },
      ],
    },
  } as KubernetesObject;
}

const get = (url: string, headers: Record<string, string> = {}, method = 'GET'): RequestFacts => ({
  method,
  url,
  headers,
});

/** n decisions for the same request, tallied by backend Service or by status. */
function tally(rules: RootRules, n: number, req: RequestFacts = get('/'), exists?: (s: string) => boolean) {
  const out: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const d: Decision = rules.decide(req, exists);
    const k = d.ok ? d.service : String(d.status);
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

const rootRules = (...routes: KubernetesObject[]) => new RootRules('web', routes.map(readHttpRoute));

describe('sandbox mesh: HTTPRoute rules (GAMMA)', () => {
  describe('parents', () => {
    it('serves only parentRefs with group "" and kind Service in the route\'s own namespace', () => {
      const parents = serviceParents(NS, [
        serviceParent('web', { port: 80 }),
        serviceParent('same-ns', { namespace: NS }),
        { kind: 'Service', name: 'no-group' }, // the API's default group is gateway.networking.k8s.io
        { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'edge' },
        { name: 'defaults-to-gateway' },
        serviceParent('consumer', { namespace: 'other' }),
        { group: 'core', kind: 'Service', name: 'not-core' },
      ]);
      expect(parents.map((p) => p.service)).to.deep.equal(['web', 'same-ns']);
      // The parentRef is kept as written, for status.parents[].parentRef.
      expect(parents[0]!.ref).to.deep.equal({ group: '', kind: 'Service', name: 'web', port: 80 });
    });
  });

  describe('matches', () => {
    const match = (m: unknown) =>
      readHttpRoute(httpRoute({ rules: [{ matches: [m] }] })).rules[0]!.matches[0]!;

    it('Exact paths match only themselves; PathPrefix matches whole path elements, a trailing "/" ignored', () => {
      const exact = match({ path: { type: 'Exact', value: '/books' } });
      expect(
        ['/books', '/books?x=1', '/books/', '/booksy', '/Books'].map((u) => requestMatches(exact, get(u))),
      ).to.deep.equal([true, true, false, false, false]);
      for (const value of ['/books', '/books/']) {
        const prefix = match({ path: { type: 'PathPrefix', value } });
        expect(
          ['/books', '/books/', '/books/1', '/books?x', '/booksy', '/'].map((u) =>
            requestMatches(prefix, get(u)),
          ),
          value,
        ).to.deep.equal([true, true, true, true, false, false]);
      }
      // No path, or no matches at all: PathPrefix "/", every request.
      expect(requestMatches(match({}), get('/anything/at/all'))).to.equal(true);
      const none = readHttpRoute(httpRoute({ rules: [{}] })).rules[0]!;
      expect(none.matches).to.have.length(1);
      expect(requestMatches(none.matches[0]!, get('/x'))).to.equal(true);
    });

    it('header matches are Exact on the value, case-insensitive on the name, and all must hold; the first entry of a name counts', () => {
      const m = match({
        headers: [
          { name: 'X-Canary', value: 'yes' },
          { name: 'x-canary', value: 'ignored' },
          { type: 'Exact', name: 'x-team', value: 'books' },
        ],
      });
      expect(requestMatches(m, get('/', { 'x-canary': 'yes', 'x-team': 'books' }))).to.equal(true);
      expect(requestMatches(m, get('/', { 'x-canary': 'Yes', 'x-team': 'books' }))).to.equal(false);
      expect(requestMatches(m, get('/', { 'x-canary': 'yes' }))).to.equal(false);
      expect(requestMatches(m, get('/', { 'x-canary': 'ignored', 'x-team': 'books' }))).to.equal(false);
    });

    it('query param and method matches', () => {
      const m = match({ method: 'POST', queryParams: [{ name: 'v', value: '2' }] });
      expect(requestMatches(m, get('/?v=2', {}, 'POST'))).to.equal(true);
      expect(requestMatches(m, get('/?v=2', {}, 'GET'))).to.equal(false);
      expect(requestMatches(m, get('/?v=3', {}, 'POST'))).to.equal(false);
    });

    it('drops a rule using a match type it does not honour (RegularExpression), and says why', () => {
      const route = readHttpRoute(
        httpRoute({
          rules: [
            {
              matches: [{ path: { type: 'RegularExpression', value: '/b.*' } }],
              backendRefs: [{ name: 'a' }],
            },
            { matches: [{ headers: [{ type: 'RegularExpression', name: 'x', value: '.*' }] }] },
            { backendRefs: [{ name: 'web-v1' }] },
          ],
        }),
      );
      expect(route.rules.map((r) => r.unsupported)).to.deep.equal([
        'rule 0 match 0: path type RegularExpression',
        'rule 1 match 0: header match type RegularExpression',
        undefined,
      ]);
      expect(tally(new RootRules('web', [route]), 4, get('/books'))).to.deep.equal({ 'web-v1': 4 });
    });
  });

  describe('precedence', () => {
    const to = (service: string) => [{ name: service }];
    const winner = (rules: RootRules, req: RequestFacts) => {
      const d = rules.decide(req);
      return d.ok ? d.service : d.status;
    };

    it('Exact path, then the longest prefix, then method, then most headers, then most query params', () => {
      const rules = rootRules(
        httpRoute({
          rules: [
            { matches: [{ path: { type: 'PathPrefix', value: '/' } }], backendRefs: to('root') },
            { matches: [{ path: { type: 'PathPrefix', value: '/books' } }], backendRefs: to('prefix') },
            { matches: [{ path: { type: 'PathPrefix', value: '/books/new' } }], backendRefs: to('longer') },
            { matches: [{ path: { type: 'Exact', value: '/books/new/x' } }], backendRefs: to('exact') },
            {
              matches: [{ path: { type: 'PathPrefix', value: '/books' }, method: 'POST' }],
              backendRefs: to('method'),
            },
            {
              matches: [
                { path: { type: 'PathPrefix', value: '/books' }, headers: [{ name: 'a', value: '1' }] },
              ],
              backendRefs: to('one-header'),
            },
            {
              matches: [
                {
                  path: { type: 'PathPrefix', value: '/books' },
                  headers: [
                    { name: 'a', value: '1' },
                    { name: 'b', value: '2' },
                  ],
                },
              ],
              backendRefs: to('two-headers'),
            },
            {
              matches: [
                {
                  path: { type: 'PathPrefix', value: '/books' },
                  headers: [{ name: 'a', value: '1' }],
                  queryParams: [{ name: 'q', value: '1' }],
                },
              ],
              backendRefs: to('header-and-query'),
            },
          ],
        }),
      );
      expect(winner(rules, get('/books/new/x'))).to.equal('exact');
      expect(winner(rules, get('/books/new/y'))).to.equal('longer');
      expect(winner(rules, get('/books/old'))).to.equal('prefix');
      expect(winner(rules, get('/about'))).to.equal('root');
      // A method outranks headers; headers only count on an equal path.
      expect(winner(rules, get('/books', { a: '1', b: '2' }, 'POST'))).to.equal('method');
      expect(winner(rules, get('/books', { a: '1', b: '2' }))).to.equal('two-headers');
      expect(winner(rules, get('/books?q=1', { a: '1' }))).to.equal('header-and-query');
      expect(winner(rules, get('/books', { a: '1' }))).to.equal('one-header');
      // A longer prefix outranks any number of headers.
      expect(winner(rules, get('/books/new', { a: '1', b: '2' }))).to.equal('longer');
    });

    it('on a tie: the oldest route, then namespace/name, then the first rule in list order', () => {
      const same = (service: string) => ({
        matches: [{ path: { type: 'PathPrefix', value: '/' } }],
        backendRefs: to(service),
      });
      const older = httpRoute({
        name: 'zeta',
        created: '2024-01-01T00:00:00Z',
        rules: [same('zeta-first'), same('zeta-second')],
      });
      const newer = httpRoute({ name: 'alpha', created: '2024-06-01T00:00:00Z', rules: [same('alpha')] });
      expect(winner(rootRules(newer, older), get('/'))).to.equal('zeta-first');
      const twin = httpRoute({ name: 'beta', created: '2024-06-01T00:00:00Z', rules: [same('beta')] });
      expect(winner(rootRules(twin, newer), get('/'))).to.equal('alpha');
    });

    it('answers 404 when routes are attached but no rule matches the request', () => {
      const rules = rootRules(
        httpRoute({
          rules: [{ matches: [{ path: { type: 'Exact', value: '/only' } }], backendRefs: to('x') }],
        }),
      );
      const d = rules.decide(get('/other'));
      expect(d).to.deep.include({ ok: false, status: 404 });
      expect((d as { message: string }).message).to.match(
        /no rule of the HTTPRoutes attached to Service web \(web\) matches GET \/other/,
      );
    });
  });

  describe('backends by weight', () => {
    it('splits exactly by weight (70/30 over every 100 requests)', () => {
      expect(tally(rootRules(httpRoute()), 1000)).to.deep.equal({ 'web-v1': 700, 'web-v2': 300 });
    });

    it('never sends to a backendRef of weight 0, and weighs one without a weight as 1', () => {
      const zero = httpRoute({
        rules: [
          {
            backendRefs: [
              { name: 'web-v1', weight: 0 },
              { name: 'web-v2', weight: 5 },
            ],
          },
        ],
      });
      expect(tally(rootRules(zero), 50)).to.deep.equal({ 'web-v2': 50 });
      const unweighted = httpRoute({
        rules: [{ backendRefs: [{ name: 'web-v1' }, { name: 'web-v2', weight: 3 }] }],
      });
      expect(tally(rootRules(unweighted), 400)).to.deep.equal({ 'web-v1': 100, 'web-v2': 300 });
    });

    it('answers 500 for a rule with no backendRef of positive weight, or none at all', () => {
      const allZero = httpRoute({ rules: [{ backendRefs: [{ name: 'web-v1', weight: 0 }] }] });
      expect(tally(rootRules(allZero), 3)).to.deep.equal({ '500': 3 });
      expect(tally(rootRules(httpRoute({ rules: [{}] })), 3)).to.deep.equal({ '500': 3 });
    });

    it('keeps the share of a ref to another kind or namespace, answered 500, and names why', () => {
      const route = readHttpRoute(
        httpRoute({
          rules: [
            {
              backendRefs: [
                { name: 'web-v1', weight: 2 },
                { name: 'web-v2', namespace: 'elsewhere', weight: 1 },
                { group: 'example.com', kind: 'Bucket', name: 'b', weight: 1 },
              ],
            },
          ],
        }),
      );
      expect(route.rules[0]!.backends.map((b) => [b.service, b.problem?.reason])).to.deep.equal([
        ['web-v1', undefined],
        ['elsewhere/web-v2', 'RefNotPermitted'],
        ['example.com/Bucket/b', 'InvalidKind'],
      ]);
      expect(tally(new RootRules('web', [route]), 400)).to.deep.equal({ 'web-v1': 200, '500': 200 });
    });

    it('answers 500 for the share of a backend Service that does not exist', () => {
      const exists = (s: string) => s !== 'web-v2';
      expect(tally(rootRules(httpRoute()), 100, get('/'), exists)).to.deep.equal({ 'web-v1': 70, '500': 30 });
    });
  });

  describe('route table', () => {
    const split = (weights: [number, number], name = 'web'): KubernetesObject =>
      ({
        apiVersion: 'split.smi-spec.io/v1alpha2',
        kind: 'TrafficSplit',
        metadata: { name, namespace: NS, resourceVersion: '1' },
        spec: {
          service: 'web',
          backends: [
            { service: 'web-v1', weight: weights[0] },
            { service: 'web-v2', weight: weights[1] },
          ],
        },
      }) as KubernetesObject;
    const httpTally = (table: RouteTable, n: number, req = get('/')) => {
      const out: Record<string, number> = {};
      for (let i = 0; i < n; i++) {
        const d = table.decideHttp(NS, 'web', req);
        const k = d === undefined ? 'none' : d.ok ? d.service : String(d.status);
        out[k] = (out[k] ?? 0) + 1;
      }
      return out;
    };

    it('routes HTTP by the HTTPRoute over a TrafficSplit naming the same root; TCP keeps the split', () => {
      const table = new RouteTable(() => 0);
      table.apply(split([100, 0]));
      expect(httpTally(table, 10)).to.deep.equal({ 'web-v1': 10 });
      const applied = table.applyHttpRoute(httpRoute());
      expect(applied).to.deep.equal([
        {
          kind: 'HTTPRoute',
          namespace: NS,
          root: 'web',
          name: 'web',
          resourceVersion: '1',
          deleted: false,
          changed: true,
          skipped: [],
          appliedAt: 0,
        },
      ]);
      expect(httpTally(table, 100)).to.deep.equal({ 'web-v1': 70, 'web-v2': 30 });
      expect(table.pick(NS, 'web', 'tcp')).to.equal('web-v1');
      expect(table.route(NS, 'web')).to.deep.include({ kind: 'HTTPRoute', routes: ['web'] });
      expect(table.route(NS, 'web')).to.have.deep.property('rules', [
        {
          route: 'web',
          index: 0,
          backends: [
            { service: 'web-v1', weight: 70 },
            { service: 'web-v2', weight: 30 },
          ],
        },
      ]);
      // Deleting the route hands the root back to its split.
      expect(table.removeHttpRoute(httpRoute()).map((a) => [a.root, a.deleted, a.changed])).to.deep.equal([
        ['web', true, true],
      ]);
      expect(httpTally(table, 10)).to.deep.equal({ 'web-v1': 10 });
      expect(table.route(NS, 'web')).to.deep.include({ kind: 'TrafficSplit', split: 'web' });
    });

    it('ignores a route whose parent is a Gateway: nothing changes', () => {
      const table = new RouteTable(() => 0);
      table.apply(split([100, 0]));
      const gateway = httpRoute({
        parents: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'web' }],
      });
      expect(table.applyHttpRoute(gateway)).to.deep.equal([]);
      expect(httpTally(table, 10)).to.deep.equal({ 'web-v1': 10 });
      expect(table.route(NS, 'web')?.kind).to.equal('TrafficSplit');
      expect(table.removeHttpRoute(gateway)).to.deep.equal([]);
      const bare = new RouteTable(() => 0);
      bare.applyHttpRoute(gateway);
      expect(bare.decideHttp(NS, 'web', get('/'))).to.equal(undefined);
      expect(bare.roots()).to.deep.equal([]);
    });

    it('follows a weight edit at once, keeps the round-robin through an edit of something else, and leaves a root the route no longer names', () => {
      let now = 1;
      const table = new RouteTable(() => now);
      table.applyHttpRoute(httpRoute());
      now = 2;
      const relabelled = table.applyHttpRoute(httpRoute({ labels: { a: 'b' } }));
      expect(relabelled.map((a) => [a.changed, a.appliedAt])).to.deep.equal([[false, 1]]);
      now = 3;
      const edited = httpRoute({
        rules: [
          {
            backendRefs: [
              { name: 'web-v1', weight: 1 },
              { name: 'web-v2', weight: 1 },
            ],
          },
        ],
      });
      expect(table.applyHttpRoute(edited).map((a) => [a.changed, a.appliedAt])).to.deep.equal([[true, 3]]);
      expect(httpTally(table, 10)).to.deep.equal({ 'web-v1': 5, 'web-v2': 5 });
      // A header match edit is a change too, though no weight moved.
      const matched = httpRoute({
        rules: [
          { matches: [{ headers: [{ name: 'x-canary', value: 'yes' }] }], backendRefs: [{ name: 'web-v2' }] },
        ],
      });
      expect(table.applyHttpRoute(matched).map((a) => a.changed)).to.deep.equal([true]);
      expect(httpTally(table, 3, get('/', { 'x-canary': 'yes' }))).to.deep.equal({ 'web-v2': 3 });
      expect(httpTally(table, 3)).to.deep.equal({ '404': 3 });

      const moved = httpRoute({ parents: [serviceParent('api')] });
      expect(table.applyHttpRoute(moved).map((a) => [a.root, a.deleted])).to.deep.equal([
        ['web', true],
        ['api', false],
      ]);
      expect(table.decideHttp(NS, 'web', get('/'))).to.equal(undefined);
      expect(table.roots()).to.deep.equal([{ namespace: NS, root: 'api' }]);
    });

    it('reports the refs whose share is answered 500 as skipped', () => {
      const table = new RouteTable(() => 0);
      const applied = table.applyHttpRoute(
        httpRoute({ rules: [{ backendRefs: [{ name: 'web-v1' }, { kind: 'ConfigMap', name: 'cm' }] }] }),
      );
      expect(applied.map((a) => a.skipped)).to.deep.equal([['ConfigMap/cm']]);
    });
  });
});
