// A watch cache that never gives up: client-node's ListWatch, restarted with backoff after errors.
// ListWatch relists on 410 Gone by itself but stops on any other error; this owns the restarts.
import {
  ADD,
  DELETE,
  ERROR,
  KubernetesObjectApi,
  ListWatch,
  UPDATE,
  Watch,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { isTooManyRequests, retryAfterMs } from './api-error.js';

export interface ResourceRef {
  /** "v1" or "group/version". */
  apiVersion: string;
  kind: string;
  /** Lower-case plural, as in the URL path. */
  plural: string;
  /** Watch one namespace; all namespaces when left out. */
  namespace?: string;
  labelSelector?: string;
}

export interface InformerOptions<T extends KubernetesObject = KubernetesObject> {
  /** First delay after an error; doubles per consecutive error up to maxBackoffMs. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Told about each error before the restart is scheduled (logging, metrics). */
  onError?: (err: unknown, retryInMs: number) => void;
  /**
   * Told, in place of onError, when the server answered 429: it asked to wait (API Priority and Fairness,
   * or a watch cache still initializing after a CRD was created or changed), which is no failure. The
   * restart waits at least the Retry-After it gave. Without this handler a 429 goes to onError.
   */
  onThrottled?: (err: unknown, retryInMs: number) => void;
  /**
   * What the cache keeps of each object, applied to listed and watched objects before they are stored or
   * handed to handlers (src/k8s/slim.ts). It must keep metadata's name, namespace and resourceVersion.
   */
  transform?: (obj: T) => T;
}

/** client-node's Watch, handing ListWatch each watched object through `transform` first. */
class TransformingWatch<T extends KubernetesObject> extends Watch {
  constructor(
    kc: KubeConfig,
    private readonly transform: (obj: T) => T,
  ) {
    super(kc);
  }

  override watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    // ERROR carries a Status and BOOKMARK only a resourceVersion: neither is an object of the resource.
    const each = (phase: string, obj: unknown, watchObj?: unknown) =>
      callback(phase, phase === 'ERROR' || phase === 'BOOKMARK' ? obj : this.transform(obj as T), watchObj);
    return super.watch(path, queryParams, each, done);
  }
}

export interface InformerStats {
  /** Full lists: the first one, and one after each 410 Gone or failed list. */
  lists: number;
  /** Restarts after an error. */
  restarts: number;
  /** Of the errors, the 429 answers: the server asked to wait. */
  throttled: number;
}

type Handler<T> = (obj: T) => void;

/**
 * unknown: no list has answered yet; served: the last list succeeded; notServed: the API server answered
 * 404 for the resource itself (its group/version is not installed), so reads cannot wait for a sync.
 */
export type ServedState = 'unknown' | 'served' | 'notServed';

function notServed(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown };
  return e?.code === 404 || String(e?.message ?? '').startsWith('Unrecognized API version and kind');
}

export function resourcePath(ref: ResourceRef): string {
  const base = ref.apiVersion.includes('/') ? `/apis/${ref.apiVersion}` : `/api/${ref.apiVersion}`;
  return ref.namespace ? `${base}/namespaces/${ref.namespace}/${ref.plural}` : `${base}/${ref.plural}`;
}

export class Informer<T extends KubernetesObject> {
  private readonly listWatch: ListWatch<T>;
  private readonly initialBackoffMs: number;
  private readonly maxBackoffMs: number;
  private consecutiveErrors = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private stopped = true;
  private syncedResolve: (() => void) | undefined;
  private readonly syncedPromise: Promise<void>;
  readonly stats: InformerStats = { lists: 0, restarts: 0, throttled: 0 };
  private servedState: ServedState = 'unknown';
  private readonly stateHandlers: ((state: ServedState) => void)[] = [];

  constructor(
    kc: KubeConfig,
    ref: ResourceRef,
    private readonly opts: InformerOptions<T> = {},
  ) {
    this.initialBackoffMs = opts.initialBackoffMs ?? 200;
    this.maxBackoffMs = opts.maxBackoffMs ?? 10_000;
    this.syncedPromise = new Promise((resolve) => (this.syncedResolve = resolve));
    const objects = KubernetesObjectApi.makeApiClient(kc);
    const list = async (): Promise<KubernetesListObject<T>> => {
      this.stats.lists++;
      let result: KubernetesListObject<T>;
      try {
        result = (await objects.list(
          ref.apiVersion,
          ref.kind,
          ref.namespace,
          undefined,
          undefined,
          undefined,
          undefined,
          ref.labelSelector,
        )) as KubernetesListObject<T>;
      } catch (err) {
        // Discovery or the list answered 404, or the group/version is served without this kind: the
        // resource is not served (a namespace that does not exist lists empty, it does not 404).
        // Retries go on with backoff: installing the CRD later makes it served.
        if (notServed(err)) this.setState('notServed');
        throw err;
      }
      this.consecutiveErrors = 0;
      if (opts.transform) result.items = result.items.map(opts.transform);
      // ListWatch fills its cache after this promise settles; setImmediate runs after that, so whoever
      // hears "served" (or awaits start()) reads a filled cache.
      setImmediate(() => {
        this.setState('served');
        this.syncedResolve?.();
      });
      return result;
    };
    const watch = opts.transform ? new TransformingWatch<T>(kc, opts.transform) : new Watch(kc);
    this.listWatch = new ListWatch<T>(resourcePath(ref), watch, list, false, ref.labelSelector);
    this.listWatch.on(ERROR, (err) => this.scheduleRestart(err));
    const healthy = () => (this.consecutiveErrors = 0);
    this.listWatch.on(ADD, healthy);
    this.listWatch.on(UPDATE, healthy);
    this.listWatch.on(DELETE, healthy);
  }

  /** Starts listing and watching; resolves once the first list is in the cache. */
  async start(): Promise<void> {
    this.stopped = false;
    void this.listWatch.start().catch((err: unknown) => this.scheduleRestart(err));
    await this.syncedPromise;
  }

  /** Whether the API server serves the resource, as the last list found. */
  state(): ServedState {
    return this.servedState;
  }

  /** Told when the served state changes (a CRD installed or removed, a version no longer served). */
  onStateChange(handler: (state: ServedState) => void): this {
    this.stateHandlers.push(handler);
    return this;
  }

  private setState(state: ServedState): void {
    if (state === this.servedState) return;
    this.servedState = state;
    for (const h of this.stateHandlers) h(state);
  }

  stop(): void {
    this.stopped = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    void this.listWatch.stop();
  }

  onAdd(handler: Handler<T>): this {
    this.listWatch.on(ADD, handler);
    return this;
  }

  onUpdate(handler: Handler<T>): this {
    this.listWatch.on(UPDATE, handler);
    return this;
  }

  onDelete(handler: Handler<T>): this {
    this.listWatch.on(DELETE, handler);
    return this;
  }

  get(name: string, namespace?: string): T | undefined {
    return this.listWatch.get(name, namespace);
  }

  list(namespace?: string): readonly T[] {
    return this.listWatch.list(namespace);
  }

  /** The resourceVersion the next watch resumes from ('' means the next start relists). */
  resourceVersion(): string {
    return this.listWatch.latestResourceVersion();
  }

  private scheduleRestart(err: unknown): void {
    if (this.stopped || this.restartTimer) return;
    if ((err as { statusCode?: unknown } | undefined)?.statusCode === 404) {
      // The watch answered 404: the version stopped being served after a list that succeeded (a CRD
      // version turned off, or the CRD deleted). Report it, and relist on restart as client-node does
      // after a 410, so the state comes back to served from a list once the version is served again.
      this.setState('notServed');
      (this.listWatch as unknown as { resourceVersion: string }).resourceVersion = '';
    }
    const backoff = this.initialBackoffMs * 2 ** this.consecutiveErrors;
    this.consecutiveErrors++;
    // A 429 waits as long as the server asked, within maxBackoffMs: sooner would only be turned away again.
    const throttled = isTooManyRequests(err);
    const delay = Math.min(
      this.maxBackoffMs,
      throttled ? Math.max(backoff, retryAfterMs(err) ?? 0) : backoff,
    );
    if (throttled) this.stats.throttled++;
    ((throttled && this.opts.onThrottled) || this.opts.onError)?.(err, delay);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.stopped) return;
      this.stats.restarts++;
      // start() keeps the last resourceVersion, so the watch resumes where it stood (or relists after a 410).
      void this.listWatch.start().catch((e: unknown) => this.scheduleRestart(e));
    }, delay);
  }
}
