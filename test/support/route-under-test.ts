// The routing object a scenario runs over, SMI TrafficSplit or Gateway API HTTPRoute: how the test reads a
// version's weights, makes a person's route (Perch's to manage or not), changes weights by hand, judges a version.
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
  name?: string;
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
 * listing the versions not live at 0 (`versions`, web-v2 and web-v3 unless given), a rule of another backend,
 * and a Gateway parent beside the Service one. Perch may change only the two weights.
 */
export function personsRoute(
  name: string,
  managedBy?: string,
  versions: readonly string[] = ['web-v2', 'web-v3'],
): RouteObject {
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
            ...versions.map((v) => ref(v, 0)),
          ],
        },
        {
          name: 'static',
          matches: [{ path: { type: 'PathPrefix', value: '/static' } }],
          backendRefs: [ref('cdn')],
        },
        { name: 'default', backendRefs: [ref('web-v1'), ...versions.map((v) => ref(v, 0))] },
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

/** The canary's share of a version's stable and canary weights, as a whole percentage (as backendsOf reads them). */
export function canaryShareOf(
  router: RouterKind,
  o: KubernetesObject,
  stable: string,
  canary: string,
): number {
  const backends = backendsOf(router, o, stable);
  const weight = (service: string) => backends.find((b) => b.service === service)?.weight ?? 0;
  const total = weight(stable) + weight(canary);
  return total > 0 ? Math.round((100 * weight(canary)) / total) : 0;
}

export interface RoutedServices {
  /** The root Service as a TrafficSplit names it (`web.<namespace>.svc.cluster.local`). */
  root: string;
  stable: string;
  canary: string;
}

/** What is wrong with one version Perch wrote, by SPEC §3's rules for its router; undefined when nothing is. */
export function versionProblem(
  router: RouterKind,
  o: KubernetesObject,
  s: RoutedServices,
): string | undefined {
  return router === 'smi' ? splitProblem(o, s) : httpRouteProblem(o, s);
}

/** SMI: the root service, only stable and canary, each once at a positive whole weight, 100 in all. */
function splitProblem(o: KubernetesObject, s: RoutedServices): string | undefined {
  const spec = (o as { spec?: { service?: unknown; backends?: { service?: unknown; weight?: unknown }[] } })
    .spec;
  if (spec?.service !== s.root) return `spec.service is ${JSON.stringify(spec?.service)}, not ${s.root}`;
  const backends = spec.backends ?? [];
  const names = backends.map((b) => b.service);
  if (backends.length === 0) return 'no backends';
  if (new Set(names).size !== names.length) return `a backend is listed twice: ${names.join(',')}`;
  for (const b of backends) {
    if (b.service !== s.stable && b.service !== s.canary)
      return `backend ${String(b.service)} is neither stable nor canary`;
    if (typeof b.weight !== 'number' || !Number.isInteger(b.weight) || b.weight <= 0)
      return `backend ${String(b.service)} has weight ${JSON.stringify(b.weight)}, not a positive whole number`;
  }
  const total = backends.reduce((n, b) => n + Number(b.weight), 0);
  return total === 100 ? undefined : `the weights add up to ${total}`;
}

/**
 * HTTPRoute: in every rule routing to stable (the rules Perch chooses by default), the stable and canary
 * backendRefs carry whole weights 0..100 that add up to 100, and every such rule gives the canary the same.
 */
function httpRouteProblem(o: KubernetesObject, s: RoutedServices): string | undefined {
  const rules = (o as { spec?: { rules?: Rule[] } }).spec?.rules ?? [];
  const names = (ref: BackendRef, service: string) => isService(ref) && ref.name === service;
  let share: number | undefined;
  let chosen = 0;
  for (const [i, rule] of rules.entries()) {
    const refs = rule.backendRefs ?? [];
    if (!refs.some((ref) => names(ref, s.stable))) continue;
    chosen++;
    const at = `rule ${rule.name ?? i}`;
    for (const ref of refs.filter((r) => names(r, s.stable) || names(r, s.canary))) {
      const w = ref.weight;
      if (typeof w !== 'number' || !Number.isInteger(w) || w < 0 || w > 100)
        return `${at}: backendRef ${String(ref.name)} has weight ${JSON.stringify(w)}, not a whole number 0..100`;
    }
    const sum = (service: string) =>
      refs.filter((r) => names(r, service)).reduce((n, r) => n + (r.weight ?? 0), 0);
    const total = sum(s.stable) + sum(s.canary);
    if (total !== 100) return `${at}: ${s.stable} and ${s.canary} weigh ${total} together, not 100`;
    if (share !== undefined && sum(s.canary) !== share)
      return `${at} gives ${s.canary} ${sum(s.canary)}, an earlier rule ${share}`;
    share = sum(s.canary);
  }
  return chosen > 0 ? undefined : `no rule has a backendRef to ${s.stable}`;
}

/**
 * What changed from one version to the next beyond what Perch may change: the stable and canary weights
 * (an SMI split's backends) and perch.dev/ annotations. Undefined when nothing else did.
 */
export function changeBeyondWeights(
  router: RouterKind,
  before: KubernetesObject,
  after: KubernetesObject,
  services: ReadonlySet<string>,
): string | undefined {
  const metadata = (o: KubernetesObject) => {
    const m = o.metadata ?? {};
    const annotations = Object.entries(m.annotations ?? {})
      .filter(([key]) => !key.startsWith('perch.dev/'))
      .sort(([a], [b]) => a.localeCompare(b));
    return JSON.stringify({
      labels: m.labels ?? {},
      annotations,
      ownerReferences: m.ownerReferences ?? [],
      finalizers: m.finalizers ?? [],
    });
  };
  const spec = (o: KubernetesObject) => {
    if (router === 'gatewayapi') return maskedSpec(o, services);
    const { backends: _weights, ...rest } = (o as { spec?: Record<string, unknown> }).spec ?? {};
    return JSON.stringify(rest);
  };
  for (const [part, of] of [
    ['metadata', metadata],
    ['spec', spec],
  ] as const) {
    const [b, a] = [of(before), of(after)];
    if (b !== a) return `${part} changed: ${where(b, a)}`;
  }
  return undefined;
}

/** Where two serialisations part: the text around the first difference in each. */
function where(before: string, after: string): string {
  let i = 0;
  while (i < before.length && before[i] === after[i]) i++;
  const from = Math.max(0, i - 80);
  const cut = (s: string) =>
    `${from > 0 ? '…' : ''}${s.slice(from, i + 120)}${s.length > i + 120 ? '…' : ''}`;
  return `${cut(before)} -> ${cut(after)}`;
}
