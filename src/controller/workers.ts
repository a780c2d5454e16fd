// How many Rollouts reconcile at once (`--workers`) when not told: sized for the machine, within bounds.
import { availableParallelism } from 'node:os';

export const MIN_WORKERS = 4;
export const MAX_DEFAULT_WORKERS = 32;
/** More than this is a typo: the rate limit admits far fewer requests in flight. */
export const MAX_WORKERS = 1000;

/**
 * Four per core, at least 4 and at most 32. A worker is not a thread: a reconcile spends most of its
 * time awaiting the API server's answer, so several in flight per core keep the one JavaScript thread
 * and the API server busy; the API server absorbs concurrent writes about as well as it has cores.
 * Past 32 the client-side rate limit (default 200/s) is the bound, and more workers only hold more
 * Rollouts half-done and meet more conflicts.
 */
export function defaultWorkers(cores: number = availableParallelism()): number {
  return Math.min(MAX_DEFAULT_WORKERS, Math.max(MIN_WORKERS, 4 * cores));
}
