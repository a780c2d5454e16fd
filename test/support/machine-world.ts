// A simulated world for unit tests of the pure machine: a clock, a TrafficSplit, annotations, and
// metric verdicts a test sets. It applies decide()'s effects the way the controller would.
import type { CheckResult, Verdict } from '../../src/analysis/types.js';
import type { RolloutSpec, RolloutStatus } from '../../src/api/v1alpha1.js';
import { checksDue, decide } from '../../src/machine/decide.js';
import type { Decision, Effect, Observation } from '../../src/machine/types.js';

export const T0 = Date.parse('2026-01-01T00:00:00Z');

export class World {
  now = T0;
  generation = 1;
  status: RolloutStatus | undefined;
  traffic: Observation['traffic'];
  annotations: Observation['annotations'] = {
    paused: false,
    resume: false,
    promote: false,
    abort: false,
    retry: false,
  };
  validation: Observation['validation'] = { valid: true };
  routing: Observation['routing'] = { ok: true };
  window: Observation['window'] = { open: true };
  deleting = false;
  finalizerRemoved = false;
  released = false;
  firstLook = false;
  refused: Observation['refused'];
  /** The verdict every metric gets when a round is due; undefined answers nothing (no round made). */
  verdict: Verdict | undefined = 'Pass';
  value = 100;
  /** Canary weights in the order they were written to the TrafficSplit. */
  readonly writes: number[] = [];
  readonly events: { reason: string; message: string }[] = [];
  readonly rounds: Verdict[] = [];
  last: Decision | undefined;

  constructor(public spec: RolloutSpec) {}

  observation(): Observation {
    const due = checksDue(this.spec, this.status, this.now) && this.verdict !== undefined;
    const checks: CheckResult[] = due
      ? (this.spec.analysis?.metrics ?? []).map((m) => ({
          metric: m.name,
          verdict: this.verdict!,
          value: this.value,
          reason: `${m.name} ${this.value} (${this.verdict})`,
          at: new Date(this.now).toISOString(),
        }))
      : [];
    if (due) this.rounds.push(this.verdict!);
    return {
      now: this.now,
      generation: this.generation,
      target: {
        stableService: this.spec.stableService,
        canaryService: this.spec.canaryService,
        route: `TrafficSplit/${this.spec.trafficRouting?.smi?.trafficSplitName ?? 'web'}`,
      },
      firstLook: this.firstLook,
      refused: this.refused,
      validation: this.validation,
      deleting: this.deleting,
      annotations: { ...this.annotations },
      checks,
      traffic: this.traffic && { ...this.traffic, ownedByRef: !this.released },
      routing: this.routing,
      window: this.window,
    };
  }

  /** One reconcile: decide, then carry out the effects. Returns the requeue delay, if any. */
  reconcile(): number | undefined {
    const d = decide(this.spec, this.status, this.observation());
    this.last = d;
    this.status = d.status;
    let requeue: number | undefined;
    for (const e of d.effects) requeue = this.apply(e) ?? requeue;
    return requeue;
  }

  private apply(e: Effect): number | undefined {
    switch (e.type) {
      case 'setWeights':
        this.traffic = { canaryWeight: e.canaryWeight, lastWritten: e.canaryWeight };
        this.writes.push(e.canaryWeight);
        return undefined;
      case 'event':
        this.events.push({ reason: e.reason, message: e.message });
        return undefined;
      case 'clearAnnotation': {
        const key = e.key.replace('perch.dev/', '') as keyof Observation['annotations'];
        this.annotations[key] = false;
        return undefined;
      }
      case 'releaseTraffic':
        this.released = true;
        return undefined;
      case 'removeFinalizer':
        this.finalizerRemoved = true;
        return undefined;
      case 'requeueAfter':
        return e.ms;
    }
  }

  /** Reconciles, moving the clock to each requested time, until `done` or `limit` reconciles. */
  runUntil(done: (w: World) => boolean, limit = 500): this {
    for (let i = 0; i < limit && !done(this); i++) {
      const after = this.reconcile();
      if (done(this)) break;
      this.now += after === undefined ? 60_000 : Math.max(after, 1);
    }
    return this;
  }

  phase = () => this.status?.phase;
  reasons = () => this.events.map((e) => e.reason);
}

/** A run that has ended: Succeeded, Failed or Aborted. */
export const settled = (w: World) => ['Succeeded', 'Failed', 'Aborted'].includes(w.phase() ?? '');
/** The status wants `n` and the TrafficSplit routes it. */
export const atWeight = (n: number) => (w: World) =>
  w.status?.canaryWeight === n && w.traffic?.canaryWeight === n;

export function spec(overrides: Partial<RolloutSpec> = {}): RolloutSpec {
  return {
    service: 'web',
    stableService: 'web-v1',
    canaryService: 'web-v2',
    steps: [
      { setWeight: 10 },
      { analysis: { iterations: 2 } },
      { setWeight: 50 },
      { pause: { duration: '2s' } },
      { setWeight: 100 },
    ],
    analysis: {
      interval: '1s',
      failureLimit: 0,
      inconclusiveLimit: 2,
      errorLimit: 4,
      metrics: [{ name: 'success-rate', query: 'x', thresholdRange: { min: 99 } }],
    },
    progressDeadlineSeconds: 600,
    ...overrides,
  };
}
