// The mesh's routing table: which backends each root Service sends to, read from the TrafficSplits watched.
// Changes land synchronously in the watch's event handler, so the very next request follows the new weights.
import type { KubernetesObject } from '@kubernetes/client-node';
import { serviceName } from '../../api/service-name.js';
import { versionModule } from '../../k8s/trafficsplit/router.js';
import { WeightedPicker } from './weighted-picker.js';

export type Protocol = 'http' | 'tcp';

export interface RouteBackend {
  /** The backend Service's short name. */
  service: string;
  /** As the split stores it, as a number (a v1alpha1 quantity such as "900m" reads 0.9). */
  weight: number;
}

/** What a root routes by now. */
export interface Route {
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

/** Told once per watch event that touched the table. */
export interface AppliedSplit extends Route {
  /** The split is gone: its root no longer routes by it. */
  deleted: boolean;
  /** The backends differ from the split's previous ones (a fresh round-robin started). */
  changed: boolean;
  /** Backends skipped because they do not name a Service of the split's namespace, or have no weight. */
  skipped: string[];
}

interface Entry {
  route: Route;
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

export class RouteTable {
  /** ns/root → split name → entry. SMI lets several splits name one root; the first by name wins. */
  private readonly byRoot = new Map<string, Map<string, Entry>>();
  /** ns/split → ns/root, so an edit that moves a split to another root leaves the old one. */
  private readonly rootOfSplit = new Map<string, string>();

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
    const route: Route = {
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

  /** The backend Service for the next request (or connection); undefined when the root has no split. */
  pick(namespace: string, root: string, protocol: Protocol): string | undefined {
    return this.active(namespace, root)?.pickers[protocol].pick();
  }

  /** What the root routes by now, or undefined when no split names it. */
  route(namespace: string, root: string): Route | undefined {
    const route = this.active(namespace, root)?.route;
    return route && { ...route, backends: [...route.backends] };
  }

  /** Every root some split names. */
  roots(): { namespace: string; root: string }[] {
    return [...this.byRoot.values()].flatMap((splits) => {
      const first = [...splits.values()][0];
      return first ? [{ namespace: first.route.namespace, root: first.route.root }] : [];
    });
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
