// What the machine observes of a cached HTTPRoute: the canary's share in the chosen rules, whether every
// chosen rule routes it as Perch writes it, who owns the route, and what its parents report. Pure.
import type { KubernetesObject } from '@kubernetes/client-node';
import {
  CANARY_WEIGHT_ANNOTATION,
  ownershipOf,
  parseLastWritten,
  type HttpRouteTarget,
  type ObservedRoute,
} from '../router.js';
import {
  chooseRules,
  namesService,
  refsOf,
  retiredOf,
  rulesOf,
  servicesOf,
  weightOf,
  type Rule,
} from './rules.js';

/**
 * The canary's share of one rule, as a whole percentage. Perch writes every ref naming stable at 100-w
 * and every ref naming canary at w, so the share is read from the first of each: a rule with two refs
 * to stable (two ports) then reads back the w it was written at, never as drift. A missing canary is 0.
 */
export function shareOf(rule: Rule | undefined, namespace: string, target: HttpRouteTarget): number {
  const { stable, canary } = servicesOf(target);
  const refs = refsOf(rule);
  const s = refs.find((r) => namesService(r, namespace, stable));
  const c = refs.find((r) => namesService(r, namespace, canary));
  const stableWeight = s ? weightOf(s) : 0;
  const canaryWeight = c ? weightOf(c) : 0;
  const total = stableWeight + canaryWeight;
  return total > 0 ? Math.round((100 * canaryWeight) / total) : 0;
}

/**
 * Whether a rule routes canary w% exactly as Perch writes it: every ref naming stable at 100-w, every
 * ref naming canary at w, and a canary ref present unless w is 0 (0 % to a ref that is not there routes
 * the same). Other backendRefs are not Perch's and do not count.
 */
export function ruleRoutesAt(
  rule: Rule | undefined,
  namespace: string,
  target: HttpRouteTarget,
  w: number,
  retired: readonly string[] = [],
): boolean {
  const { stable, canary } = servicesOf(target);
  const refs = refsOf(rule);
  const stables = refs.filter((r) => namesService(r, namespace, stable));
  const canaries = refs.filter((r) => namesService(r, namespace, canary));
  return (
    stables.length > 0 &&
    stables.every((r) => weightOf(r) === 100 - w) &&
    canaries.every((r) => weightOf(r) === w) &&
    (w === 0 || canaries.length > 0) &&
    refs.every((r) => !retired.some((old) => namesService(r, namespace, old)) || weightOf(r) === 0)
  );
}

/** Whether every chosen rule routes canary w%; false when the route cannot carry the split at all. */
export function routesAt(obj: KubernetesObject, target: HttpRouteTarget, w: number): boolean {
  const choice = chooseRules(obj, target);
  if (!choice.ok) return false;
  const rules = rulesOf(obj);
  const namespace = obj.metadata?.namespace ?? target.namespace;
  const retired = retiredOf(obj, target);
  return choice.indices.every((i) => ruleRoutesAt(rules[i], namespace, target, w, retired));
}

/** What the machine observes of an HTTPRoute (from a watch cache). Pure. */
export function readRoute(obj: KubernetesObject, target: HttpRouteTarget): ObservedRoute {
  const choice = chooseRules(obj, target);
  const namespace = obj.metadata?.namespace ?? target.namespace;
  const canaryWeight = choice.ok ? shareOf(rulesOf(obj)[choice.indices[0]!], namespace, target) : 0;
  const observed: ObservedRoute = {
    canaryWeight,
    asPlanned: routesAt(obj, target, canaryWeight),
    owned: ownershipOf(obj, target.rollout),
    reported: reportedParents(obj, obj.metadata?.name ?? target.name),
  };
  const lastWritten = parseLastWritten(obj.metadata?.annotations?.[CANARY_WEIGHT_ANNOTATION]);
  if (lastWritten !== undefined) observed.lastWritten = lastWritten;
  return observed;
}

interface ParentStatus {
  parentRef?: { kind?: unknown; name?: unknown };
  controllerName?: unknown;
  conditions?: unknown;
}

interface Condition {
  type?: unknown;
  status?: unknown;
  reason?: unknown;
  message?: unknown;
}

/** A condition message longer than this is cut: the summary goes into one condition message. */
const MAX_MESSAGE = 120;
const REPORTED_CONDITIONS = ['Accepted', 'ResolvedRefs'] as const;

const text = (v: unknown) => (typeof v === 'string' ? v : '');
const cut = (s: string) => (s.length > MAX_MESSAGE ? `${s.slice(0, MAX_MESSAGE - 1)}…` : s);

function describeCondition(c: Condition): string {
  const head = `${text(c.type)}=${text(c.status) || 'Unknown'}`;
  if (c.status !== 'False') return head;
  const detail = [text(c.reason), cut(text(c.message))].filter(Boolean).join(': ');
  return detail ? `${head} (${detail})` : head;
}

function describeParent(p: ParentStatus): string {
  // A parentRef's kind defaults to Gateway (Gateway API), a mesh's parent is a Service.
  const kind = text(p.parentRef?.kind) || 'Gateway';
  const conditions = Array.isArray(p.conditions) ? (p.conditions as Condition[]) : [];
  const shown = REPORTED_CONDITIONS.flatMap((type) => {
    const c = conditions.find((x) => x?.type === type);
    return c ? [describeCondition(c)] : [];
  });
  const via = text(p.controllerName) || 'an unnamed controller';
  return `${kind}/${text(p.parentRef?.name)} via ${via}: ${shown.length ? shown.join(', ') : 'no conditions yet'}`;
}

/**
 * One line of what the route's parents (meshes, gateways) report in status.parents, for TrafficRouted:
 * each parent, its controller, and its Accepted and ResolvedRefs conditions (reason and message when False).
 */
export function reportedParents(obj: KubernetesObject, name: string): string {
  const raw = (obj as { status?: { parents?: unknown } }).status?.parents;
  const parents = Array.isArray(raw) ? (raw as ParentStatus[]).filter((p) => p && typeof p === 'object') : [];
  if (parents.length === 0) return `no mesh or gateway has accepted HTTPRoute ${name} yet`;
  return `HTTPRoute ${name}: ${parents.map(describeParent).join('; ')}`;
}
