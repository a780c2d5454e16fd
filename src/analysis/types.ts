// The vocabulary of one metric check: its verdict and what was measured.
// Shared by the analysis code that produces checks and the machine that counts them.

/** SPEC §4: Pass; Fail (outside thresholdRange); Inconclusive (no data, NaN, onNoData); Error (provider trouble). */
export type Verdict = 'Pass' | 'Fail' | 'Inconclusive' | 'Error';

export interface ThresholdRange {
  /** Inclusive lower bound. */
  min?: number;
  /** Inclusive upper bound. */
  max?: number;
}

export type OnNoData = 'inconclusive' | 'fail' | 'pass';

/** The outcome of checking one metric once. */
export interface CheckResult {
  metric: string;
  verdict: Verdict;
  /** The measured value; undefined when there was none (empty result, error). NaN/±Inf are kept. */
  value?: number;
  /** Why, in words a person reads in `kubectl describe`: value and range, or the error. */
  reason: string;
  /** When the check was made (RFC 3339). */
  at: string;
}
