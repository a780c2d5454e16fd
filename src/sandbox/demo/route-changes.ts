// What Perch changed in a person's HTTPRoute beyond what it may: the demo's proof that only the stable and
// canary weights moved (and canary backendRefs were added), never the matches, filters, other rules or parents.
import type { KubernetesObject } from '@kubernetes/client-node';

type Json = unknown;
interface Ref {
  name?: string;
  group?: string;
  kind?: string;
  namespace?: string;
  weight?: number;
  [field: string]: Json;
}
type Rule = Record<string, Json> & { name?: string; backendRefs?: Ref[] };
type Spec = Record<string, Json> & { rules?: Rule[] };

/** JSON with object keys sorted: the same value always reads the same, whatever order it was built in. */
function canonical(value: Json): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, Json>).sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'undefined';
}

const specOf = (o: KubernetesObject): Spec => ((o as { spec?: Spec }).spec ?? {}) as Spec;
const refsOf = (rule: Rule | undefined): Ref[] => (Array.isArray(rule?.backendRefs) ? rule.backendRefs : []);
const isServiceIn = (ref: Ref, services: ReadonlySet<string>) =>
  (ref.group ?? '') === '' &&
  (ref.kind ?? 'Service') === 'Service' &&
  ref.namespace === undefined &&
  services.has(ref.name ?? '');

/**
 * How `after` differs from `before` beyond Perch's part, one phrase each; [] when it does not. Perch's part:
 * the weight of backendRefs naming one of `services` (the stable and canary Services of every run), and
 * such backendRefs appended to a rule's list.
 */
export function changesBeyondWeights(
  before: KubernetesObject,
  after: KubernetesObject,
  services: ReadonlySet<string>,
): string[] {
  const was = specOf(before);
  const now = specOf(after);
  const changes: string[] = [];
  for (const key of new Set([...Object.keys(was), ...Object.keys(now)])) {
    if (key !== 'rules' && canonical(was[key]) !== canonical(now[key])) changes.push(`spec.${key} changed`);
  }
  const wasRules = Array.isArray(was.rules) ? was.rules : [];
  const nowRules = Array.isArray(now.rules) ? now.rules : [];
  if (wasRules.length !== nowRules.length) {
    changes.push(`spec.rules: ${wasRules.length} rules before, ${nowRules.length} now`);
    return changes;
  }
  wasRules.forEach((rule, i) => {
    const other = nowRules[i]!;
    const label = `rule ${rule.name ?? i}`;
    for (const key of new Set([...Object.keys(rule), ...Object.keys(other)])) {
      if (key !== 'backendRefs' && canonical(rule[key]) !== canonical(other[key]))
        changes.push(`${label}: ${key} changed`);
    }
    const wasRefs = refsOf(rule);
    const nowRefs = refsOf(other);
    const masked = (ref: Ref | undefined): Json => {
      if (!ref || !isServiceIn(ref, services)) return ref;
      const { weight: _weight, ...rest } = ref;
      return rest;
    };
    wasRefs.forEach((ref, j) => {
      if (canonical(masked(ref)) !== canonical(masked(nowRefs[j])))
        changes.push(`${label}: backendRef ${j} (${ref.name ?? '?'}) changed`);
    });
    for (const added of nowRefs.slice(wasRefs.length)) {
      if (!isServiceIn(added, services)) changes.push(`${label}: backendRef ${added.name ?? '?'} added`);
    }
  });
  return changes;
}
