// The chaos run's checks of what it recorded, over both routers: the plan's share of HTTPRoute runs, a
// version's validity, what may change between versions, and a write's precondition. Pure, no server.
import type { KubernetesObject } from '@kubernetes/client-node';
import { expect } from 'chai';
import { planRuns, prng, versionsOf, wrongSequence } from '../support/chaos.js';
import type { RecordedRoute } from '../support/chaos-recorder.js';
import {
  canaryShareOf,
  changeBeyondWeights,
  personsRoute,
  versionProblem,
  type RouterKind,
} from '../support/route-under-test.js';
import { unguardedWrite, type RouteWrite } from '../support/route-writes.js';

const SERVICES = { root: 'web.chaos.svc.cluster.local', stable: 'web-v1', canary: 'canary-3' };

interface Ref {
  name: string;
  weight?: number;
  filters?: unknown[];
}
type Route = KubernetesObject & { spec: { rules: { name?: string; backendRefs: Ref[] }[] } };

/** The person's route for run-3 as Perch leaves it at `canary` %: both rules to web-v1 written. */
function routeAt(canary: number, annotations: Record<string, string> = {}): Route {
  const route = structuredClone(personsRoute('run-3', 'run-3', ['canary-3'])) as Route;
  route.metadata!.annotations = {
    ...route.metadata!.annotations,
    'perch.dev/canary-weight': String(canary),
    ...annotations,
  };
  for (const rule of route.spec.rules)
    for (const ref of rule.backendRefs) {
      if (ref.name === 'web-v1') ref.weight = 100 - canary;
      if (ref.name === 'canary-3') ref.weight = canary;
    }
  return route;
}

const split = (backends: { service: string; weight: unknown }[]): KubernetesObject =>
  ({ metadata: { name: 'run-3' }, spec: { service: SERVICES.root, backends } }) as KubernetesObject;

const recorded = (router: RouterKind, object: KubernetesObject, rv: number): RecordedRoute => ({
  router,
  name: 'run-3',
  rv,
  type: 'MODIFIED',
  object,
  source: 'watch',
  at: 0,
});

describe('chaos checks', () => {
  describe('planRuns', () => {
    it('puts the given share over HTTPRoute, each kind taking turns, and leaves the kinds as the seed drew them', () => {
      for (const seed of [808, 1414, 7]) {
        const smiOnly = planRuns(8, 0.375, prng(seed));
        const mixed = planRuns(8, 0.375, prng(seed), 0.5);
        expect(mixed.map((r) => r.kind)).to.deep.equal(smiOnly.map((r) => r.kind));
        expect(smiOnly.every((r) => r.router === 'smi')).to.equal(true);
        const over = mixed.filter((r) => r.router === 'gatewayapi');
        expect(over).to.have.length(4);
        for (const router of ['smi', 'gatewayapi'] as const) {
          const kinds = new Set(mixed.filter((r) => r.router === router).map((r) => r.kind));
          expect(kinds, `${router}, seed ${seed}`).to.include('healthy');
          expect(
            [...kinds].some((k) => k !== 'healthy'),
            `${router} has a faulty run, seed ${seed}`,
          ).to.equal(true);
        }
      }
    });
  });

  describe('versionProblem', () => {
    it('accepts an HTTPRoute whose rules to stable each give stable and canary 100 together', () => {
      expect(versionProblem('gatewayapi', routeAt(30), SERVICES)).to.equal(undefined);
      expect(versionProblem('gatewayapi', routeAt(0), SERVICES)).to.equal(undefined);
      expect(canaryShareOf('gatewayapi', routeAt(30), 'web-v1', 'canary-3')).to.equal(30);
    });

    it('names the rule whose weights do not add up to 100, or differ from another rule', () => {
      const short = routeAt(30);
      short.spec.rules[2]!.backendRefs[0]!.weight = 69;
      expect(versionProblem('gatewayapi', short, SERVICES)).to.equal(
        'rule default: web-v1 and canary-3 weigh 99 together, not 100',
      );
      const uneven = routeAt(30);
      uneven.spec.rules[2]!.backendRefs[0]!.weight = 90;
      uneven.spec.rules[2]!.backendRefs[1]!.weight = 10;
      expect(versionProblem('gatewayapi', uneven, SERVICES)).to.equal(
        'rule default gives canary-3 10, an earlier rule 30',
      );
      const unset = routeAt(30);
      delete unset.spec.rules[0]!.backendRefs[1]!.weight;
      expect(versionProblem('gatewayapi', unset, SERVICES)).to.match(
        /rule beta-testers: backendRef canary-3/,
      );
    });

    it("keeps SMI's rules: positive weights of stable and canary only, 100 in all", () => {
      const ok = [
        { service: 'web-v1', weight: 70 },
        { service: 'canary-3', weight: 30 },
      ];
      expect(versionProblem('smi', split(ok), SERVICES)).to.equal(undefined);
      expect(versionProblem('smi', split([...ok, { service: 'web-v2', weight: 0 }]), SERVICES)).to.equal(
        'backend web-v2 is neither stable nor canary',
      );
      expect(versionProblem('smi', split([{ service: 'web-v1', weight: 90 }]), SERVICES)).to.equal(
        'the weights add up to 90',
      );
    });
  });

  describe('changeBeyondWeights', () => {
    const services = new Set(['web-v1', 'canary-3']);

    it("lets the two weights and perch.dev annotations change, nothing of the person's route else", () => {
      const persons = personsRoute('run-3', 'run-3', ['canary-3']);
      expect(changeBeyondWeights('gatewayapi', persons, routeAt(0), services)).to.equal(undefined);
      expect(changeBeyondWeights('gatewayapi', routeAt(10), routeAt(30), services)).to.equal(undefined);
    });

    it('names a filter dropped, a backendRef added, or an annotation of the person changed', () => {
      const dropped = routeAt(30);
      delete dropped.spec.rules[0]!.backendRefs[0]!.filters;
      expect(changeBeyondWeights('gatewayapi', routeAt(10), dropped, services)).to.match(/^spec changed/);
      const added = routeAt(30);
      added.spec.rules[1]!.backendRefs.push({ name: 'canary-3', weight: 30 });
      expect(changeBeyondWeights('gatewayapi', routeAt(10), added, services)).to.match(/^spec changed/);
      const annotated = routeAt(30, { team: 'web' });
      expect(changeBeyondWeights('gatewayapi', routeAt(10), annotated, services)).to.match(
        /^metadata changed/,
      );
    });

    it("names an SMI split's root service changed, not its backends", () => {
      const before = split([{ service: 'web-v1', weight: 100 }]);
      const after = split([
        { service: 'web-v1', weight: 90 },
        { service: 'canary-3', weight: 10 },
      ]);
      expect(changeBeyondWeights('smi', before, after, services)).to.equal(undefined);
      (after as { spec: { service: string } }).spec.service = 'other';
      expect(changeBeyondWeights('smi', before, after, services)).to.match(/^spec changed/);
    });
  });

  describe('versionsOf and wrongSequence', () => {
    it("reads an HTTPRoute run's weights after the person's version, and names a version not Perch's", () => {
      const history = [0, 10, 30, 60, 100].map((w, i) => recorded('gatewayapi', routeAt(w), i + 2));
      const persons = recorded('gatewayapi', personsRoute('run-3', 'run-3', ['canary-3']), 1);
      const run = {
        name: 'run-3',
        canary: 'canary-3',
        kind: 'healthy' as const,
        router: 'gatewayapi' as const,
      };
      const { perch, problem } = versionsOf(run, [persons, ...history]);
      expect(problem).to.equal(undefined);
      const weights = perch.map((v) => canaryShareOf('gatewayapi', v.object, 'web-v1', 'canary-3'));
      expect(wrongSequence('healthy', weights)).to.equal(undefined);
      expect(wrongSequence('healthy', [0, 10, 30, 30, 60, 100])).to.match(
        /^wrote \[0, 10, 30, 30, 60, 100\]/,
      );
      expect(versionsOf(run, history).problem).to.equal(
        "the first HTTPRoute version (rv 2) is not the person's",
      );
      expect(versionsOf(run, [persons, persons, ...history]).problem).to.equal(
        'HTTPRoute version rv 1 carries no perch.dev/canary-weight',
      );
    });
  });

  describe('unguardedWrite', () => {
    const write = (verb: string, body: unknown): RouteWrite => ({
      router: 'gatewayapi',
      name: 'run-3',
      verb,
      code: 200,
      userAgent: 'perch-controller/0.1.0',
      at: '',
      body,
    });
    const test = (i: number) => ({ op: 'test', path: `/spec/rules/${i}/backendRefs`, value: [] });
    const weight = (i: number) => ({
      op: 'replace',
      path: `/spec/rules/${i}/backendRefs/0/weight`,
      value: 90,
    });
    const note = { op: 'add', path: '/metadata/annotations/perch.dev~1canary-weight', value: '10' };

    it('accepts a JSON Patch pinning each rule it changes, a patch with a resourceVersion, a create', () => {
      expect(unguardedWrite(write('patch', [test(0), weight(0), test(2), weight(2), note]))).to.equal(
        undefined,
      );
      expect(unguardedWrite(write('patch', { metadata: { resourceVersion: '42' }, spec: {} }))).to.equal(
        undefined,
      );
      expect(unguardedWrite(write('create', { spec: {} }))).to.equal(undefined);
    });

    it('names a JSON Patch without a test first, a rule changed unpinned, a patch without resourceVersion', () => {
      expect(unguardedWrite(write('patch', [weight(0), test(0)]))).to.match(/does not open with a test/);
      expect(unguardedWrite(write('patch', [test(0), weight(0), weight(2)]))).to.match(
        /changes rule 2 without a test of it first/,
      );
      expect(unguardedWrite(write('patch', { spec: { backends: [] } }))).to.match(
        /without a resourceVersion/,
      );
      expect(unguardedWrite(write('update', undefined))).to.match(/no request body/);
    });
  });
});
