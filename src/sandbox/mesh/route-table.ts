// The mesh's routing table: which backends each root Service sends to, read from the TrafficSplits and the
// GAMMA HTTPRoutes watched. Changes land synchronously in the watch's event handler, so the very next
// request follows them. A root some HTTPRoute names as its parent routes HTTP by its HTTPRoutes alone, even
// where a TrafficSplit also names it (the newer API wins, and the mesh never mixes two sets of weights);
// TCP, which no HTTPRoute describes, follows the split either way.
import type { KubernetesObject } from '@kubernetes/client-node';
import { serviceName } from '../../api/service-name.js';
import { versionModule } from '../../k8s/trafficsplit/router.js';
import {
  readHttpRoute,
  RootRules,
  type Decision,
  type MeshHttpRoute,
  type RequestFacts,
} from './http-route-rules.js';
import { WeightedPicker } from './weighted-picker.js';

export type Protocol = 'http' | 'tcp';

export interface RouteBackend {
  /** The backend Service's short name. */
  service: string;
  /** As the split stores it, as a number (a v1alpha1 quantity such as "900m" reads 0.9). */
  weight: number;
}

/** What a root routes by now, when that is a TrafficSplit. */
export interface SplitRoute {
  kind: 'TrafficSplit';
  namespace: string;
  /** The root Service's short name. */
  root: string;
  /** The TrafficSplit's name. */
  split: string;
  /** Backends with a positive weight, in the split's order. */
  backends: RouteBackend[];
  resourceVersion: string | undefined;
  /** performance.now() when these backends took effect. */
  appliedAt: number;
}

/** What a root routes HTTP by now, when HTTPRoutes name it as their parent. */
export interface HttpRoutesRoute {
  kind: 'HTTPRoute';
  namespace: string;
  /** The root Service's short name. */
  root: string;
  /** The HTTPRoutes attached, in precedence order. */
  routes: string[];
  /** Every honoured rule of those routes, route by route; backends with their weights, 0 included. */
  rules: { route: string; index: number; name?: string; backends: RouteBackend[] }[];
  /** performance.now() when these rules took effect. */
  appliedAt: number;
}

export type Route = SplitRoute | HttpRoutesRoute;

/** Told once per TrafficSplit watch event that touched the table. */
export interface AppliedSplit extends SplitRoute {
  /** The split is gone: its root no longer routes by it. */
  deleted: boolean;
  /** The backends differ from the split's previous ones (a fresh round-robin started). */
  changed: boolean;
  /** Backends skipped because they do not name a Service of the split's namespace, or have no weight. */
  skipped: string[];
}

/** Told, for each root it names now or named before, once per HTTPRoute watch event. */
export interface AppliedHttpRoute {
  kind: 'HTTPRoute';
  namespace: string;
  root: string;
  /** The HTTPRoute of the event. */
  name: string;
  resourceVersion: string | undefined;
  /** The route no longer names this root as a parent (deleted, or its parentRefs changed). */
  deleted: boolean;
  /** The root's rules differ from before. */
  changed: boolean;
  /** backendRefs whose share of requests is answered 500: not a Service of the route's namespace. */
  skipped: string[];
  appliedAt: number;
}

export type Applied = AppliedSplit | AppliedHttpRoute;

interface Entry {
  route: SplitRoute;
  pickers: Record<Protocol, WeightedPicker<string>>;
}

interface SplitShape extends KubernetesObject {
  spec?: { service?: unknown; backends?: unknown };
}

const key = (namespace: string, name: string) => `${namespace}/${name}`;

function sameBackends(a: RouteBackend[], b: RouteBackend[]): boolean {
  return a.length === b.length && a.every((x, i) => x.service === b[i]?.service && x.weight === b[i]?.weight);
}

function pickersFor(backends: RouteBackend[]): Entry['pickers'] {
  const choices = backends.map((b) => ({ value: b.service, weight: b.weight }));
  // HTTP and TCP each get their own round-robin, so each protocol's shares are exact on their own.
  return { http: new WeightedPicker(choices), tcp: new WeightedPicker(choices) };
}

interface HttpRootEntry {
  rules: RootRules;
  view: HttpRoutesRoute;
  /** What decides the root's routing, to tell a real change from an edit of something else. */
  signature: string;
}

function httpView(namespace: string, root: string, rules: RootRules, appliedAt: number): HttpRoutesRoute {
  return {
    kind: 'HTTPRoute',
    namespace,
    root,
    routes: rules.routes.map((r) => r.name),
    rules: rules.routes.flatMap((r) =>
      r.rules
        .filter((rule) => rule.unsupported === undefined)
        .map((rule) => ({
          route: r.name,
          index: rule.index,
          ...(rule.name === undefined ? {} : { name: rule.name }),
          backends: rule.backends
            .filter((b) => b.problem === undefined)
            .map((b) => ({ service: b.service, weight: b.weight })),
        })),
    ),
    appliedAt,
  };
}

const signatureOf = (routes: readonly MeshHttpRoute[]) =>
  JSON.stringify(
    [...routes]
      .map((r) => ({ name: r.name, createdAt: r.createdAt, rules: r.rules }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
  );

function copyView(view: HttpRoutesRoute): HttpRoutesRoute {
  return {
    ...view,
    routes: [...view.routes],
    rules: view.rules.map((r) => ({ ...r, backends: r.backends.map((b) => ({ ...b })) })),
  };
}

export class RouteTable {
  /** ns/root → split name → entry. SMI lets several splits name one root; the first by name wins. */
  private readonly byRoot = new Map<string, Map<string, Entry>>();
  /** ns/split → ns/root, so an edit that moves a split to another root leaves the old one. */
  private readonly rootOfSplit = new Map<string, string>();
  /** ns/name → the HTTPRoutes that name some Service parent the mesh serves. */
  private readonly httpRoutes = new Map<string, MeshHttpRoute>();
  /** ns/root → the rules of every HTTPRoute naming that root as a parent. */
  private readonly httpRoots = new Map<string, HttpRootEntry>();

  constructor(private readonly clock: () => number = () => performance.now()) {}

  /** Takes in an added or updated split. A split whose root is not a Service of its namespace is refused. */
  apply(obj: KubernetesObject): { ok: true; applied: AppliedSplit } | { ok: false; reason: string } {
    const namespace = obj.metadata?.namespace ?? '';
    const split = obj.metadata?.name ?? '';
    const spec = (obj as SplitShape).spec;
    const rawRoot = typeof spec?.service === 'string' ? spec.service : '';
    const root = serviceName(namespace, rawRoot);
    if (!root) {
      this.remove(obj);
      return {
        ok: false,
        reason: `TrafficSplit ${namespace}/${split}: spec.service "${rawRoot}" is not a Service of namespace ${namespace}`,
      };
    }
    // A split read through another version than its own still carries its weights' wire form; v1alpha2 reads both.
    const module = versionModule(obj.apiVersion) ?? versionModule('split.smi-spec.io/v1alpha2')!;
    const backends: RouteBackend[] = [];
    const skipped: string[] = [];
    for (const raw of Array.isArray(spec?.backends) ? (spec.backends as unknown[]) : []) {
      const b = (raw ?? {}) as { service?: unknown; weight?: unknown };
      const service = typeof b.service === 'string' ? serviceName(namespace, b.service) : undefined;
      const weight = module.parseWeight(b.weight);
      if (service && weight !== undefined && weight > 0) backends.push({ service, weight });
      else skipped.push(typeof b.service === 'string' ? b.service : JSON.stringify(raw));
    }

    const splitKey = key(namespace, split);
    const rootKey = key(namespace, root);
    const movedFrom = this.rootOfSplit.get(splitKey);
    if (movedFrom !== undefined && movedFrom !== rootKey) this.forget(movedFrom, split);
    const splits = this.byRoot.get(rootKey) ?? new Map<string, Entry>();
    this.byRoot.set(rootKey, splits);
    this.rootOfSplit.set(splitKey, rootKey);

    const previous = splits.get(split);
    const changed = !previous || !sameBackends(previous.route.backends, backends);
    const route: SplitRoute = {
      kind: 'TrafficSplit',
      namespace,
      root,
      split,
      backends,
      resourceVersion: obj.metadata?.resourceVersion,
      // An edit that leaves the weights alone (an annotation, a label) keeps the round-robin where it stood.
      appliedAt: changed ? this.clock() : previous.route.appliedAt,
    };
    splits.set(split, { route, pickers: changed ? pickersFor(backends) : previous.pickers });
    return { ok: true, applied: { ...route, backends: [...backends], deleted: false, changed, skipped } };
  }

  /** Takes out a deleted split; undefined when the table never held it. */
  remove(obj: KubernetesObject): AppliedSplit | undefined {
    const namespace = obj.metadata?.namespace ?? '';
    const split = obj.metadata?.name ?? '';
    const rootKey = this.rootOfSplit.get(key(namespace, split));
    if (rootKey === undefined) return undefined;
    const entry = this.forget(rootKey, split);
    this.rootOfSplit.delete(key(namespace, split));
    if (!entry) return undefined;
    return {
      ...entry.route,
      backends: [],
      resourceVersion: obj.metadata?.resourceVersion,
      appliedAt: this.clock(),
      deleted: true,
      changed: true,
      skipped: [],
    };
  }

  /**
   * Takes in an added or updated HTTPRoute (a route whose parents are not Services of its namespace, such
   * as a Gateway's, is nobody's here and only leaves the roots it named before). One entry per root the
   * route names now or named before.
   */
  applyHttpRoute(obj: KubernetesObject): AppliedHttpRoute[] {
    const route = readHttpRoute(obj);
    const k = key(route.namespace, route.name);
    const before = this.httpRoutes.get(k);
    if (route.parents.length > 0) this.httpRoutes.set(k, route);
    else this.httpRoutes.delete(k);
    const now = new Set(route.parents.map((p) => p.service));
    const roots = new Set([...(before?.parents.map((p) => p.service) ?? []), ...now]);
    const skipped = route.rules.flatMap((r) => r.backends.filter((b) => b.problem).map((b) => b.service));
    return [...roots].map((root) => ({
      kind: 'HTTPRoute',
      namespace: route.namespace,
      root,
      name: route.name,
      resourceVersion: route.resourceVersion,
      deleted: !now.has(root),
      skipped: now.has(root) ? skipped : [],
      ...this.compileRoot(route.namespace, root),
    }));
  }

  /** Takes out a deleted HTTPRoute: one entry per root it named. */
  removeHttpRoute(obj: KubernetesObject): AppliedHttpRoute[] {
    const namespace = obj.metadata?.namespace ?? '';
    const name = obj.metadata?.name ?? '';
    const before = this.httpRoutes.get(key(namespace, name));
    if (!before) return [];
    this.httpRoutes.delete(key(namespace, name));
    return [...new Set(before.parents.map((p) => p.service))].map((root) => ({
      kind: 'HTTPRoute',
      namespace,
      root,
      name,
      resourceVersion: obj.metadata?.resourceVersion,
      deleted: true,
      skipped: [],
      ...this.compileRoot(namespace, root),
    }));
  }

  /** The backend Service for the next connection, or request by the root's split; undefined without one. */
  pick(namespace: string, root: string, protocol: Protocol): string | undefined {
    return this.active(namespace, root)?.pickers[protocol].pick();
  }

  /**
   * Where the next HTTP request for the root goes: by the rules of its HTTPRoutes when some name it, else
   * by its split. undefined when neither routes the root. `serviceExists` (of the root's namespace) is
   * asked of an HTTPRoute's backend: one that does not exist is answered 500, as Gateway API requires.
   */
  decideHttp(
    namespace: string,
    root: string,
    req: RequestFacts,
    serviceExists?: (name: string) => boolean,
  ): Decision | undefined {
    const http = this.httpRoots.get(key(namespace, root));
    if (http) return http.rules.decide(req, serviceExists);
    const service = this.pick(namespace, root, 'http');
    return service === undefined ? undefined : { ok: true, service };
  }

  /** What the root routes HTTP by now (its HTTPRoutes, else its split), or undefined when nothing names it. */
  route(namespace: string, root: string): Route | undefined {
    const http = this.httpRoots.get(key(namespace, root));
    if (http) return copyView(http.view);
    const route = this.active(namespace, root)?.route;
    return route && { ...route, backends: [...route.backends] };
  }

  /** Every root some split or HTTPRoute names. */
  roots(): { namespace: string; root: string }[] {
    const all = new Map<string, { namespace: string; root: string }>();
    for (const splits of this.byRoot.values()) {
      const first = [...splits.values()][0];
      if (first) all.set(key(first.route.namespace, first.route.root), first.route);
    }
    for (const { view } of this.httpRoots.values()) all.set(key(view.namespace, view.root), view);
    return [...all.values()].map(({ namespace, root }) => ({ namespace, root }));
  }

  /** Rebuilds one root's HTTP rules from every route that names it now. */
  private compileRoot(namespace: string, root: string): { changed: boolean; appliedAt: number } {
    const rootKey = key(namespace, root);
    const previous = this.httpRoots.get(rootKey);
    const routes = [...this.httpRoutes.values()].filter(
      (r) => r.namespace === namespace && r.parents.some((p) => p.service === root),
    );
    if (routes.length === 0) {
      this.httpRoots.delete(rootKey);
      return { changed: previous !== undefined, appliedAt: this.clock() };
    }
    const signature = signatureOf(routes);
    // An edit that leaves the rules alone (a label, a status write) keeps the round-robins where they stood.
    if (previous && previous.signature === signature)
      return { changed: false, appliedAt: previous.view.appliedAt };
    const rules = new RootRules(root, routes, previous?.rules);
    const appliedAt = this.clock();
    this.httpRoots.set(rootKey, { rules, signature, view: httpView(namespace, root, rules, appliedAt) });
    return { changed: true, appliedAt };
  }

  private active(namespace: string, root: string): Entry | undefined {
    const splits = this.byRoot.get(key(namespace, root));
    if (!splits || splits.size === 0) return undefined;
    const first = [...splits.keys()].sort()[0]!;
    return splits.get(first);
  }

  private forget(rootKey: string, split: string): Entry | undefined {
    const splits = this.byRoot.get(rootKey);
    const entry = splits?.get(split);
    splits?.delete(split);
    if (splits?.size === 0) this.byRoot.delete(rootKey);
    return entry;
  }
}
