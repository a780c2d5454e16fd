// Values many Rollouts share (compiled windows, Prometheus clients), each kept while some Rollout uses it
// and dropped when none does: a controller that outlives many specs must not grow with them.

export class SharedByRollouts<T> {
  private readonly values = new Map<string, { value: T; users: Set<string> }>();
  private readonly uses = new Map<string, Set<string>>();

  /** The value for `id`, made once, now marked as used by `user`. */
  acquire(user: string, id: string, create: () => T): T {
    let entry = this.values.get(id);
    if (!entry) this.values.set(id, (entry = { value: create(), users: new Set() }));
    entry.users.add(user);
    let ids = this.uses.get(user);
    if (!ids) this.uses.set(user, (ids = new Set()));
    ids.add(id);
    return entry.value;
  }

  /** `user` now uses only the ids in `keep`: the others are released. */
  settle(user: string, keep: ReadonlySet<string>): void {
    const ids = this.uses.get(user);
    if (!ids) return;
    for (const id of ids) if (!keep.has(id)) this.drop(user, id, ids);
    if (ids.size === 0) this.uses.delete(user);
  }

  /** `user` is gone: everything it used is released. */
  release(user: string): void {
    this.settle(user, new Set());
  }

  /** How many values are kept now. */
  size(): number {
    return this.values.size;
  }

  private drop(user: string, id: string, ids: Set<string>): void {
    ids.delete(id);
    const entry = this.values.get(id);
    if (!entry) return;
    entry.users.delete(user);
    if (entry.users.size === 0) this.values.delete(id);
  }
}
