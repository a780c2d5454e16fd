// SMI TrafficSplit v1alpha2 (OSM's version and the CRD's storage version): integer backend weights.
// The spec is service and backends only; Perch writes both whole.
import type { SmiVersionModule } from './router.js';
import { parseQuantity } from './v1alpha1.js';

/** An integer weight; a string only when a v1alpha1 client stored a quantity (conversion is None). */
export function parseIntegerWeight(raw: unknown): number | undefined {
  if (typeof raw === 'number') return Number.isInteger(raw) && raw >= 0 ? raw : undefined;
  return parseQuantity(raw);
}

export const v1alpha2: SmiVersionModule = {
  versions: ['split.smi-spec.io/v1alpha2'],
  parseWeight: parseIntegerWeight,
  formatWeight: (percent) => percent,
  spec: (service, backends) => ({ service, backends }),
};
