// The verdict of one metric check (SPEC §4) from a query's answer, a thresholdRange and onNoData.
// Pure: the caller passes the time of the check; the reason names the metric, the value and the range,
// never text Prometheus sent (a reason reaches status and Events).
import type { QueryResult, VectorSample } from './prometheus-client.js';
import type { CheckResult, OnNoData, ThresholdRange } from './types.js';

export interface CheckInput {
  metric: string;
  /** The client's answer, success or error. */
  result: QueryResult;
  thresholdRange?: ThresholdRange;
  /** What an empty result or NaN counts as; default 'inconclusive'. */
  onNoData?: OnNoData;
  /** When the check was made. */
  at: Date | string;
}

/** Parses a Prometheus sample value ("0.5", "NaN", "+Inf", "-Inf"); undefined when it is not a number. */
export function parseSampleValue(text: string): number | undefined {
  switch (text) {
    case 'NaN':
      return NaN;
    case '+Inf':
    case 'Inf':
      return Infinity;
    case '-Inf':
      return -Infinity;
  }
  const value = Number(text);
  // Number('') is 0 and Number('Infinity') is Infinity; neither is how Prometheus writes a value.
  return text.trim() === '' || Number.isNaN(value) || !Number.isFinite(value) ? undefined : value;
}

/** "{min: 99}", "{max: 500}", "{min: 1, max: 2}", or "no thresholdRange". */
export function formatRange(range: ThresholdRange | undefined): string {
  const parts: string[] = [];
  if (range?.min !== undefined) parts.push(`min: ${range.min}`);
  if (range?.max !== undefined) parts.push(`max: ${range.max}`);
  return parts.length ? `{${parts.join(', ')}}` : 'no thresholdRange';
}

/** A value as a person reads it: 79.99999999999 reads 80; NaN and infinities as Prometheus writes them. */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(Number(value.toPrecision(6)));
}

export function checkMetric(input: CheckInput): CheckResult {
  const at = typeof input.at === 'string' ? input.at : input.at.toISOString();
  const { metric } = input;
  const done = (verdict: CheckResult['verdict'], reason: string, value?: number): CheckResult =>
    value === undefined ? { metric, verdict, reason, at } : { metric, verdict, value, reason, at };

  const measured = singleValue(input.result);
  if ('error' in measured) return done('Error', `${metric}: ${measured.error}`);
  let check: CheckResult;
  if (measured.value === undefined || Number.isNaN(measured.value)) {
    const what = measured.value === undefined ? 'returned no data' : 'is NaN (no data, e.g. no traffic)';
    check = noData(input.onNoData ?? 'inconclusive', `${metric} ${what}`, measured.value, done);
  } else {
    check = compare(metric, measured.value, input.thresholdRange, done);
  }
  const warnings = input.result.ok ? input.result.warnings.length : 0;
  return check.verdict === 'Pass' && warnings > 0 ? partialData(check, warnings) : check;
}

/**
 * Thanos and Cortex answer "success" with `warnings` when a store or querier did not answer: the value
 * may miss exactly the failing pods, so it never promotes. A Fail stays a Fail: missing data cannot
 * make a measured failure healthy. The warnings' text is another server's, so only their count is told.
 */
function partialData(check: CheckResult, warnings: number): CheckResult {
  const count = warnings === 1 ? '1 warning' : `${warnings} warnings`;
  return {
    ...check,
    verdict: 'Inconclusive',
    reason: `${check.reason}, but Prometheus warned of partial data (${count}), so it is not counted as a pass`,
  };
}

type Done = (verdict: CheckResult['verdict'], reason: string, value?: number) => CheckResult;

/** An empty result and NaN alike: onNoData decides, and the NaN (if any) is kept as the value. */
function noData(onNoData: OnNoData, what: string, value: number | undefined, done: Done): CheckResult {
  const verdict = onNoData === 'fail' ? 'Fail' : onNoData === 'pass' ? 'Pass' : 'Inconclusive';
  return done(verdict, `${what}; onNoData is ${onNoData}`, value);
}

function compare(metric: string, value: number, range: ThresholdRange | undefined, done: Done): CheckResult {
  const shown = `${metric} ${formatValue(value)}`;
  if (range?.min !== undefined && value < range.min) {
    return done('Fail', `${shown} is below the minimum ${range.min}`, value);
  }
  if (range?.max !== undefined && value > range.max) {
    return done('Fail', `${shown} is above the maximum ${range.max}`, value);
  }
  // An infinity inside the range is a division by zero, not a measurement: never promote on one.
  if (!Number.isFinite(value)) {
    return done(
      'Inconclusive',
      `${shown} is within ${formatRange(range)} but infinite (a division by zero?), so it is not counted as a pass`,
      value,
    );
  }
  return done('Pass', `${shown} is within ${formatRange(range)}`, value);
}

/** The one number an instant check needs, undefined for an empty vector, or why there is none. */
function singleValue(result: QueryResult): { value: number | undefined } | { error: string } {
  if (!result.ok) return { error: `query failed (${result.error.kind}): ${result.error.message}` };
  const { data } = result;
  switch (data.resultType) {
    case 'scalar':
      return parsed(data.result[1]);
    case 'vector': {
      const [first, ...rest] = data.result;
      if (!first) return { value: undefined };
      if (rest.length > 0) {
        return {
          error: `the query returned ${data.result.length} series${differingLabels(data.result)}; a check needs exactly one, aggregate it (e.g. sum(...))`,
        };
      }
      return parsed(first.value[1]);
    }
    case 'matrix':
      return {
        error: `the query returned a range vector (matrix); a check needs one number, so wrap the [range] in a function such as rate() or avg_over_time()`,
      };
    case 'string':
      return { error: `the query returned a string, not a number` };
  }
}

function parsed(text: string): { value: number } | { error: string } {
  const value = parseSampleValue(text);
  return value === undefined ? { error: `Prometheus sent a sample value that is not a number` } : { value };
}

/** A label name as PromQL writes it bare; anything else (UTF-8 names, long ones) is not repeated. */
const LABEL_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/**
 * " that differ in destination_name, ...": the label names to aggregate away, which is what a person needs
 * to fix the query. Label values are not repeated: they are data from another server, of any length.
 */
function differingLabels(series: VectorSample[]): string {
  const names = [...new Set(series.flatMap((s) => Object.keys(s.metric)))]
    .filter((name) => new Set(series.map((s) => s.metric[name])).size > 1)
    .filter((name) => LABEL_NAME.test(name))
    .sort();
  if (names.length === 0) return '';
  const shown = names.slice(0, 3).join(', ');
  return ` that differ in ${shown}${names.length > 3 ? ', ...' : ''}`;
}
