// The routing object a scenario runs over, SMI TrafficSplit or Gateway API HTTPRoute: how the test reads a
// version's weights, makes a person's route (Perch's to manage or not), and changes weights by hand.
import type { KubernetesObject } from '@kubernetes/client-node';

export type RouterKind = 'smi' | 'gatewayapi';
/** Every router the rollout scenarios run over. */
export const ROUTERS: readonly RouterKind[] = ['smi', 'gatewayapi'];

export interface RouteResourceRef {
  group: string;
  version: string;
  plural: string;
  apiVersion: string;
  kind: string;
}

export const TRAFFICSPLIT: RouteResourceRef = {
  group: 'split.smi-spec.io',
  version: 'v1alpha2',
  plural: 'trafficsplits',
  apiVersion: 'split.smi-spec.io/v1alpha2',
  kind: 'TrafficSplit',
};

export const HTTPROUTE: RouteResourceRef = {
  group: 'gateway.networking.k8s.io',
  version: 'v1',
  plural: 'httproutes',
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'HTTPRoute',
};

export const resourceOf = (router: RouterKind) => (router === 'smi' ? TRAFFICSPLIT : HTTPROUTE);

/** A routing object as a test writes it. */
export type RouteObject = KubernetesObject & { spec: unknown };

export interface Backend {
  service: string;
  weight: number;
}

interface BackendRef {
  name?: string;
  group?: string;
  kind?: string;
  weight?: number;
}
interface Rule {
  backendRefs?: BackendRef[];
}

const isService = (ref: BackendRef) => (ref.group ?? '') === '' && (ref.kind ?? 'Service') === 'Service';

/**
 * The backends a version routes to, in order, as SMI lists them: for an HTTPRoute, the first rule with a
 * backendRef to `stable` (weight absent = 1, Gateway API's default); a backend at 0 is left out either way.
 */
export function backendsOf(router: RouterKind, o: KubernetesObject, stable: string): Backend[] {
  if (router === 'smi') {
    const list = (o as { spec?: { backends?: { service: string; weight: number | string }[] } }).spec
      ?.backends;
    return (list ?? [])
      .map((b) => ({ service: b.service, weight: Number(b.weight) }))
      .filter((b) => b.weight > 0);
  }
  const rules = (o as { spec?: { rules?: Rule[] } }).spec?.rules ?? [];
  const rule = rules.find((r) => (r.backendRefs ?? []).some((b) => isService(b) && b.name === stable));
  return (rule?.backendRefs ?? [])
    .filter(isService)
    .map((b) => ({ service: b.name ?? '', weight: b.weight ?? 1 }))
    .filter((b) => b.weight > 0);
}

/** An HTTPRoute's spec with the weights of `services`' backendRefs taken out: what Perch may never change. */
export function maskedSpec(o: KubernetesObject, services: ReadonlySet<string>): string {
  const spec = structuredClone((o as { spec?: { rules?: Rule[] } }).spec ?? {});
  for (const rule of spec.rules ?? [])
    for (const ref of rule.backendRefs ?? [])
      if (isService(ref) && services.has(ref.name ?? '')) delete ref.weight;
  return JSON.stringify(spec);
}

/**
 * A person's HTTPRoute for the mesh (a Service parent, GAMMA) as a platform team writes one: two rules that
 * send to stable (one with a header match and filters of their own, one with the default weight), each
 * listing the versions not live at 0, a rule of another backend, and a Gateway parent beside the Service
 * one. Perch may change only the two weights.
 */
export function personsRoute(name: string, managedBy?: string): RouteObject {
  const ref = (service: string, weight?: number) => ({
    name: service,
    port: 80,
    ...(weight !== undefined ? { weight } : {}),
  });
  return {
    apiVersion: HTTPROUTE.apiVersion,
    kind: HTTPROUTE.kind,
    metadata: { name, ...(managedBy ? { annotations: { 'perch.dev/managed-by': managedBy } } : {}) },
    spec: {
      parentRefs: [
        { group: '', kind: 'Service', name: 'web', port: 80 },
        { name: 'edge', sectionName: 'https' },
      ],
      hostnames: ['web.example.com'],
      rules: [
        {
          name: 'beta-testers',
          matches: [
            { path: { type: 'PathPrefix', value: '/api' }, headers: [{ name: 'x-beta', value: 'yes' }] },
          ],
          filters: [
            {
              type: 'RequestHeaderModifier',
              requestHeaderModifier: { set: [{ name: 'x-route', value: 'beta' }] },
            },
          ],
          backendRefs: [
            {
              ...ref('web-v1', 100),
              filters: [
                {
                  type: 'RequestHeaderModifier',
                  requestHeaderModifier: { add: [{ name: 'x-backend', value: 'stable' }] },
                },
              ],
            },
            ref('web-v2', 0),
            ref('web-v3', 0),
          ],
        },
        {
          name: 'static',
          matches: [{ path: { type: 'PathPrefix', value: '/static' } }],
          backendRefs: [ref('cdn')],
        },
        { name: 'default', backendRefs: [ref('web-v1'), ref('web-v2', 0), ref('web-v3', 0)] },
      ],
    },
  };
}

/** A routing object nobody gave Perch (no owner, no perch.dev/managed-by) at stable/canary weights. */
export function foreignRoute(router: RouterKind, name: string, stable: number, canary: number): RouteObject {
  if (router === 'smi')
    return {
      apiVersion: TRAFFICSPLIT.apiVersion,
      kind: TRAFFICSPLIT.kind,
      metadata: { name },
      spec: {
        service: 'web',
        backends: [
          { service: 'web-v1', weight: stable },
          { service: 'web-v2', weight: canary },
        ],
      },
    };
  return {
    apiVersion: HTTPROUTE.apiVersion,
    kind: HTTPROUTE.kind,
    metadata: { name },
    spec: {
      parentRefs: [{ group: '', kind: 'Service', name: 'web' }],
      rules: [
        {
          backendRefs: [
            { name: 'web-v1', port: 80, weight: stable },
            { name: 'web-v2', port: 80, weight: canary },
          ],
        },
      ],
    },
  };
}

/** A JSON Patch a person would send to set stable/canary weights (in every rule routing to web-v1). */
export function handEdit(
  router: RouterKind,
  current: KubernetesObject,
  stable: number,
  canary: number,
): object[] {
  if (router === 'smi')
    return [
      {
        op: 'replace',
        path: '/spec/backends',
        value: [
          { service: 'web-v1', weight: stable },
          { service: 'web-v2', weight: canary },
        ],
      },
    ];
  const rules = (current as { spec?: { rules?: Rule[] } }).spec?.rules ?? [];
  return rules.flatMap((rule, i) =>
    (rule.backendRefs ?? []).flatMap((ref, j) =>
      ref.name === 'web-v1' || ref.name === 'web-v2'
        ? [
            {
              op: 'add',
              path: `/spec/rules/${i}/backendRefs/${j}/weight`,
              value: ref.name === 'web-v1' ? stable : canary,
            },
          ]
        : [],
    ),
  );
}
