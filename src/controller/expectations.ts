// Our own writes until the watch caches show them: the resourceVersions each object has moved past.
// A Rollout is decided again only once its caches show none of them; there is no time limit.
import type { KubernetesObject } from '@kubernetes/client-node';

interface Past {
  rollout: Set<string>;
  /** '' stands for "absent": a routing object Perch created, not yet in the cache. */
  route: Set<string>;
}

/**
 * resourceVersions are opaque, so "newer" is never compared: a write (or a conflict, which proves a
 * newer version exists) marks the version it was based on as past, and a watch delivers versions in
 * order, so the cache has caught up once it shows any version not marked.
 */
export class Expectations {
  private readonly past = new Map<string, Past>();

  private entry(key: string): Past {
    let p = this.past.get(key);
    if (!p) this.past.set(key, (p = { rollout: new Set(), route: new Set() }));
    return p;
  }

  /** The Rollout has moved past `version`: by our write, or by someone else's (a conflict). */
  rolloutPast(key: string, version: string | undefined): void {
    if (version !== undefined) this.entry(key).rollout.add(version);
  }

  /** The routing object has moved past `current` (undefined: it did not exist, and now does). */
  routePast(key: string, current: KubernetesObject | undefined): void {
    this.entry(key).route.add(current?.metadata?.resourceVersion ?? '');
  }

  /** Whether the caches still show a version we know is past; what they have caught up with is dropped. */
  behind(key: string, rollout: KubernetesObject, route: KubernetesObject | undefined): boolean {
    const p = this.past.get(key);
    if (!p) return false;
    if (p.rollout.has(rollout.metadata?.resourceVersion ?? '')) return true;
    if (p.route.has(route?.metadata?.resourceVersion ?? '')) return true;
    this.past.delete(key);
    return false;
  }

  forget(key: string): void {
    this.past.delete(key);
  }

  size(): number {
    return this.past.size;
  }
}
