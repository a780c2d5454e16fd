// How the sandbox mesh reads a Gateway API HTTPRoute (GAMMA: a route whose parent is a Service): which
// parents are its own, each rule's matches and weighted backendRefs, and which rule a request falls to.
//
// The subset honoured, and how (gateway.networking.k8s.io/v1 HTTPRoute, Mesh conformance profile):
// - parents: parentRefs with group "" and kind Service, namespace absent or the route's own (a producer
//   route). Gateway API infers group gateway.networking.k8s.io where it is absent, and kind Gateway, so a
//   parentRef without an explicit `group: ""` is not a Service's and not the mesh's (the CRD writes the
//   defaults in). sectionName and port are ignored: a root's one listener stands for all its ports.
// - matches: path Exact and PathPrefix (element-wise, a trailing "/" ignored), header Exact (names
//   case-insensitive, the first entry of a name counts), query param Exact, method. A rule using a match
//   type outside these (RegularExpression) is dropped as a whole and reported (PartiallyInvalid).
// - precedence, across every match of every rule of every route attached to the root, continuing on ties:
//   an Exact path; the longest PathPrefix; a method; the most header matches; the most query param matches;
//   then the oldest route (creationTimestamp), then "{namespace}/{name}" alphabetically; then the first rule
//   in list order. A request no rule matches is refused with 404, as Gateway API requires.
// - backendRefs: Service refs (group "" and kind Service, their defaults) of the route's namespace; weight
//   defaults to 1, 0 never gets a request. A ref of another kind (InvalidKind) or namespace (RefNotPermitted:
//   the sandbox knows no ReferenceGrant) or to a Service that does not exist (BackendNotFound) keeps its
//   share of the weight, and that share is answered 500, as Gateway API requires of invalid backends; so
//   is every request to a rule with no backendRef of positive weight.
// - ignored: hostnames (a mesh route applies to all traffic for its Service), filters, timeouts, retries,
//   and backendRef ports (a backend Service has one sandbox endpoint).
import type { KubernetesObject } from '@kubernetes/client-node';
import { WeightedPicker } from './weighted-picker.js';

export const GATEWAY_GROUP = 'gateway.networking.k8s.io';
export const HTTPROUTE_PLURAL = 'httproutes';

/** A parentRef as the route's spec holds it; status.parents[].parentRef repeats it as written. */
export type ParentRef = Record<string, unknown>;

export interface ServiceParent {
  /** The parentRef exactly as in spec.parentRefs. */
  ref: ParentRef;
  /** The parent Service's name (its namespace is the route's). */
  service: string;
}

export interface PathMatch {
  type: 'Exact' | 'PathPrefix';
  /** For PathPrefix, without a trailing "/" (except "/" itself). */
  value: string;
}

export interface RouteMatch {
  path: PathMatch;
  /** Names lower-cased, one entry per name. */
  headers: { name: string; value: string }[];
  queryParams: { name: string; value: string }[];
  method?: string;
}

export type BackendProblem = 'InvalidKind' | 'RefNotPermitted';

export interface RuleBackend {
  /** The backend Service's name; for a ref the mesh cannot follow, the ref as written ("Kind/name"). */
  service: string;
  /** 1 where the ref gives none. */
  weight: number;
  /** Set when the ref is not a Service of the route's namespace: its share of requests is answered 500. */
  problem?: { reason: BackendProblem; message: string };
}

export interface RouteRule {
  index: number;
  name?: string;
  /** At least one: a rule without matches matches every request (PathPrefix "/"). */
  matches: RouteMatch[];
  backends: RuleBackend[];
  /** Why the rule is dropped: a match this mesh does not honour. Undefined when the rule is honoured. */
  unsupported?: string;
}

/** What the mesh takes from one HTTPRoute. */
export interface MeshHttpRoute {
  namespace: string;
  name: string;
  /** The Service parents the mesh serves; empty when the route is not the mesh's (e.g. a Gateway's). */
  parents: ServiceParent[];
  rules: RouteRule[];
  /** For precedence between routes: ms since the epoch, Infinity when unknown. */
  createdAt: number;
  generation: number | undefined;
  resourceVersion: string | undefined;
}

/** The request as rules see it. */
export interface RequestFacts {
  method: string;
  /** The request target as sent, query included (`req.url`). */
  url: string;
  headers: Record<string, string | string[] | undefined>;
}

/** Where a request goes: a backend Service, or the status the mesh answers it with itself. */
export type Decision = { ok: true; service: string } | { ok: false; status: 404 | 500; message: string };

interface RouteShape extends KubernetesObject {
  spec?: { parentRefs?: unknown; rules?: unknown };
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const text = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** The parentRefs that name a Service of the route's own namespace, as written. */
export function serviceParents(namespace: string, parentRefs: unknown): ServiceParent[] {
  return list(parentRefs).flatMap((raw) => {
    if (!isRecord(raw)) return [];
    const name = text(raw.name);
    const sameNamespace = raw.namespace === undefined || raw.namespace === namespace;
    // An absent group is gateway.networking.k8s.io (the API's default), never the core group.
    return raw.group === '' && raw.kind === 'Service' && sameNamespace && name
      ? [{ ref: raw, service: name }]
      : [];
  });
}

function readPath(raw: unknown): PathMatch | string {
  const path = isRecord(raw) ? raw : {};
  const type = path.type ?? 'PathPrefix';
  const value = text(path.value) ?? '/';
  if (type === 'Exact') return { type, value };
  if (type === 'PathPrefix') {
    return { type, value: value.length > 1 && value.endsWith('/') ? value.slice(0, -1) : value };
  }
  return `path type ${String(type)}`;
}

/** name → value pairs of Exact matches, the first of each name; or why they cannot be honoured. */
function readExact(
  raw: unknown,
  what: string,
  fold: (name: string) => string,
): { name: string; value: string }[] | string {
  const out: { name: string; value: string }[] = [];
  for (const entry of list(raw)) {
    if (!isRecord(entry)) continue;
    const type = entry.type ?? 'Exact';
    if (type !== 'Exact') return `${what} match type ${String(type)}`;
    const name = fold(text(entry.name) ?? '');
    if (!out.some((o) => o.name === name)) out.push({ name, value: text(entry.value) ?? '' });
  }
  return out;
}

function readMatch(raw: unknown): RouteMatch | string {
  const m = isRecord(raw) ? raw : {};
  const path = readPath(m.path);
  if (typeof path === 'string') return path;
  const headers = readExact(m.headers, 'header', (n) => n.toLowerCase());
  if (typeof headers === 'string') return headers;
  const queryParams = readExact(m.queryParams, 'query param', (n) => n);
  if (typeof queryParams === 'string') return queryParams;
  const method = text(m.method);
  return method === undefined ? { path, headers, queryParams } : { path, headers, queryParams, method };
}

function readBackend(namespace: string, raw: unknown): RuleBackend {
  const b = isRecord(raw) ? raw : {};
  const name = text(b.name) ?? '';
  const group = text(b.group) ?? '';
  const kind = text(b.kind) ?? 'Service';
  const weight = typeof b.weight === 'number' && Number.isFinite(b.weight) && b.weight >= 0 ? b.weight : 1;
  if (group !== '' || kind !== 'Service') {
    const written = `${group === '' ? '' : `${group}/`}${kind}/${name}`;
    return {
      service: written,
      weight,
      problem: {
        reason: 'InvalidKind',
        message: `backendRef ${written} is not a Service: the sandbox mesh routes to Services only`,
      },
    };
  }
  if (b.namespace !== undefined && b.namespace !== namespace) {
    return {
      service: `${String(b.namespace)}/${name}`,
      weight,
      problem: {
        reason: 'RefNotPermitted',
        message: `backendRef Service ${String(b.namespace)}/${name} is in another namespace than the route's (${namespace}): the sandbox mesh honours no ReferenceGrant`,
      },
    };
  }
  return { service: name, weight };
}

function readRule(namespace: string, raw: unknown, index: number): RouteRule {
  const r = isRecord(raw) ? raw : {};
  const rawMatches = list(r.matches);
  const matches: RouteMatch[] = [];
  let unsupported: string | undefined;
  for (const [i, m] of (rawMatches.length > 0 ? rawMatches : [{}]).entries()) {
    const match = readMatch(m);
    if (typeof match === 'string') unsupported ??= `rule ${index} match ${i}: ${match}`;
    else matches.push(match);
  }
  const name = text(r.name);
  const rule: RouteRule = {
    index,
    matches,
    backends: list(r.backendRefs).map((b) => readBackend(namespace, b)),
  };
  if (name !== undefined) rule.name = name;
  if (unsupported !== undefined) rule.unsupported = unsupported;
  return rule;
}

/** What the mesh takes from an HTTPRoute object, whatever it holds (the API server has validated it). */
export function readHttpRoute(obj: KubernetesObject): MeshHttpRoute {
  const namespace = obj.metadata?.namespace ?? '';
  const spec = (obj as RouteShape).spec;
  const created = Date.parse(String(obj.metadata?.creationTimestamp ?? ''));
  return {
    namespace,
    name: obj.metadata?.name ?? '',
    parents: serviceParents(namespace, spec?.parentRefs),
    rules: list(spec?.rules).map((r, i) => readRule(namespace, r, i)),
    createdAt: Number.isFinite(created) ? created : Infinity,
    generation: obj.metadata?.generation,
    resourceVersion: obj.metadata?.resourceVersion,
  };
}

function pathMatches(match: PathMatch, path: string): boolean {
  if (match.type === 'Exact') return path === match.value;
  if (match.value === '/') return true;
  return path === match.value || path.startsWith(`${match.value}/`);
}

function header(headers: RequestFacts['headers'], name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

export function requestMatches(match: RouteMatch, req: RequestFacts): boolean {
  const q = req.url.indexOf('?');
  const path = q < 0 ? req.url : req.url.slice(0, q);
  if (!pathMatches(match.path, path)) return false;
  if (match.method !== undefined && match.method !== req.method) return false;
  if (!match.headers.every((h) => header(req.headers, h.name) === h.value)) return false;
  if (match.queryParams.length === 0) return true;
  const query = new URLSearchParams(q < 0 ? '' : req.url.slice(q + 1));
  return match.queryParams.every((p) => query.get(p.name) === p.value);
}

/** Negative when `a` takes precedence over `b` by the match alone; 0 on a tie. */
export function compareMatches(a: RouteMatch, b: RouteMatch): number {
  const exact = (m: RouteMatch) => (m.path.type === 'Exact' ? 1 : 0);
  return (
    exact(b) - exact(a) ||
    b.path.value.length - a.path.value.length ||
    (b.method ? 1 : 0) - (a.method ? 1 : 0) ||
    b.headers.length - a.headers.length ||
    b.queryParams.length - a.queryParams.length
  );
}

/** Negative when route `a` takes precedence over `b` on a tie of matches: the older, then by name. */
export function compareRoutes(a: MeshHttpRoute, b: MeshHttpRoute): number {
  if (a.createdAt !== b.createdAt) return a.createdAt < b.createdAt ? -1 : 1;
  const ka = `${a.namespace}/${a.name}`;
  const kb = `${b.namespace}/${b.name}`;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

interface Candidate {
  match: RouteMatch;
  route: MeshHttpRoute;
  rule: RouteRule;
  picker: WeightedPicker<number>;
}

const ruleKey = (route: MeshHttpRoute, rule: RouteRule) => `${route.namespace}/${route.name}#${rule.index}`;
const backendsKey = (rule: RouteRule) => JSON.stringify(rule.backends);

/**
 * The rules of every HTTPRoute attached to one root Service, ordered for matching, each with its own
 * weighted round-robin. Immutable once built; a change builds a new one (reusing unchanged rules' pickers).
 */
export class RootRules {
  private readonly candidates: Candidate[];
  /** The routes in precedence order. */
  readonly routes: MeshHttpRoute[];

  constructor(
    readonly root: string,
    routes: readonly MeshHttpRoute[],
    previous?: RootRules,
  ) {
    this.routes = [...routes].sort(compareRoutes);
    const reuse = new Map<string, { backends: string; picker: WeightedPicker<number> }>();
    for (const c of previous?.candidates ?? []) {
      reuse.set(ruleKey(c.route, c.rule), { backends: backendsKey(c.rule), picker: c.picker });
    }
    const candidates: Candidate[] = [];
    for (const route of this.routes) {
      for (const rule of route.rules) {
        if (rule.unsupported !== undefined) continue;
        const old = reuse.get(ruleKey(route, rule));
        const picker =
          old && old.backends === backendsKey(rule)
            ? old.picker
            : new WeightedPicker(rule.backends.map((b, i) => ({ value: i, weight: b.weight })));
        reuse.set(ruleKey(route, rule), { backends: backendsKey(rule), picker });
        for (const match of rule.matches) candidates.push({ match, route, rule, picker });
      }
    }
    // Array.prototype.sort is stable: ties keep route order, then rule order, then match order.
    this.candidates = candidates.sort((a, b) => compareMatches(a.match, b.match));
  }

  /**
   * Where the request goes, or the status it is answered with. `serviceExists` (of the route's namespace)
   * makes a backendRef to a Service that does not exist invalid too (BackendNotFound): its share gets 500.
   */
  decide(req: RequestFacts, serviceExists: (name: string) => boolean = () => true): Decision {
    const hit = this.candidates.find((c) => requestMatches(c.match, req));
    if (!hit) {
      return {
        ok: false,
        status: 404,
        message: `no rule of the HTTPRoutes attached to Service ${this.root} (${this.routes.map((r) => r.name).join(', ')}) matches ${req.method} ${req.url}`,
      };
    }
    const where = `HTTPRoute ${hit.route.namespace}/${hit.route.name} rule ${hit.rule.index}`;
    const i = hit.picker.pick();
    if (i === undefined) {
      return { ok: false, status: 500, message: `${where} has no backendRef with a positive weight` };
    }
    const backend = hit.rule.backends[i]!;
    if (backend.problem) return { ok: false, status: 500, message: `${where}: ${backend.problem.message}` };
    if (!serviceExists(backend.service)) {
      return {
        ok: false,
        status: 500,
        message: `${where}: backendRef Service ${hit.route.namespace}/${backend.service} does not exist`,
      };
    }
    return { ok: true, service: backend.service };
  }
}
