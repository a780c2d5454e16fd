// What the sandbox mesh reports on an HTTPRoute it serves, as a GAMMA mesh does: one status.parents entry
// per Service parent, under its own controllerName, leaving every other controller's entries as they are.
import type { KubernetesObject } from '@kubernetes/client-node';
import { readHttpRoute, type MeshHttpRoute, type ParentRef } from './http-route-rules.js';
import { deepEqual } from '../../api/json.js';

/** The mesh's controllerName (Gateway API asks for a domain-prefixed path of the implementation's own). */
export const MESH_CONTROLLER_NAME = 'perch.dev/sandbox-mesh';

export interface RouteCondition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  observedGeneration?: number;
  /** RFC 3339, to the second, as metav1.Time writes it. */
  lastTransitionTime: string;
}

export interface RouteParentStatus {
  parentRef: ParentRef;
  controllerName: string;
  conditions: RouteCondition[];
}

export interface ParentStatusOptions {
  /** Whether the Service exists, from a watch cache: a backendRef to a missing one is BackendNotFound. */
  serviceExists: (namespace: string, name: string) => boolean;
  /** ms since the epoch: the lastTransitionTime of a condition whose status changes now. */
  now: number;
  controllerName?: string;
}

export interface ParentStatusUpdate {
  /** The whole status.parents list to write: others' entries untouched, in place, and the mesh's own. */
  parents: unknown[];
  /** Whether it differs from what the route holds; nothing is written when it does not. */
  changed: boolean;
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

type Desired = Omit<RouteCondition, 'lastTransitionTime'>;

function conditionsFor(route: MeshHttpRoute, opts: ParentStatusOptions): Desired[] {
  const generation = route.generation === undefined ? {} : { observedGeneration: route.generation };
  const dropped = route.rules.filter((r) => r.unsupported !== undefined);
  const conditions: Desired[] = [];
  if (route.rules.length > 0 && dropped.length === route.rules.length) {
    conditions.push({
      type: 'Accepted',
      status: 'False',
      reason: 'UnsupportedValue',
      message: `no rule the sandbox mesh can honour: ${dropped.map((r) => r.unsupported).join('; ')}`,
      ...generation,
    });
  } else {
    conditions.push({
      type: 'Accepted',
      status: 'True',
      reason: 'Accepted',
      message: 'routed by the sandbox mesh',
      ...generation,
    });
  }

  const problems: { reason: string; message: string }[] = [];
  for (const rule of route.rules) {
    for (const b of rule.backends) {
      if (b.problem)
        problems.push({ reason: b.problem.reason, message: `rule ${rule.index}: ${b.problem.message}` });
      else if (!opts.serviceExists(route.namespace, b.service)) {
        problems.push({
          reason: 'BackendNotFound',
          message: `rule ${rule.index}: backendRef Service ${route.namespace}/${b.service} does not exist`,
        });
      }
    }
  }
  conditions.push(
    problems.length === 0
      ? {
          type: 'ResolvedRefs',
          status: 'True',
          reason: 'ResolvedRefs',
          message: 'every backendRef names an existing Service',
          ...generation,
        }
      : {
          type: 'ResolvedRefs',
          status: 'False',
          // The first problem gives the reason; the message names them all.
          reason: problems[0]!.reason,
          message: problems.map((p) => p.message).join('; '),
          ...generation,
        },
  );

  // Gateway API: set only while some rules are dropped and others honoured, message prefixed "Dropped Rule".
  if (dropped.length > 0 && dropped.length < route.rules.length) {
    conditions.push({
      type: 'PartiallyInvalid',
      status: 'True',
      reason: 'UnsupportedValue',
      message: `Dropped Rule(s): ${dropped.map((r) => r.unsupported).join('; ')}`,
      ...generation,
    });
  }
  return conditions;
}

const rfc3339 = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** Conditions stamped with lastTransitionTime: kept from `before` where the status did not change. */
function stamp(desired: Desired[], before: unknown, now: number): RouteCondition[] {
  const old = isRecord(before) && Array.isArray(before.conditions) ? before.conditions : [];
  return desired.map((c) => {
    const prev = old.find((o: unknown) => isRecord(o) && o.type === c.type) as
      Record<string, unknown> | undefined;
    const kept = prev?.status === c.status && typeof prev.lastTransitionTime === 'string';
    return { ...c, lastTransitionTime: kept ? (prev.lastTransitionTime as string) : rfc3339(now) };
  });
}

/**
 * The route's status.parents with the mesh's own entries brought up to date: one per Service parent in
 * spec order, each replacing the mesh's earlier entry for the same parentRef where it stood; the mesh's
 * entries for parents no longer served are removed, and every other controller's entry is kept as it is.
 */
export function routeParentStatuses(obj: KubernetesObject, opts: ParentStatusOptions): ParentStatusUpdate {
  const controllerName = opts.controllerName ?? MESH_CONTROLLER_NAME;
  const route = readHttpRoute(obj);
  const status = (obj as { status?: { parents?: unknown } }).status;
  const existing: unknown[] = Array.isArray(status?.parents) ? status.parents : [];
  const ours = (e: unknown) => isRecord(e) && e.controllerName === controllerName;

  const desired = conditionsFor(route, opts);
  const own = route.parents.map((p) => {
    const before = existing.find((e) => ours(e) && deepEqual((e as RouteParentStatus).parentRef, p.ref));
    return {
      parentRef: p.ref,
      controllerName,
      conditions: stamp(desired, before, opts.now),
    } satisfies RouteParentStatus;
  });

  const placed = new Set<number>();
  const parents: unknown[] = [];
  for (const entry of existing) {
    if (!ours(entry)) {
      parents.push(entry);
      continue;
    }
    const i = own.findIndex(
      (o, j) => !placed.has(j) && deepEqual(o.parentRef, (entry as RouteParentStatus).parentRef),
    );
    if (i < 0) continue;
    placed.add(i);
    parents.push(own[i]);
  }
  own.forEach((o, j) => {
    if (!placed.has(j)) parents.push(o);
  });
  return { parents, changed: !deepEqual(existing, parents) };
}
