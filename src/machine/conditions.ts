// Kubernetes-style conditions: the five of SPEC §4 from a decided status and the observation, each set
// keeping its lastTransitionTime unless its status changes.
import type { Condition, RolloutStatus } from '../api/v1alpha1.js';
import { routedAt } from './traffic.js';
import type { Observation } from './types.js';

const iso = (ms: number) => new Date(ms).toISOString();

export function setCondition(
  conditions: readonly Condition[] | undefined,
  next: Omit<Condition, 'lastTransitionTime'>,
  nowIso: string,
): Condition[] {
  const list = [...(conditions ?? [])];
  const i = list.findIndex((c) => c.type === next.type);
  const old = i >= 0 ? list[i] : undefined;
  const lastTransitionTime = old && old.status === next.status ? old.lastTransitionTime : nowIso;
  const updated: Condition = { ...next, lastTransitionTime };
  if (i >= 0) list[i] = updated;
  else list.push(updated);
  return list;
}

export function conditions(status: RolloutStatus, obs: Observation): RolloutStatus['conditions'] {
  const now = iso(obs.now);
  const g = obs.generation;
  const phase = status.phase ?? 'Pending';
  let c = status.conditions;
  c = setCondition(
    c,
    obs.validation.valid
      ? { type: 'Valid', status: 'True', reason: 'Valid', message: 'spec is valid', observedGeneration: g }
      : {
          type: 'Valid',
          status: 'False',
          reason: obs.validation.reason,
          message: obs.validation.message,
          observedGeneration: g,
        },
    now,
  );
  const desired = status.canaryWeight ?? 0;
  const reported = obs.traffic?.reported ? `; ${obs.traffic.reported}` : '';
  const routed = !obs.routing.ok
    ? { status: 'False' as const, reason: obs.routing.reason, message: obs.routing.message }
    : routedAt(obs, desired)
      ? {
          status: 'True' as const,
          reason: 'Routed',
          message: `stable ${100 - desired}%, canary ${desired}%${reported}`,
        }
      : obs.refused?.canaryWeight === desired
        ? {
            status: 'False' as const,
            reason: 'WriteRefused',
            message: `the API server refused canary ${desired}%: ${obs.refused.message}`,
          }
        : { status: 'False' as const, reason: 'Updating', message: `routing canary ${desired}%${reported}` };
  c = setCondition(c, { type: 'TrafficRouted', ...routed, observedGeneration: g }, now);
  const running =
    phase === 'Progressing' || phase === 'Paused' || phase === 'Promoting' || phase === 'RollingBack';
  const why = phase === 'Failed' || phase === 'Aborted' ? (status.rollback?.reason ?? phase) : phase;
  c = setCondition(
    c,
    {
      type: 'Progressing',
      status: running ? 'True' : 'False',
      reason: running ? 'RunInProgress' : why,
      message: status.message ?? '',
      observedGeneration: g,
    },
    now,
  );
  c = setCondition(
    c,
    phase === 'Paused'
      ? {
          type: 'Paused',
          status: 'True',
          reason: status.pauseReason ?? 'Manual',
          message: status.message ?? '',
          observedGeneration: g,
        }
      : { type: 'Paused', status: 'False', reason: 'NotPaused', message: '', observedGeneration: g },
    now,
  );
  return setCondition(
    c,
    phase === 'Succeeded'
      ? {
          type: 'Ready',
          status: 'True',
          reason: 'Promoted',
          message: status.message ?? '',
          observedGeneration: g,
        }
      : { type: 'Ready', status: 'False', reason: why, message: status.message ?? '', observedGeneration: g },
    now,
  );
}
