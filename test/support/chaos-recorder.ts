// Every version of a namespace's routing objects of one kind (TrafficSplits or HTTPRoutes), straight from
// kube-apiserver (never through a fault proxy): a watch that resumes, and accounts for any relist from etcd.
import { CustomObjectsApi, Watch, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { EventLog } from './events.js';
import { resourceOf, type RouterKind } from './route-under-test.js';

export interface RecordedRoute {
  router: RouterKind;
  name: string;
  /** The object's resourceVersion (etcd's modification revision), as a number. */
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  /** The version as stored, managedFields left out. */
  object: KubernetesObject;
  /** How the version reached us: a list, the watch, or etcd's history when a relist left a gap. */
  source: 'list' | 'watch' | 'etcd';
  at: number;
}

export interface RecorderStats {
  /** Watch requests opened, the first included. */
  watches: number;
  /** Watches that ended (cut, timed out, server gone) and were resumed from the last resourceVersion. */
  resumes: number;
  /** Times the server refused the resourceVersion (410 Gone) and the recorder had to list again. */
  relists: number;
  /** Versions a relist skipped over, read back from etcd's history instead. */
  fromEtcd: number;
  /** Versions no source could account for: each one a missed version, and a failed test. */
  gaps: string[];
  /** Connection errors while resuming (the API server restarting, for instance). */
  errors: number;
}

type RouteObject = KubernetesObject;

type Etcd = { url: string; prefix: string };

/** Where kube-apiserver keeps a custom resource's objects in etcd. */
const keyPrefix = (router: RouterKind) =>
  `/registry/${resourceOf(router).group}/${resourceOf(router).plural}`;

export class RouteRecorder {
  readonly versions = new EventLog<RecordedRoute>();
  readonly stats: RecorderStats = { watches: 0, resumes: 0, relists: 0, fromEtcd: 0, gaps: [], errors: 0 };
  /** The resourceVersion the next watch starts from. */
  private rv = '';
  private readonly last = new Map<string, number>();
  private abort: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private failures = 0;
  private readonly listeners: ((v: RecordedRoute) => void)[] = [];

  private constructor(
    private readonly kc: KubeConfig,
    readonly ns: string,
    readonly router: RouterKind,
    private readonly etcd: Etcd | undefined,
  ) {}

  /**
   * Lists once, then watches from the list's resourceVersion. With `etcdUrl`, a relist's gap is
   * read back from etcd's history; without it, any relist is recorded as a gap.
   */
  static async start(
    kc: KubeConfig,
    ns: string,
    router: RouterKind,
    etcdUrl?: string,
  ): Promise<RouteRecorder> {
    const r = new RouteRecorder(
      kc,
      ns,
      router,
      etcdUrl ? { url: etcdUrl, prefix: `${keyPrefix(router)}/${ns}/` } : undefined,
    );
    const list = await r.list();
    for (const item of list.items) r.record('ADDED', item, 'list');
    r.rv = list.rv;
    await r.watch();
    return r;
  }

  /** Calls `handler` with each version as it is recorded (no timer: nothing is kept waiting after a run). */
  onVersion(handler: (v: RecordedRoute) => void): void {
    this.listeners.push(handler);
  }

  /** Every recorded version of one object, in resourceVersion order. */
  history(name: string): RecordedRoute[] {
    return this.versions.seen.filter((v) => v.name === name);
  }

  /** Resolves once every object as the API server has it now has been recorded at that version. */
  async caughtUp(timeoutMs = 30_000): Promise<void> {
    const list = await this.list();
    await Promise.all(
      list.items.map((item) => {
        const name = item.metadata?.name ?? '';
        const rv = Number(item.metadata?.resourceVersion);
        return this.versions.find(
          (v) => v.name === name && v.rv >= rv,
          timeoutMs,
          `the recorder to reach ${name} at resourceVersion ${rv}`,
        );
      }),
    );
  }

  /**
   * Checks the record against etcd's history of every object (the store under the API server): the
   * versions etcd holds that the recorder lacks, and the reverse. Empty when nothing was missed.
   */
  async crossCheck(etcdUrl: string): Promise<string[]> {
    const problems: string[] = [];
    for (const name of this.last.keys()) {
      const key = `${keyPrefix(this.router)}/${this.ns}/${name}`;
      const stored: number[] = [];
      for (let kv = await etcdGet(etcdUrl, key, 0); kv; kv = await etcdGet(etcdUrl, key, kv.modRevision - 1))
        stored.unshift(kv.modRevision);
      const recorded = this.history(name)
        .filter((v) => v.type !== 'DELETED')
        .map((v) => v.rv);
      const missed = stored.filter((rv) => !recorded.includes(rv));
      const unknown = recorded.filter((rv) => !stored.includes(rv));
      if (missed.length > 0)
        problems.push(`${name}: etcd has versions ${missed.join(', ')} the recorder missed`);
      if (unknown.length > 0)
        problems.push(`${name}: recorded versions ${unknown.join(', ')} etcd never had`);
    }
    return problems;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.abort?.();
  }

  private async list(): Promise<{ items: RouteObject[]; rv: string }> {
    const api = this.kc.makeApiClient(CustomObjectsApi);
    const { group, version, plural } = resourceOf(this.router);
    const list = (await api.listNamespacedCustomObject({ group, version, plural, namespace: this.ns })) as {
      items: RouteObject[];
      metadata: { resourceVersion: string };
    };
    return { items: list.items, rv: list.metadata.resourceVersion };
  }

  private record(type: RecordedRoute['type'], obj: RouteObject, source: RecordedRoute['source']): void {
    const name = obj.metadata?.name ?? '';
    const rv = Number(obj.metadata?.resourceVersion);
    // A watch resumed from rv never repeats rv; a repeat would be the recorder's bug, so it is kept out.
    if ((this.last.get(name) ?? 0) >= rv) return;
    this.last.set(name, rv);
    const v = toRecord(this.router, name, rv, obj, source, type);
    this.versions.push(v);
    for (const l of this.listeners) l(v);
  }

  private async watch(): Promise<void> {
    if (this.stopped) return;
    this.stats.watches++;
    let gone = false;
    const { group, version, plural } = resourceOf(this.router);
    const path = `/apis/${group}/${version}/namespaces/${this.ns}/${plural}`;
    const controller = await new Watch(this.kc).watch(
      path,
      { resourceVersion: this.rv, allowWatchBookmarks: true },
      (type: string, obj: RouteObject & { code?: number }) => {
        if (type === 'ERROR') {
          if (obj.code === 410) gone = true;
          return;
        }
        this.failures = 0;
        if (type !== 'BOOKMARK') this.record(type as RecordedRoute['type'], obj, 'watch');
        if (obj.metadata?.resourceVersion) this.rv = obj.metadata.resourceVersion;
      },
      (err: unknown) => {
        if (this.stopped) return;
        const status = (err as { statusCode?: number } | null)?.statusCode;
        if (gone || status === 410) void this.relist();
        else {
          if (err) this.stats.errors++;
          this.stats.resumes++;
          this.again(() => this.watch());
        }
      },
    );
    this.abort = () => controller.abort();
  }

  private again(next: () => Promise<void>): void {
    const delay = Math.min(1000, 100 * 2 ** this.failures++);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      next().catch(() => {
        this.stats.errors++;
        this.again(next);
      });
    }, delay);
  }

  /** After a 410: list, read every version between the old and the new resourceVersion from etcd, go on. */
  private async relist(): Promise<void> {
    this.stats.relists++;
    const from = Number(this.rv);
    let list: { items: RouteObject[]; rv: string };
    try {
      list = await this.list();
    } catch {
      this.stats.errors++;
      return this.again(() => this.relist());
    }
    const to = Number(list.rv);
    const names = new Set([...this.last.keys(), ...list.items.map((i) => i.metadata?.name ?? '')]);
    const missed: RecordedRoute[] = [];
    for (const name of names) {
      const listed = list.items.find((i) => i.metadata?.name === name);
      const listedRv = Number(listed?.metadata?.resourceVersion ?? 0);
      if (listed && listedRv === this.last.get(name)) continue;
      if (!this.etcd) {
        this.stats.gaps.push(`${name}: a relist from ${from} to ${to} may have hidden versions`);
        if (listed) missed.push(toRecord(this.router, name, listedRv, listed, 'list'));
        continue;
      }
      try {
        missed.push(...(await this.fromEtcd(name, from, to)));
      } catch (err) {
        this.stats.gaps.push(`${name}: versions ${from}..${to} not readable from etcd: ${String(err)}`);
      }
    }
    for (const v of missed.sort((a, b) => a.rv - b.rv)) {
      if (v.source === 'etcd') this.stats.fromEtcd++;
      this.record(v.type, v.object, v.source);
    }
    this.rv = list.rv;
    return this.watch();
  }

  /** The versions of one object with a modification revision in (from, to], read back from etcd. */
  private async fromEtcd(name: string, from: number, to: number): Promise<RecordedRoute[]> {
    const etcd = this.etcd!;
    const out: RecordedRoute[] = [];
    let revision = to;
    for (;;) {
      const kv = await etcdGet(etcd.url, `${etcd.prefix}${name}`, revision);
      if (!kv || kv.modRevision <= from) break;
      out.push(toRecord(this.router, name, kv.modRevision, kv.value, 'etcd'));
      revision = kv.modRevision - 1;
    }
    const gone = this.last.has(name) && (await etcdGet(etcd.url, `${etcd.prefix}${name}`, to)) === undefined;
    if (gone)
      this.stats.gaps.push(`${name}: deleted between ${from} and ${to}; the deletion's version is unknown`);
    return out;
  }
}

/** One version as recorded; the object keeps the resourceVersion it had (etcd's copy has none). */
function toRecord(
  router: RouterKind,
  name: string,
  rv: number,
  obj: RouteObject,
  source: RecordedRoute['source'],
  type: RecordedRoute['type'] = 'MODIFIED',
): RecordedRoute {
  const { managedFields: _managedFields, ...metadata } = obj.metadata ?? {};
  const object = { ...obj, metadata: { ...metadata, name, resourceVersion: String(rv) } };
  return { router, name, rv, type, object, source, at: Date.now() };
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

/** One key as etcd had it at `revision` (custom resources are stored as JSON), over etcd's HTTP gateway. */
async function etcdGet(
  etcdUrl: string,
  key: string,
  revision: number,
): Promise<{ modRevision: number; value: RouteObject } | undefined> {
  // revision 0: the latest.
  const res = await fetch(`${etcdUrl}/v3/kv/range`, {
    method: 'POST',
    body: JSON.stringify({ key: b64(key), revision: String(revision) }),
  });
  if (!res.ok) throw new Error(`etcd range ${key}@${revision}: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { kvs?: { mod_revision: string; value: string }[] };
  const kv = body.kvs?.[0];
  if (!kv) return undefined;
  return {
    modRevision: Number(kv.mod_revision),
    value: JSON.parse(Buffer.from(kv.value, 'base64').toString('utf8')) as RouteObject,
  };
}
