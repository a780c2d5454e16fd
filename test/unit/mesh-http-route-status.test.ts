// The status the sandbox mesh writes on an HTTPRoute, without servers: its own status.parents entries,
// others' left in place, lastTransitionTime kept while a condition holds, and nothing to write when unchanged.
import type { KubernetesObject } from '@kubernetes/client-node';
import { expect } from 'chai';
import {
  MESH_CONTROLLER_NAME,
  routeParentStatuses,
  type RouteParentStatus,
} from '../../src/sandbox/mesh/http-route-status.js';

const NS = 'shop';
const T0 = Date.parse('2024-05-01T10:00:00.750Z');
const T1 = T0 + 60_000;
const WEB = { group: '', kind: 'Service', name: 'web', port: 80 };
const API = { group: '', kind: 'Service', name: 'api' };
const EDGE = { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'edge' };
const ISTIO_ENTRY = {
  parentRef: EDGE,
  controllerName: 'istio.io/gateway-controller',
  conditions: [
    {
      type: 'Accepted',
      status: 'True',
      reason: 'Accepted',
      message: 'fine',
      observedGeneration: 1,
      lastTransitionTime: '2024-01-01T00:00:00Z',
    },
  ],
};

function route(opts: {
  parents?: unknown[];
  backends?: unknown[];
  generation?: number;
  status?: unknown[];
  rules?: unknown[];
}) {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'web', namespace: NS, generation: opts.generation ?? 3, resourceVersion: '10' },
    spec: {
      parentRefs: opts.parents ?? [WEB],
      rules: opts.rules ?? [
        {
          backendRefs: opts.backends ?? [
            { name: 'web-v1', weight: 90 },
            { name: 'web-v2', weight: 10 },
          ],
        },
      ],
    },
    ...(opts.status ? { status: { parents: opts.status } } : {}),
  } as KubernetesObject;
}

const all = () => true;
const conditions = (entry: unknown) =>
  Object.fromEntries((entry as RouteParentStatus).conditions.map((c) => [c.type, c]));

describe('sandbox mesh: HTTPRoute status.parents', () => {
  it('writes one entry per Service parent, under its controllerName, with Accepted and ResolvedRefs at the generation', () => {
    const update = routeParentStatuses(route({ parents: [WEB, EDGE, API] }), { serviceExists: all, now: T0 });
    expect(update.changed).to.equal(true);
    expect(update.parents).to.deep.equal(
      [WEB, API].map((parentRef) => ({
        parentRef,
        controllerName: MESH_CONTROLLER_NAME,
        conditions: [
          {
            type: 'Accepted',
            status: 'True',
            reason: 'Accepted',
            message: 'routed by the sandbox mesh',
            observedGeneration: 3,
            lastTransitionTime: '2024-05-01T10:00:00Z',
          },
          {
            type: 'ResolvedRefs',
            status: 'True',
            reason: 'ResolvedRefs',
            message: 'every backendRef names an existing Service',
            observedGeneration: 3,
            lastTransitionTime: '2024-05-01T10:00:00Z',
          },
        ],
      })),
    );
    expect(MESH_CONTROLLER_NAME).to.match(/^[a-z0-9.-]+\/[A-Za-z0-9/._-]+$/);
  });

  it('has nothing to write when its entries are already there (its own write does not cause another)', () => {
    const first = routeParentStatuses(route({ status: [ISTIO_ENTRY] }), { serviceExists: all, now: T0 });
    const again = routeParentStatuses(route({ status: first.parents }), { serviceExists: all, now: T1 });
    expect(again).to.deep.equal({ parents: first.parents, changed: false });
  });

  it("keeps every other controller's entry untouched and in place", () => {
    const mine = routeParentStatuses(route({}), { serviceExists: all, now: T0 }).parents[0];
    const later = { ...ISTIO_ENTRY, controllerName: 'example.net/other' };
    const update = routeParentStatuses(route({ generation: 4, status: [ISTIO_ENTRY, mine, later] }), {
      serviceExists: all,
      now: T1,
    });
    expect(update.changed).to.equal(true);
    expect(update.parents[0]).to.equal(ISTIO_ENTRY);
    expect(update.parents[2]).to.equal(later);
    expect((update.parents[1] as RouteParentStatus).controllerName).to.equal(MESH_CONTROLLER_NAME);
  });

  it('follows a new generation, keeping lastTransitionTime where the status holds', () => {
    const first = routeParentStatuses(route({}), { serviceExists: all, now: T0 });
    const next = routeParentStatuses(route({ generation: 4, status: first.parents }), {
      serviceExists: all,
      now: T1,
    });
    expect(next.changed).to.equal(true);
    const c = conditions(next.parents[0]);
    expect([c.Accepted!.observedGeneration, c.ResolvedRefs!.observedGeneration]).to.deep.equal([4, 4]);
    expect([c.Accepted!.lastTransitionTime, c.ResolvedRefs!.lastTransitionTime]).to.deep.equal([
      '2024-05-01T10:00:00Z',
      '2024-05-01T10:00:00Z',
    ]);
  });

  it('says ResolvedRefs=False BackendNotFound for a backendRef to a Service that does not exist, with a new lastTransitionTime', () => {
    const first = routeParentStatuses(route({}), { serviceExists: all, now: T0 });
    const missing = routeParentStatuses(route({ status: first.parents }), {
      serviceExists: (ns, name) => !(ns === NS && name === 'web-v2'),
      now: T1,
    });
    expect(missing.changed).to.equal(true);
    const c = conditions(missing.parents[0]);
    expect(c.ResolvedRefs).to.deep.equal({
      type: 'ResolvedRefs',
      status: 'False',
      reason: 'BackendNotFound',
      message: 'rule 0: backendRef Service shop/web-v2 does not exist',
      observedGeneration: 3,
      lastTransitionTime: '2024-05-01T10:01:00Z',
    });
    expect(c.Accepted).to.deep.include({ status: 'True', lastTransitionTime: '2024-05-01T10:00:00Z' });
  });

  it('names InvalidKind and RefNotPermitted refs, the first giving the reason', () => {
    const update = routeParentStatuses(
      route({
        backends: [
          { kind: 'ConfigMap', name: 'cm' },
          { name: 'web-v1', namespace: 'elsewhere' },
        ],
      }),
      { serviceExists: all, now: T0 },
    );
    const c = conditions(update.parents[0]).ResolvedRefs!;
    expect([c.status, c.reason]).to.deep.equal(['False', 'InvalidKind']);
    expect(c.message).to.match(
      /ConfigMap\/cm is not a Service.*; rule 0: backendRef Service elsewhere\/web-v1 is in another namespace/,
    );
  });

  it("takes its entries off a route that no longer names a Service parent, leaving others'", () => {
    const mine = routeParentStatuses(route({}), { serviceExists: all, now: T0 }).parents[0];
    const update = routeParentStatuses(route({ parents: [EDGE], status: [mine, ISTIO_ENTRY] }), {
      serviceExists: all,
      now: T1,
    });
    expect(update).to.deep.equal({ parents: [ISTIO_ENTRY], changed: true });
    // A Gateway's route the mesh never wrote on: nothing to write.
    expect(
      routeParentStatuses(route({ parents: [EDGE], status: [ISTIO_ENTRY] }), { serviceExists: all, now: T1 }),
    ).to.deep.equal({ parents: [ISTIO_ENTRY], changed: false });
  });

  it('reports dropped rules as PartiallyInvalid, and a route with none it can honour as not Accepted', () => {
    const regex = {
      matches: [{ path: { type: 'RegularExpression', value: '/b.*' } }],
      backendRefs: [{ name: 'web-v1' }],
    };
    const partly = routeParentStatuses(route({ rules: [regex, { backendRefs: [{ name: 'web-v1' }] }] }), {
      serviceExists: all,
      now: T0,
    });
    expect(conditions(partly.parents[0]).PartiallyInvalid).to.deep.include({
      status: 'True',
      reason: 'UnsupportedValue',
      message: 'Dropped Rule(s): rule 0 match 0: path type RegularExpression',
    });
    expect(conditions(partly.parents[0]).Accepted).to.deep.include({ status: 'True' });
    const none = routeParentStatuses(route({ rules: [regex] }), { serviceExists: all, now: T0 });
    expect(conditions(none.parents[0]).Accepted).to.deep.include({
      status: 'False',
      reason: 'UnsupportedValue',
    });
    expect(conditions(none.parents[0])).to.not.have.property('PartiallyInvalid');
  });
});
