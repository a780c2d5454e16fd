// What Perch writes to an HTTPRoute: the route it creates, and the JSON Patch that moves only the stable
// and canary weights of the chosen rules, pinned by `test`s of what was read. Also why a route cannot be written.
import type { KubernetesObject } from '@kubernetes/client-node';
import { serviceName } from '../../api/service-name.js';
import { ANNOTATIONS } from '../../api/v1alpha1.js';
import { CANARY_WEIGHT_ANNOTATION, ownerReferenceTo, pointer, type HttpRouteTarget } from '../router.js';
import {
  chooseRules,
  namesService,
  refsOf,
  retiredOf,
  ROUTED_SERVICES_ANNOTATION,
  rulesOf,
  servicesOf,
  type BackendRef,
} from './rules.js';

/**
 * Why the target cannot carry the split on `current` (undefined: the route would be created), the field
 * and the fix named; undefined when it can.
 */
export function routeProblem(
  target: HttpRouteTarget,
  current: KubernetesObject | undefined,
): string | undefined {
  const stable = serviceName(target.namespace, target.stableService);
  const canary = serviceName(target.namespace, target.canaryService);
  if (!stable || !canary) {
    return `stable ${target.stableService} and canary ${target.canaryService} must be Service names`;
  }
  if (stable === canary) return `stable and canary are the same Service ${stable}`;
  if (current) {
    const choice = chooseRules(current, target);
    return choice.ok ? undefined : choice.problem;
  }
  if (!serviceName(target.namespace, target.rootService)) {
    return `root service ${target.rootService} is not a Service of namespace ${target.namespace}`;
  }
  if (target.stablePort === undefined) {
    return (
      `Service ${stable} has no port: HTTPRoute ${target.name} does not exist, and the route Perch ` +
      'creates needs the stable Service port for its backendRefs; give the Service a port'
    );
  }
  const beyondFirst = (target.rules ?? []).filter((r) => r !== 0);
  if (beyondFirst.length > 0) {
    return (
      `rules: HTTPRoute ${target.name} does not exist, and the route Perch creates has one rule (rule 0), ` +
      `so ${beyondFirst.map((r) => JSON.stringify(r)).join(', ')} cannot be chosen; ` +
      'leave rules out, or create the route yourself (annotated perch.dev/managed-by) with those rules'
    );
  }
  return undefined;
}

/** The route Perch creates: one rule splitting stable/canary, the root Service as parent, owned by the Rollout. */
export function createdRoute(target: HttpRouteTarget, w: number): KubernetesObject {
  const { stable, canary } = servicesOf(target);
  const owner = ownerReferenceTo(target.rollout);
  const port = target.stablePort;
  return {
    apiVersion: target.apiVersion,
    kind: 'HTTPRoute',
    metadata: {
      name: target.name,
      namespace: target.namespace,
      annotations: {
        [ANNOTATIONS.managedBy]: target.rollout.name,
        [CANARY_WEIGHT_ANNOTATION]: String(w),
        [ROUTED_SERVICES_ANNOTATION]: `${stable},${canary}`,
      },
      ownerReferences: [owner],
    },
    spec: {
      // GAMMA: a Service parent makes it east-west mesh routing of the root Service.
      parentRefs: [
        {
          group: '',
          kind: 'Service',
          name: serviceName(target.namespace, target.rootService) ?? target.rootService,
        },
      ],
      rules: [
        {
          backendRefs: [
            { name: stable, port, weight: 100 - w },
            { name: canary, port, weight: w },
          ],
        },
      ],
    },
  } as KubernetesObject;
}

/** The ops that set one backendRef's weight; none when it already has it. */
function weightOp(ref: BackendRef, path: string, weight: number): object[] {
  if (ref.weight === weight) return [];
  return [{ op: 'weight' in ref ? 'replace' : 'add', path: `${path}/weight`, value: weight }];
}

/**
 * The JSON Patch that routes canary w% on `current`: per chosen rule a `test` of its backendRefs exactly
 * as read (a concurrent edit of them fails the whole patch), the stable and canary weights, the canary's
 * backendRef added where missing (w > 0), and the canary-weight annotation. Nothing else is touched.
 * The target's rules must be valid on `current` (routeProblem undefined).
 */
export function weightPatch(target: HttpRouteTarget, w: number, current: KubernetesObject): object[] {
  const choice = chooseRules(current, target);
  if (!choice.ok) throw new Error(`weightPatch on a route that cannot carry the split: ${choice.problem}`);
  const rules = rulesOf(current);
  const namespace = current.metadata?.namespace ?? target.namespace;
  const { stable, canary } = servicesOf(target);
  const retired = retiredOf(current, target);
  const ops: object[] = [];
  for (const i of choice.indices) {
    const path = `/spec/rules/${i}/backendRefs`;
    const refs = refsOf(rules[i]);
    ops.push({ op: 'test', path, value: structuredClone(refs) });
    const changes = refs.flatMap((ref, j) => {
      if (namesService(ref, namespace, stable)) return weightOp(ref, `${path}/${j}`, 100 - w);
      if (namesService(ref, namespace, canary)) return weightOp(ref, `${path}/${j}`, w);
      // A Service Perch routed to before this run (its stable or canary then) carries nothing now.
      if (retired.some((old) => namesService(ref, namespace, old))) return weightOp(ref, `${path}/${j}`, 0);
      return [];
    });
    ops.push(...changes);
    const hasCanary = refs.some((r) => namesService(r, namespace, canary));
    if (!hasCanary && w > 0) {
      const model = refs.find((r) => namesService(r, namespace, stable))!;
      const port = model.port ?? target.stablePort;
      ops.push({
        op: 'add',
        path: `${path}/-`,
        value: {
          ...('group' in model ? { group: model.group } : {}),
          ...('kind' in model ? { kind: model.kind } : {}),
          name: canary,
          ...(port !== undefined ? { port } : {}),
          weight: w,
        },
      });
    }
  }
  const annotations = {
    [CANARY_WEIGHT_ANNOTATION]: String(w),
    [ROUTED_SERVICES_ANNOTATION]: `${stable},${canary}`,
  };
  if (!current.metadata?.annotations)
    ops.push({ op: 'add', path: '/metadata/annotations', value: annotations });
  else
    for (const [key, value] of Object.entries(annotations))
      ops.push({ op: 'add', path: `/metadata/annotations/${pointer(key)}`, value });
  return ops;
}
