// Weights the API server refused (an admission webhook, a 422), kept until something they depended on
// changes: the routing object, the spec or the weight wanted. Sending the same write again would only
// be refused again; the machine shows the refusal and the progress deadline ends the run.
import type { KubernetesObject } from '@kubernetes/client-node';

interface Refusal {
  canaryWeight: number;
  message: string;
  routeVersion: string;
  generation: number | undefined;
}

export class Refusals {
  private readonly byKey = new Map<string, Refusal>();

  record(
    key: string,
    canaryWeight: number,
    message: string,
    route: KubernetesObject | undefined,
    generation: number | undefined,
  ): void {
    this.byKey.set(key, {
      canaryWeight,
      message,
      routeVersion: route?.metadata?.resourceVersion ?? '',
      generation,
    });
  }

  /** The refusal that still holds for the routing object and generation seen now, if any. */
  current(
    key: string,
    route: KubernetesObject | undefined,
    generation: number | undefined,
  ): { canaryWeight: number; message: string } | undefined {
    const r = this.byKey.get(key);
    if (!r) return undefined;
    if (r.routeVersion !== (route?.metadata?.resourceVersion ?? '') || r.generation !== generation) {
      this.byKey.delete(key);
      return undefined;
    }
    return { canaryWeight: r.canaryWeight, message: r.message };
  }

  forget(key: string): void {
    this.byKey.delete(key);
  }
}
