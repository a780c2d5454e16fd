// TrafficSplit objects and clients for tests (v1alpha2, the storage version).
import {
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type KubernetesObject,
} from '@kubernetes/client-node';

export interface TrafficSplit extends KubernetesObject {
  spec: { service: string; backends: { service: string; weight: number }[] };
}

export const TS = { group: 'split.smi-spec.io', version: 'v1alpha2', plural: 'trafficsplits' } as const;
export const TS_REF = {
  apiVersion: 'split.smi-spec.io/v1alpha2',
  kind: 'TrafficSplit',
  plural: 'trafficsplits',
};

export function trafficSplit(namespace: string, name: string, canary = 0): TrafficSplit {
  const backends = [
    { service: 'stable', weight: 100 - canary },
    { service: 'canary', weight: canary },
  ].filter((b) => b.weight > 0);
  return {
    apiVersion: 'split.smi-spec.io/v1alpha2',
    kind: 'TrafficSplit',
    metadata: { name, namespace },
    spec: { service: 'root', backends },
  };
}

export function splitClient(kc: KubeConfig) {
  const api = kc.makeApiClient(CustomObjectsApi);
  return {
    create: (ts: TrafficSplit) =>
      api.createNamespacedCustomObject({
        ...TS,
        namespace: ts.metadata!.namespace!,
        body: ts,
      }) as Promise<TrafficSplit>,
    get: (namespace: string, name: string) =>
      api.getNamespacedCustomObject({ ...TS, namespace, name }) as Promise<TrafficSplit>,
    replace: (ts: TrafficSplit) =>
      api.replaceNamespacedCustomObject({
        ...TS,
        namespace: ts.metadata!.namespace!,
        name: ts.metadata!.name!,
        body: ts,
      }) as Promise<TrafficSplit>,
    setCanary: (namespace: string, name: string, canary: number) =>
      api.patchNamespacedCustomObject(
        { ...TS, namespace, name, body: { spec: trafficSplit(namespace, name, canary).spec } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      ) as Promise<TrafficSplit>,
    delete: (namespace: string, name: string) => api.deleteNamespacedCustomObject({ ...TS, namespace, name }),
  };
}

export const canaryWeight = (ts: TrafficSplit | undefined) =>
  ts?.spec.backends.find((b) => b.service === 'canary')?.weight ?? 0;
