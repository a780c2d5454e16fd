// mergePatchDiff: the status patch carries what changed and nothing else (RFC 7386 semantics).
import { expect } from 'chai';
import type { RolloutStatus } from '../../src/api/v1alpha1.js';
import { mergePatchDiff, type JsonObject } from '../../src/k8s/rollout-writer.js';

/** RFC 7386 applied, to check that each diff really turns `before` into `after`. */
function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const out: JsonObject =
    typeof target === 'object' && target !== null && !Array.isArray(target)
      ? { ...(target as JsonObject) }
      : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = applyMergePatch(out[k], v);
  }
  return out;
}

const status = (s: RolloutStatus) => s as unknown as JsonObject;

describe('mergePatchDiff', () => {
  const before: RolloutStatus = {
    observedGeneration: 2,
    phase: 'Paused',
    pauseReason: 'Manual',
    canaryWeight: 10,
    stableWeight: 90,
    analysis: { passed: 1, failed: 0, inconclusive: 0, consecutiveErrors: 0, measurements: [] },
    conditions: [
      {
        type: 'Valid',
        status: 'True',
        reason: 'Valid',
        message: 'ok',
        lastTransitionTime: '2024-01-01T00:00:00Z',
      },
    ],
  };

  it('is empty when nothing changed, even for equal copies', () => {
    expect(mergePatchDiff(status(before), status(structuredClone(before)))).to.deep.equal({});
    expect(mergePatchDiff(undefined, undefined)).to.deep.equal({});
    expect(mergePatchDiff({}, {})).to.deep.equal({});
  });

  it('sends only the changed fields', () => {
    const after = { ...before, canaryWeight: 50, stableWeight: 50 };
    expect(mergePatchDiff(status(before), status(after))).to.deep.equal({
      canaryWeight: 50,
      stableWeight: 50,
    });
  });

  it('sends null for a removed field, and treats undefined like absent', () => {
    const after: RolloutStatus = { ...before, phase: 'Progressing', pauseReason: undefined };
    expect(mergePatchDiff(status(before), status(after))).to.deep.equal({
      phase: 'Progressing',
      pauseReason: null,
    });
    const { pauseReason: _gone, ...without } = before;
    expect(mergePatchDiff(status(before), status(without))).to.deep.equal({ pauseReason: null });
  });

  it('recurses into objects and sends only the nested change', () => {
    const after = {
      ...before,
      analysis: { ...before.analysis!, passed: 2, lastCheckAt: '2024-01-01T00:01:00Z' },
    };
    expect(mergePatchDiff(status(before), status(after))).to.deep.equal({
      analysis: { passed: 2, lastCheckAt: '2024-01-01T00:01:00Z' },
    });
  });

  it('replaces arrays whole, since a merge patch cannot edit one', () => {
    const measurement = { metric: 'm', value: 1, verdict: 'Pass' as const, at: '2024-01-01T00:01:00Z' };
    const after = { ...before, analysis: { ...before.analysis!, measurements: [measurement] } };
    expect(mergePatchDiff(status(before), status(after))).to.deep.equal({
      analysis: { measurements: [measurement] },
    });
    const conditions = [{ ...before.conditions![0]!, message: 'still ok' }];
    expect(mergePatchDiff(status(before), status({ ...before, conditions }))).to.deep.equal({ conditions });
  });

  it('writes a whole new object without its absent keys, and a removed object as null', () => {
    const after: RolloutStatus = {
      ...before,
      analysis: undefined,
      rollback: { phase: 'Failed', reason: 'AnalysisFailed', message: 'm' },
    };
    expect(mergePatchDiff(status(before), status(after))).to.deep.equal({
      analysis: null,
      rollback: { phase: 'Failed', reason: 'AnalysisFailed', message: 'm' },
    });
    expect(mergePatchDiff({}, { a: { b: 1, c: undefined, d: null } })).to.deep.equal({ a: { b: 1 } });
  });

  it('handles a status written for the first time and one removed entirely', () => {
    expect(mergePatchDiff(undefined, { phase: 'Pending' })).to.deep.equal({ phase: 'Pending' });
    expect(mergePatchDiff({ phase: 'Pending', step: '1/2' }, undefined)).to.deep.equal({
      phase: null,
      step: null,
    });
  });

  it('turns a type change into a plain replacement', () => {
    expect(mergePatchDiff({ a: { b: 1 } }, { a: 3 })).to.deep.equal({ a: 3 });
    expect(mergePatchDiff({ a: [1] }, { a: { b: 1 } })).to.deep.equal({ a: { b: 1 } });
    expect(mergePatchDiff({ a: { b: 1 } }, { a: [1] })).to.deep.equal({ a: [1] });
  });

  it('produces patches that turn before into after (RFC 7386 applied)', () => {
    const cases: [JsonObject, JsonObject][] = [
      [status(before), status({ ...before, phase: 'Succeeded', pauseReason: undefined, canaryWeight: 100 })],
      [
        { a: { b: { c: 1, d: 2 } }, e: [1, 2] },
        { a: { b: { c: 1 } }, e: [2], f: 'x' },
      ],
      [{ x: 1 }, {}],
      [{}, { x: { y: { z: true } } }],
    ];
    for (const [from, to] of cases) {
      expect(applyMergePatch(from, mergePatchDiff(from, to))).to.deep.equal(JSON.parse(JSON.stringify(to)));
    }
  });
});
