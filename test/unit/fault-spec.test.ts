import { expect } from 'chai';
import { decideFault } from '../../src/sandbox/faults/proxy.js';
import { NO_FAULTS, parseFaultSpec, seededUnit } from '../../src/sandbox/faults/spec.js';

describe('fault spec', () => {
  it('parses every key with units', () => {
    const spec = parseFaultSpec(
      'seed=7, 500=0.05,429=0.02,409=0.01,latency=20ms,jitter=1s,watch-cut=5s,retry-after=3',
    );
    expect(spec).to.deep.equal({
      seed: 7,
      error500: 0.05,
      error429: 0.02,
      error409: 0.01,
      latencyMs: 20,
      jitterMs: 1000,
      watchCutSeconds: 5,
      retryAfterSeconds: 3,
    });
  });

  it('treats an empty spec as no faults', () => {
    expect(parseFaultSpec('')).to.deep.equal(NO_FAULTS);
  });

  for (const [text, names] of [
    ['500=2', '500=2 must be a fraction'],
    ['500=0.6,429=0.6', 'add up to 1.2'],
    ['flaky=0.1', 'unknown key "flaky"'],
    ['latency=fast', 'latency=fast is not a duration'],
    ['seed=1.5', 'seed=1.5 must be a whole number'],
    ['409=', '409= is not a number'],
  ] as const) {
    it(`refuses "${text}" naming the problem`, () => {
      expect(() => parseFaultSpec(text)).to.throw(names);
    });
  }
});

describe('seeded fault decisions', () => {
  const spec = { ...NO_FAULTS, seed: 42, error500: 0.1, error429: 0.05, error409: 0.05 };

  it('gives the same fault to the same request index, whatever else ran before', () => {
    const first = Array.from({ length: 500 }, (_, i) => decideFault(spec, i, 'PATCH'));
    const again = Array.from({ length: 500 }, (_, i) => decideFault(spec, 499 - i, 'PATCH')).reverse();
    expect(again).to.deep.equal(first);
  });

  it('differs between seeds', () => {
    const a = Array.from({ length: 200 }, (_, i) => decideFault(spec, i, 'GET'));
    const b = Array.from({ length: 200 }, (_, i) => decideFault({ ...spec, seed: 43 }, i, 'GET'));
    expect(a).to.not.deep.equal(b);
  });

  it('hits each fraction within a few points over 20,000 requests', () => {
    const counts = { none: 0, '500': 0, '429': 0, '409': 0 };
    for (let i = 0; i < 20_000; i++) counts[decideFault(spec, i, 'PUT')]++;
    expect(counts['500'] / 20_000).to.be.closeTo(0.1, 0.01);
    expect(counts['429'] / 20_000).to.be.closeTo(0.05, 0.01);
    expect(counts['409'] / 20_000).to.be.closeTo(0.05, 0.01);
  });

  it('never answers a read with 409: a conflict only makes sense for a write', () => {
    const only409 = { ...NO_FAULTS, error409: 1 };
    expect(decideFault(only409, 3, 'GET')).to.equal('none');
    expect(decideFault(only409, 3, 'PATCH')).to.equal('409');
  });

  it('draws uniform numbers in [0, 1)', () => {
    const xs = Array.from({ length: 10_000 }, (_, i) => seededUnit(9, i, 1));
    expect(Math.min(...xs)).to.be.at.least(0);
    expect(Math.max(...xs)).to.be.below(1);
    expect(xs.reduce((a, b) => a + b, 0) / xs.length).to.be.closeTo(0.5, 0.02);
  });
});
