// SMI TrafficSplit v1alpha1: backend weights are resource quantities ("500m", "1", 90).
// Reads any quantity as a number (the router normalizes to percentages); writes whole numbers only.
import type { SmiVersionModule } from './router.js';

// Kubernetes' quantity grammar (apimachinery resource.Quantity), the same pattern the CRD validates with.
const QUANTITY =
  /^\+?((?:[0-9]+(?:\.[0-9]*)?)|(?:\.[0-9]+))(?:([KMGTPE]i)|([numkMGTPE])|[eE]([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)))?$/;

const BINARY: Record<string, number> = {
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};
const DECIMAL: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
};

/** A quantity (string or JSON number) as a number; undefined when it is not a non-negative quantity. */
export function parseQuantity(raw: unknown): number | undefined {
  if (typeof raw === 'number') return Number.isFinite(raw) && raw >= 0 ? raw : undefined;
  if (typeof raw !== 'string') return undefined;
  const m = QUANTITY.exec(raw.trim());
  if (!m) return undefined;
  const [, digits, binary, decimal, exponent] = m;
  let value = Number(digits);
  if (binary) value *= BINARY[binary]!;
  else if (decimal) value *= DECIMAL[decimal]!;
  else if (exponent !== undefined) value *= 10 ** Number(exponent);
  return Number.isFinite(value) ? value : undefined;
}

export const v1alpha1: SmiVersionModule = {
  versions: ['split.smi-spec.io/v1alpha1'],
  parseWeight: parseQuantity,
  // A JSON integer is a valid quantity, and every SMI version reads it the same way (conversion is None).
  formatWeight: (percent) => percent,
  spec: (service, backends) => ({ service, backends }),
};
