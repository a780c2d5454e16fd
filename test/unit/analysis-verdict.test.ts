// The verdict of one check (SPEC §4): a table over every rule, from a query answer to a CheckResult.
import { expect } from 'chai';
import type { QueryData, QueryResult } from '../../src/analysis/prometheus-client.js';
import type { OnNoData, ThresholdRange, Verdict } from '../../src/analysis/types.js';
import { checkMetric, formatValue, parseSampleValue } from '../../src/analysis/verdict.js';

const T = 1_700_000_000;
const at = '2025-01-02T03:04:05.000Z';

const ok = (data: QueryData): QueryResult => ({ ok: true, data, warnings: [] });
const scalar = (v: string) => ok({ resultType: 'scalar', result: [T, v] });
const vector = (...vs: string[]) =>
  ok({
    resultType: 'vector',
    result: vs.map((v, i) => ({ metric: { destination_name: `d${i}` }, value: [T, v] })),
  });
const one = (v: string) => ok({ resultType: 'vector', result: [{ metric: {}, value: [T, v] }] });

interface Row {
  rule: string;
  result: QueryResult;
  range?: ThresholdRange;
  onNoData?: OnNoData;
  verdict: Verdict;
  /** Expected value; 'none' for absent. */
  value: number | 'none';
  /** Substrings the reason must contain. */
  reason: string[];
}

const rows: Row[] = [
  // Numbers against the range
  {
    rule: 'scalar inside the range',
    result: scalar('99.5'),
    range: { min: 99 },
    verdict: 'Pass',
    value: 99.5,
    reason: ['rate 99.5', '{min: 99}'],
  },
  {
    rule: 'one-sample vector below min',
    result: one('80'),
    range: { min: 99 },
    verdict: 'Fail',
    value: 80,
    reason: ['rate 80 is below the minimum 99'],
  },
  {
    rule: 'one-sample vector above max',
    result: one('730.25'),
    range: { max: 500 },
    verdict: 'Fail',
    value: 730.25,
    reason: ['rate 730.25 is above the maximum 500'],
  },
  {
    rule: 'min bound is inclusive',
    result: one('99'),
    range: { min: 99 },
    verdict: 'Pass',
    value: 99,
    reason: [],
  },
  {
    rule: 'max bound is inclusive',
    result: one('500'),
    range: { max: 500 },
    verdict: 'Pass',
    value: 500,
    reason: [],
  },
  {
    rule: 'inside [min, max]',
    result: one('1.5'),
    range: { min: 1, max: 2 },
    verdict: 'Pass',
    value: 1.5,
    reason: ['{min: 1, max: 2}'],
  },
  {
    rule: 'below [min, max]',
    result: one('0.5'),
    range: { min: 1, max: 2 },
    verdict: 'Fail',
    value: 0.5,
    reason: ['below the minimum 1'],
  },
  {
    rule: 'above [min, max]',
    result: one('2.5'),
    range: { min: 1, max: 2 },
    verdict: 'Fail',
    value: 2.5,
    reason: ['above the maximum 2'],
  },
  {
    rule: 'no range: any finite number passes',
    result: one('-3'),
    verdict: 'Pass',
    value: -3,
    reason: ['no thresholdRange'],
  },
  {
    rule: 'a long float reads short in the reason',
    result: one('79.99999999999'),
    range: { min: 99 },
    verdict: 'Fail',
    value: 79.99999999999,
    reason: ['rate 80 is below'],
  },

  // No data
  {
    rule: 'empty vector, default onNoData',
    result: vector(),
    range: { min: 99 },
    verdict: 'Inconclusive',
    value: 'none',
    reason: ['no data', 'inconclusive'],
  },
  {
    rule: 'empty vector, onNoData inconclusive',
    result: vector(),
    onNoData: 'inconclusive',
    verdict: 'Inconclusive',
    value: 'none',
    reason: ['no data'],
  },
  {
    rule: 'empty vector, onNoData fail',
    result: vector(),
    onNoData: 'fail',
    verdict: 'Fail',
    value: 'none',
    reason: ['no data', 'onNoData is fail'],
  },
  {
    rule: 'empty vector, onNoData pass',
    result: vector(),
    onNoData: 'pass',
    verdict: 'Pass',
    value: 'none',
    reason: ['no data', 'onNoData is pass'],
  },
  {
    rule: 'NaN sample, default onNoData',
    result: one('NaN'),
    range: { min: 99 },
    verdict: 'Inconclusive',
    value: NaN,
    reason: ['NaN'],
  },
  {
    rule: 'NaN sample, onNoData fail',
    result: one('NaN'),
    onNoData: 'fail',
    verdict: 'Fail',
    value: NaN,
    reason: ['NaN', 'onNoData is fail'],
  },
  {
    rule: 'NaN sample, onNoData pass',
    result: one('NaN'),
    onNoData: 'pass',
    verdict: 'Pass',
    value: NaN,
    reason: ['NaN', 'onNoData is pass'],
  },
  {
    rule: 'NaN scalar',
    result: scalar('NaN'),
    range: { max: 1 },
    verdict: 'Inconclusive',
    value: NaN,
    reason: ['NaN'],
  },

  // Infinities
  {
    rule: '+Inf above max fails',
    result: one('+Inf'),
    range: { max: 500 },
    verdict: 'Fail',
    value: Infinity,
    reason: ['rate +Inf is above the maximum 500'],
  },
  {
    rule: '-Inf below min fails',
    result: one('-Inf'),
    range: { min: 99 },
    verdict: 'Fail',
    value: -Infinity,
    reason: ['rate -Inf is below the minimum 99'],
  },
  {
    rule: '+Inf satisfying min is never a pass',
    result: one('+Inf'),
    range: { min: 99 },
    verdict: 'Inconclusive',
    value: Infinity,
    reason: ['+Inf', 'infinite', '{min: 99}'],
  },
  {
    rule: '-Inf satisfying max is never a pass',
    result: scalar('-Inf'),
    range: { max: 500 },
    verdict: 'Inconclusive',
    value: -Infinity,
    reason: ['-Inf', 'infinite'],
  },
  {
    rule: '+Inf with no range is never a pass',
    result: one('+Inf'),
    verdict: 'Inconclusive',
    value: Infinity,
    reason: ['infinite'],
  },

  // Shapes that cannot give one number
  {
    rule: 'more than one series',
    result: vector('1', '2'),
    range: { min: 0 },
    verdict: 'Error',
    value: 'none',
    reason: ['2 series that differ in destination_name', 'sum('],
  },
  {
    rule: 'matrix',
    result: ok({ resultType: 'matrix', result: [{ metric: {}, values: [[T, '1']] }] }),
    verdict: 'Error',
    value: 'none',
    reason: ['range vector'],
  },
  {
    rule: 'empty matrix is still the wrong shape',
    result: ok({ resultType: 'matrix', result: [] }),
    onNoData: 'pass',
    verdict: 'Error',
    value: 'none',
    reason: ['range vector'],
  },
  {
    rule: 'string result',
    result: ok({ resultType: 'string', result: [T, '42'] }),
    verdict: 'Error',
    value: 'none',
    reason: ['string'],
  },
  {
    rule: 'a sample value that is not a number',
    result: one('fast'),
    verdict: 'Error',
    value: 'none',
    reason: ['not a number'],
  },

  // Client errors
  ...(['unreachable', 'timeout', 'http', 'bad-response', 'query'] as const).map((kind): Row => ({
    rule: `client error ${kind}`,
    result: { ok: false, error: { kind, message: `the ${kind} message` } },
    range: { min: 99 },
    onNoData: 'pass',
    verdict: 'Error',
    value: 'none',
    reason: [kind, `the ${kind} message`],
  })),
];

describe('check verdict', () => {
  for (const row of rows) {
    it(`${row.rule} → ${row.verdict}`, () => {
      const check = checkMetric({
        metric: 'rate',
        result: row.result,
        ...(row.range ? { thresholdRange: row.range } : {}),
        ...(row.onNoData ? { onNoData: row.onNoData } : {}),
        at,
      });
      expect(check.verdict).to.equal(row.verdict);
      expect(check.metric).to.equal('rate');
      expect(check.at).to.equal(at);
      if (row.value === 'none') expect(check).to.not.have.property('value');
      else if (Number.isNaN(row.value)) expect(check.value).to.satisfy(Number.isNaN);
      else expect(check.value).to.equal(row.value);
      expect(check.reason).to.match(/^rate\b/);
      for (const part of row.reason) expect(check.reason).to.include(part);
    });
  }

  it("never repeats label values or a sample value Prometheus sent (they are another server's text)", () => {
    const hostile = 'EVIL <a href="http://phish.example">';
    const series = ok({
      resultType: 'vector',
      result: [
        { metric: { destination_name: hostile, job: 'mesh', [hostile]: 'x' }, value: [T, '1'] },
        { metric: { destination_name: 'b', job: 'mesh', [hostile]: 'y' }, value: [T, '2'] },
      ],
    });
    for (const result of [series, one(hostile)]) {
      const check = checkMetric({ metric: 'rate', result, at });
      expect(check.verdict).to.equal('Error');
      expect(check.reason).to.not.include('EVIL');
    }
    expect(checkMetric({ metric: 'rate', result: series, at }).reason).to.include(
      'differ in destination_name;',
    );
  });

  it('reads the SPEC example reason', () => {
    const check = checkMetric({
      metric: 'request-success-rate',
      result: one('80'),
      thresholdRange: { min: 99 },
      at: new Date(at),
    });
    expect(check.reason).to.equal('request-success-rate 80 is below the minimum 99');
    expect(check.at).to.equal(at);
  });
});

describe('check verdict with Prometheus warnings (partial data, as Thanos and Cortex send)', () => {
  const warned = (result: QueryResult, ...warnings: string[]): QueryResult =>
    result.ok ? { ...result, warnings } : result;
  const check = (result: QueryResult, range?: ThresholdRange, onNoData?: OnNoData) =>
    checkMetric({
      metric: 'request-success-rate',
      result,
      ...(range ? { thresholdRange: range } : {}),
      ...(onNoData ? { onNoData } : {}),
      at,
    });
  const partial = 'partial response: store 10.0.0.7:10901 did not answer <b>EVIL</b>';

  it('turns a pass into Inconclusive, keeping the value and saying how many warnings, not what they say', () => {
    const c = check(warned(one('99.5'), partial), { min: 99 });
    expect(c.verdict).to.equal('Inconclusive');
    expect(c.value).to.equal(99.5);
    expect(c.reason).to.equal(
      'request-success-rate 99.5 is within {min: 99}, but Prometheus warned of partial data (1 warning), so it is not counted as a pass',
    );
  });

  it('counts several warnings', () => {
    const c = check(warned(scalar('100'), partial, partial), { min: 99 });
    expect(c.verdict).to.equal('Inconclusive');
    expect(c.reason).to.include('(2 warnings)').and.not.include('EVIL');
  });

  it('keeps a fail a fail: missing data cannot make a measured failure healthy', () => {
    const c = check(warned(one('80'), partial), { min: 99 });
    expect(c.verdict).to.equal('Fail');
    expect(c.reason).to.equal('request-success-rate 80 is below the minimum 99');
  });

  it('never passes on no data with onNoData pass either', () => {
    const c = check(warned(vector(), partial), { min: 99 }, 'pass');
    expect(c.verdict).to.equal('Inconclusive');
    expect(c.reason).to.include('onNoData is pass').and.include('partial data (1 warning)');
  });

  it('leaves inconclusive and error verdicts as they are', () => {
    expect(check(warned(vector(), partial), { min: 99 }).verdict).to.equal('Inconclusive');
    expect(check(warned(vector('1', '2'), partial)).verdict).to.equal('Error');
    expect(check(warned(vector(), partial), undefined, 'fail').verdict).to.equal('Fail');
  });

  it('passes when the warnings list is empty', () => {
    expect(check(warned(one('99.5')), { min: 99 }).verdict).to.equal('Pass');
  });
});

describe('sample values', () => {
  for (const [text, value] of [
    ['0.5', 0.5],
    ['-3', -3],
    ['1e3', 1000],
    ['NaN', NaN],
    ['+Inf', Infinity],
    ['-Inf', -Infinity],
  ] as const) {
    it(`parses "${text}"`, () => {
      const parsed = parseSampleValue(text);
      if (Number.isNaN(value)) expect(parsed).to.satisfy(Number.isNaN);
      else expect(parsed).to.equal(value);
    });
  }

  for (const text of ['', ' ', 'Infinity', 'abc']) {
    it(`refuses "${text}"`, () => expect(parseSampleValue(text)).to.equal(undefined));
  }

  it('formats values as Prometheus writes them', () => {
    expect([NaN, Infinity, -Infinity, 80, 0.1 + 0.2].map(formatValue)).to.deep.equal([
      'NaN',
      '+Inf',
      '-Inf',
      '80',
      '0.3',
    ]);
  });
});
