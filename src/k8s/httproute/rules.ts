// An HTTPRoute as Perch reads it: its rules, which backendRefs name a Service, and the rules that carry
// the split (SPEC §2 trafficRouting.gatewayAPI.rules). Pure; shared by reading, validation and the patch.
import type { KubernetesObject } from '@kubernetes/client-node';
import { serviceName } from '../../api/service-name.js';
import type { HttpRouteTarget } from '../router.js';

export const GATEWAY_GROUP = 'gateway.networking.k8s.io';
export const HTTPROUTE_PLURAL = 'httproutes';

export interface BackendRef {
  group?: string;
  kind?: string;
  name?: string;
  namespace?: string;
  port?: number;
  weight?: number;
  [field: string]: unknown;
}

export interface Rule {
  name?: string;
  backendRefs?: BackendRef[];
  [field: string]: unknown;
}

export interface RouteShape extends KubernetesObject {
  spec?: { rules?: Rule[]; [field: string]: unknown };
  status?: { parents?: unknown };
}

/** The rules of an object, [] when it has none (or they are not a list). */
export function rulesOf(obj: KubernetesObject): Rule[] {
  const rules = (obj as RouteShape).spec?.rules;
  return Array.isArray(rules) ? rules : [];
}

/** The backendRefs of a rule, [] when it has none. */
export function refsOf(rule: Rule | undefined): BackendRef[] {
  const refs = rule?.backendRefs;
  return Array.isArray(refs) ? refs : [];
}

/**
 * Whether a backendRef names Service `name` of the route's namespace: core group and kind Service (both
 * Gateway API's defaults when absent), no other namespace.
 */
export function namesService(ref: BackendRef, namespace: string, name: string): boolean {
  return (
    (ref.group === undefined || ref.group === '') &&
    (ref.kind === undefined || ref.kind === 'Service') &&
    (ref.namespace === undefined || ref.namespace === namespace) &&
    ref.name === name
  );
}

/** A backendRef's weight as Gateway API reads it: 1 when absent. */
export function weightOf(ref: BackendRef): number {
  if (ref.weight === undefined) return 1;
  return typeof ref.weight === 'number' && Number.isFinite(ref.weight) && ref.weight >= 0 ? ref.weight : 0;
}

/** The short names of the stable and canary Services (the target may give either as an FQDN). */
export function servicesOf(target: HttpRouteTarget): { stable: string; canary: string } {
  return {
    stable: serviceName(target.namespace, target.stableService) ?? target.stableService,
    canary: serviceName(target.namespace, target.canaryService) ?? target.canaryService,
  };
}

const describeChoice = (choice: number | string) =>
  typeof choice === 'number' ? `rule ${choice}` : `rule named ${JSON.stringify(choice)}`;
const theChoice = (choice: number | string) =>
  typeof choice === 'number' ? `rule ${choice}` : `the rule named ${JSON.stringify(choice)}`;

export type RuleChoice = { ok: true; indices: number[] } | { ok: false; problem: string };

/**
 * The indices of the rules that carry the split: the target's (by index or name, in its order, each
 * once), else every rule with a backendRef naming the stable Service. Each chosen rule must name stable.
 */
export function chooseRules(obj: KubernetesObject, target: HttpRouteTarget): RuleChoice {
  const rules = rulesOf(obj);
  const namespace = obj.metadata?.namespace ?? target.namespace;
  const { stable } = servicesOf(target);
  const namesStable = (rule: Rule | undefined) =>
    refsOf(rule).some((r) => namesService(r, namespace, stable));
  const route = `HTTPRoute ${target.name}`;

  if (target.rules === undefined) {
    const indices = rules.flatMap((rule, i) => (namesStable(rule) ? [i] : []));
    if (indices.length > 0) return { ok: true, indices };
    return {
      ok: false,
      problem:
        `no rule of ${route} has a backendRef naming the stable Service ${stable}; add ` +
        `{name: ${stable}, port: <its port>} to the backendRefs of the rule that should carry the split`,
    };
  }

  const indices: number[] = [];
  for (const choice of target.rules) {
    const index =
      typeof choice === 'number'
        ? Number.isInteger(choice) && choice >= 0 && choice < rules.length
          ? choice
          : -1
        : rules.findIndex((rule) => rule?.name === choice);
    if (index < 0) {
      const has = rules.length === 0 ? 'it has no rules' : `its rules are 0..${rules.length - 1}`;
      return {
        ok: false,
        problem: `rules: ${route} has no ${describeChoice(choice)} (${has}); choose existing rules by index or name`,
      };
    }
    if (!namesStable(rules[index])) {
      return {
        ok: false,
        problem:
          `rules: ${theChoice(choice)} of ${route} has no backendRef naming the stable Service ` +
          `${stable}; add {name: ${stable}, port: <its port>} to its backendRefs or choose another rule`,
      };
    }
    if (!indices.includes(index)) indices.push(index);
  }
  return { ok: true, indices };
}

/**
 * The stable and canary Services Perch last wrote weights for (annotation `perch.dev/routed-services`):
 * an HTTPRoute keeps refs Perch no longer routes by, so when a run changes its stable or canary Service
 * the old one's weight must go to 0 (the live-version rule), even in a later reconcile.
 */
export const ROUTED_SERVICES_ANNOTATION = 'perch.dev/routed-services';

/** Services Perch routed to before and does not now: their refs in the chosen rules must weigh 0. */
export function retiredOf(obj: KubernetesObject, target: HttpRouteTarget): string[] {
  const { stable, canary } = servicesOf(target);
  const raw = obj.metadata?.annotations?.[ROUTED_SERVICES_ANNOTATION] ?? '';
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '' && s !== stable && s !== canary);
}
