// The fault proxy's settings and their text form for `perch sandbox --faults SPEC`.
// Example: "seed=7,500=0.05,429=0.02,409=0.01,latency=20ms,jitter=10ms,watch-cut=5s".

export interface FaultSpec {
  /** Same seed, same faults for the same sequence of requests. */
  seed: number;
  /** Fractions (0..1) of requests answered 500, 429 (with Retry-After) or 409 (writes only). */
  error500: number;
  error429: number;
  error409: number;
  /** Added to every request before it is forwarded. */
  latencyMs: number;
  /** Up to this much more, drawn from the seed. */
  jitterMs: number;
  /** Cut every watch stream this long after it started; 0 leaves watches alone. */
  watchCutSeconds: number;
  /** Seconds the 429 answers ask clients to wait. */
  retryAfterSeconds: number;
}

export const NO_FAULTS: FaultSpec = {
  seed: 1,
  error500: 0,
  error429: 0,
  error409: 0,
  latencyMs: 0,
  jitterMs: 0,
  watchCutSeconds: 0,
  retryAfterSeconds: 1,
};

const KEYS: Record<string, keyof FaultSpec> = {
  seed: 'seed',
  '500': 'error500',
  '429': 'error429',
  '409': 'error409',
  latency: 'latencyMs',
  jitter: 'jitterMs',
  'watch-cut': 'watchCutSeconds',
  'retry-after': 'retryAfterSeconds',
};

function duration(key: string, raw: string, unit: 'ms' | 's'): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(raw);
  if (!m?.[1])
    throw new Error(`--faults: ${key}=${raw} is not a duration; write e.g. ${key}=250ms or ${key}=2s`);
  const value = Number(m[1]);
  const given = m[2] ?? unit;
  if (given === unit) return value;
  return given === 's' ? value * 1000 : value / 1000;
}

export function parseFaultSpec(text: string): FaultSpec {
  const spec: FaultSpec = { ...NO_FAULTS };
  for (const part of text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const [key = '', raw = ''] = part.split('=', 2).map((s) => s.trim());
    const field = KEYS[key];
    if (!field) {
      throw new Error(
        `--faults: unknown key "${key}"; use ${Object.keys(KEYS).join(', ')} (e.g. 500=0.05,watch-cut=5s)`,
      );
    }
    if (field === 'latencyMs' || field === 'jitterMs') spec[field] = duration(key, raw, 'ms');
    else if (field === 'watchCutSeconds' || field === 'retryAfterSeconds')
      spec[field] = duration(key, raw, 's');
    else {
      const n = Number(raw);
      if (raw === '' || !Number.isFinite(n)) throw new Error(`--faults: ${key}=${raw} is not a number`);
      spec[field] = n;
    }
  }
  const total = spec.error500 + spec.error429 + spec.error409;
  for (const f of ['error500', 'error429', 'error409'] as const) {
    if (spec[f] < 0 || spec[f] > 1)
      throw new Error(`--faults: ${f.slice(5)}=${spec[f]} must be a fraction from 0 to 1`);
  }
  if (total > 1)
    throw new Error(`--faults: the error fractions add up to ${total}; together they must be at most 1`);
  if (!Number.isInteger(spec.seed)) throw new Error(`--faults: seed=${spec.seed} must be a whole number`);
  return spec;
}

/** A number in [0, 1) from (seed, request index, draw): the same inputs, the same number. */
export function seededUnit(seed: number, index: number, draw: number): number {
  // splitmix32 over the three inputs: cheap, well mixed, and independent of arrival timing.
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b1) ^ Math.imul(draw + 1, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x21f0aaad) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x735a2d97) >>> 0;
  return ((h ^ (h >>> 15)) >>> 0) / 4294967296;
}
