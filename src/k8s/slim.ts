// What the controller keeps of each object it watches: a watch cache holds every Rollout, Service and
// routing object of the cluster, so the fields no reconcile reads are dropped on the way in (issue 16).
import type { KubernetesObject, V1Service } from '@kubernetes/client-node';

/** kubectl's copy of the whole object as last applied: often the largest annotation, never read here. */
export const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

/**
 * The object without its bookkeeping: managedFields and kubectl's last-applied annotation. Everything a
 * write's precondition reads (resourceVersion, uid, ownerReferences, spec, status) is kept, and an
 * annotations map stays a map even when emptied (a JSON Patch decides by its presence whether to add
 * one key or the whole map).
 */
export function withoutBookkeeping<T extends KubernetesObject>(obj: T): T {
  const meta = obj.metadata;
  if (!meta || (meta.managedFields === undefined && meta.annotations?.[LAST_APPLIED] === undefined))
    return obj;
  const { managedFields: _managed, annotations, ...rest } = meta;
  const kept =
    annotations && Object.fromEntries(Object.entries(annotations).filter(([k]) => k !== LAST_APPLIED));
  return { ...obj, metadata: { ...rest, ...(kept ? { annotations: kept } : {}) } };
}

/** A Service as reconciles read it: that it exists, and its first port (a backendRef Perch adds needs it). */
export function serviceSkeleton(svc: V1Service): V1Service {
  const port = svc.spec?.ports?.[0]?.port;
  return {
    apiVersion: svc.apiVersion,
    kind: svc.kind,
    metadata: {
      name: svc.metadata?.name,
      namespace: svc.metadata?.namespace,
      uid: svc.metadata?.uid,
      resourceVersion: svc.metadata?.resourceVersion,
    },
    ...(port !== undefined ? { spec: { ports: [{ port }] } } : {}),
  };
}
