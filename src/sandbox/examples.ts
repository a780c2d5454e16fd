// The manifests of one examples/<dir>: every file but the Rollout's (applied first: Namespace,
// Services, MetricTemplates), and the Rollout itself, so a caller can start traffic before the run.
import { loadAllYaml } from '@kubernetes/client-node';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Rollout } from '../api/v1alpha1.js';
import { repoRoot } from './repo.js';

export const EXAMPLES_DIR = join(repoRoot, 'examples');

export interface Example {
  dir: string;
  /** The YAML files that hold no Rollout, in name order (their numeric prefixes give the apply order). */
  setupFiles: string[];
  rollout: Rollout;
}

export function readExample(name: string): Example {
  const dir = join(EXAMPLES_DIR, name);
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => ({
      path: join(dir, f),
      objects: loadAllYaml(readFileSync(join(dir, f), 'utf8')) as Rollout[],
    }));
  const rollouts = files.flatMap((f) => f.objects.filter((o) => o?.kind === 'Rollout'));
  if (rollouts.length !== 1) throw new Error(`${dir}: expected one Rollout, found ${rollouts.length}`);
  return {
    dir,
    setupFiles: files.filter((f) => !f.objects.some((o) => o?.kind === 'Rollout')).map((f) => f.path),
    rollout: rollouts[0]!,
  };
}

/**
 * An example's Rollout with short intervals, for `perch demo --fast` and tests. The MetricTemplates'
 * queries are kept: their `[{{ interval }}]` window of 4 s holds about four 1 s scrapes, enough for
 * rate() at every check.
 */
export function fastRollout(example: Rollout): Rollout {
  const r = structuredClone(example);
  if (r.spec.analysis) {
    r.spec.analysis.interval = '4s';
    r.spec.analysis.inconclusiveLimit = Math.max(r.spec.analysis.inconclusiveLimit ?? 0, 3);
  }
  r.spec.progressDeadlineSeconds = 60;
  return r;
}
