// Removing Perch's own CRDs (Rollout, MetricTemplate) at the end of `perch uninstall --crds`, and
// awaiting them gone. Never the TrafficSplit or Gateway API CRDs: the mesh routes by their objects.
import { ApiextensionsV1Api, type KubeConfig } from '@kubernetes/client-node';
import { apiError } from './api-error.js';

/** What `crds/` installs of Perch's own; crds/smi-trafficsplit.yaml is the mesh's, whoever installed it. */
export const PERCH_CRDS = ['rollouts.perch.dev', 'metrictemplates.perch.dev'] as const;

export interface CrdRemovalOptions {
  /** How long the API server may take to delete every object of a CRD and the CRD itself. */
  timeoutMs: number;
  pollMs?: number;
}

/**
 * Deletes each CRD (one already gone is fine) and resolves once none is left; the API server deletes
 * their objects first. Throws naming what is left (and why, from the CRD's conditions) at the timeout.
 */
export async function removeCrds(
  kc: KubeConfig,
  names: readonly string[],
  opts: CrdRemovalOptions,
): Promise<{ deleted: string[] }> {
  const api = kc.makeApiClient(ApiextensionsV1Api);
  const deleted: string[] = [];
  for (const name of names) {
    try {
      await api.deleteCustomResourceDefinition({ name });
      deleted.push(name);
    } catch (err) {
      if (apiError(err).kind !== 'notFound') throw err;
    }
  }
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    const left: string[] = [];
    for (const name of names) {
      try {
        const crd = await api.readCustomResourceDefinition({ name });
        // Terminating and InstanceDeletionInProgress say what holds it (objects with finalizers).
        const why = (crd.status?.conditions ?? [])
          .filter((c) => c.type === 'Terminating' || c.type === 'InstanceDeletionInProgress')
          .map((c) => c.message)
          .filter(Boolean)
          .join('; ');
        left.push(why ? `${name} (${why})` : name);
      } catch (err) {
        if (apiError(err).kind !== 'notFound') throw err;
      }
    }
    if (left.length === 0) return { deleted };
    if (Date.now() > deadline)
      throw new Error(`CRDs still there after ${Math.round(opts.timeoutMs / 1000)} s: ${left.join(', ')}`);
    await new Promise((done) => setTimeout(done, opts.pollMs ?? 250));
  }
}
