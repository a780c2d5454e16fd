// PERCH_BENCH_SCALE_TRACE: what a run writes, for a person reading it: every version of a few Rollouts as
// the harness's watch saw them, then the controller's audited requests about them, in one JSON-lines file.
import { appendFileSync, writeFileSync } from 'node:fs';
import type { Rollout } from '../../src/api/v1alpha1.js';
import type { AuditEvent } from '../audit-tally.js';

export interface TraceRecorder {
  /** A Rollout version the harness's watch delivered. */
  version(r: Rollout): void;
  /** An audited request of the controller; kept when it is about a traced Rollout (Events included). */
  request(e: AuditEvent): void;
}

export function traceRecorder(file: string, names: readonly string[]): TraceRecorder {
  writeFileSync(file, '');
  const traced = new Set(names);
  const about = (name = '') => traced.has(name) || traced.has(name.replace(/\.[0-9a-f]+$/, ''));
  const line = (o: object) => appendFileSync(file, `${JSON.stringify(o)}\n`);
  return {
    version: (r) => {
      if (!about(r.metadata?.name)) return;
      const { name, resourceVersion, generation } = r.metadata ?? {};
      line({ at: new Date().toISOString(), name, resourceVersion, generation, status: r.status });
    },
    request: (e) => {
      const ref = e.objectRef ?? {};
      if (!about(ref.name) && !about(ref.subresource ? ref.name : undefined)) return;
      if (e.verb === 'watch' || e.verb === 'list') return;
      line({
        at: e.requestReceivedTimestamp,
        verb: e.verb,
        resource: ref.subresource ? `${ref.resource}/${ref.subresource}` : ref.resource,
        name: ref.name,
        code: e.responseStatus?.code,
      });
    },
  };
}
