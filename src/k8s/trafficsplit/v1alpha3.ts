// SMI TrafficSplit v1alpha3 and v1alpha4: integer backend weights plus route `matches`.
// The matches are the user's (HTTPRouteGroup/TCPRoute references): Perch never writes or drops them.
import type { SmiVersionModule } from './router.js';
import { parseIntegerWeight } from './v1alpha2.js';

export const v1alpha3: SmiVersionModule = {
  versions: ['split.smi-spec.io/v1alpha3', 'split.smi-spec.io/v1alpha4'],
  parseWeight: parseIntegerWeight,
  formatWeight: (percent) => percent,
  // No `matches` key at all: a JSON merge patch leaves absent keys alone, so the user's matches
  // survive every weight change, and a TrafficSplit Perch creates routes all traffic, as SMI defines.
  spec: (service, backends) => ({ service, backends }),
};
