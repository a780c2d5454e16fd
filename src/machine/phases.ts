// Groups of phases the machine's rules name: kept in one place so every rule means the same set.
import type { Phase } from '../api/v1alpha1.js';

/** The phases of a run in flight: checks are counted and runs go on only in these. */
export const ACTIVE: ReadonlySet<Phase | undefined> = new Set(['Progressing', 'Paused']);
