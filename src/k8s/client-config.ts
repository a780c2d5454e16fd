// Every API request the controller makes, whoever makes it: the user agent `perch-controller/<version>`,
// a timeout, one keep-alive pool and a rate limit on all but watches, and (under leader election) no write unless it leads.
import {
  createConfiguration,
  ServerConfiguration,
  type KubeConfig,
  type RequestContext,
} from '@kubernetes/client-node';
import { setMaxListeners } from 'node:events';
import { readFileSync } from 'node:fs';
import { repoRoot } from '../sandbox/repo.js';
import { PooledAgent } from './api-agent.js';
import { nodeHttpLibrary } from './http-library.js';
import { DEFAULT_RATE_LIMIT, TokenBucket, type RateLimit } from './rate-limiter.js';

/** How long a request other than a watch may take, answer included, unless told otherwise. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

export const VERSION = (JSON.parse(readFileSync(`${repoRoot}/package.json`, 'utf8')) as { version: string })
  .version;

/** `perch-controller/<version> (<os>/<arch>)`, then `suffix` (a replica's identity) when given. */
export function userAgent(suffix?: string): string {
  const base = `perch-controller/${VERSION} (${process.platform}/${process.arch})`;
  return suffix ? `${base} ${suffix}` : base;
}

/**
 * Says why a write may not be sent now, or undefined when it may. Asked as each write is about to
 * go out, so a process that was paused past its lease refuses before any of its timers run.
 */
export type WriteFence = () => string | undefined;

export interface ClientOptions {
  /** Default: userAgent(). */
  userAgent?: string;
  /** Default: DEFAULT_REQUEST_TIMEOUT_MS. Watches are long by design and have none. */
  requestTimeoutMs?: number;
  /** Writes other than to Leases are refused while it answers a reason. Default: none. */
  writeFence?: WriteFence;
  /**
   * Client-side limit on requests other than watches and Lease requests, waited for before the timeout
   * starts. Default: DEFAULT_RATE_LIMIT.
   */
  rateLimit?: RateLimit;
}

/** A write refused by the fence: it never left this process. */
export class FencedWriteError extends Error {
  override readonly name = 'FencedWriteError';
}

interface Settings {
  userAgent: string;
  requestTimeoutMs: number;
  writeFence: WriteFence | undefined;
  bucket: TokenBucket;
}

const configured = new WeakMap<KubeConfig, Settings>();

/**
 * Request timeouts that share a timer: every request sent within one grain (a twentieth of the timeout, at
 * most a second) gets the same signal, which aborts at the latest of their deadlines. AbortSignal.timeout
 * per request cost a timer and a weak reference each; a request now may run up to one grain longer, never shorter.
 */
export class Deadlines {
  private current: { at: number; signal: AbortSignal } | undefined;

  signal(timeoutMs: number, now = Date.now()): AbortSignal {
    const grain = Math.max(1, Math.min(1000, Math.floor(timeoutMs / 20)));
    const at = Math.ceil((now + timeoutMs) / grain) * grain;
    if (this.current?.at === at) return this.current.signal;
    const ac = new AbortController();
    // Every request in flight listens to it until it ends: many at once is the point, not a leak.
    setMaxListeners(0, ac.signal);
    setTimeout(
      () => ac.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError')),
      at - now,
    ).unref();
    this.current = { at, signal: ac.signal };
    return ac.signal;
  }
}
const READS = new Set(['GET', 'HEAD', 'OPTIONS']);
/**
 * Leader election writes its Lease whether or not it leads: that is how it comes to lead. Nor do its
 * requests wait for the rate limit: one every retry period, and a renewal stuck behind a burst of writes
 * would cost the lead (controller-runtime gives leader election a client of its own for this).
 */
const LEASES = '/apis/coordination.k8s.io/';

/**
 * Makes every client of `kc` send the user agent and time out, including the API clients and
 * watches made before this call (they ask `kc` on each request). Calling again changes only the
 * options given, so `runController` can call it on a KubeConfig the CLI configured already.
 */
export function configureClient(kc: KubeConfig, opts: ClientOptions = {}): KubeConfig {
  const timeout = opts.requestTimeoutMs;
  if (timeout !== undefined && !(Number.isFinite(timeout) && timeout > 0))
    throw new Error(`requestTimeoutMs ${timeout}: give a positive number of milliseconds`);
  const existing = configured.get(kc);
  if (existing) {
    if (opts.userAgent !== undefined) existing.userAgent = opts.userAgent;
    if (timeout !== undefined) existing.requestTimeoutMs = timeout;
    if ('writeFence' in opts) existing.writeFence = opts.writeFence;
    if (opts.rateLimit) existing.bucket = new TokenBucket(opts.rateLimit);
    return kc;
  }
  const settings: Settings = {
    userAgent: opts.userAgent ?? userAgent(),
    requestTimeoutMs: timeout ?? DEFAULT_REQUEST_TIMEOUT_MS,
    writeFence: opts.writeFence,
    bucket: new TokenBucket(opts.rateLimit ?? DEFAULT_RATE_LIMIT),
  };
  configured.set(kc, settings);
  const pool = new PooledAgent();
  const deadlines = new Deadlines();

  // The generated API clients (makeApiClient, KubernetesObjectApi) call this for every request,
  // just before their middleware and the send.
  const authenticate = kc.applySecurityAuthentication.bind(kc);
  kc.applySecurityAuthentication = async (context: RequestContext) => {
    await authenticate(context);
    context.setHeaderParam('User-Agent', settings.userAgent);
    const pooled = pool.instead(context.getAgent());
    if (pooled) context.setAgent(pooled);
    const path = new URL(context.getUrl()).pathname;
    const lease = path.startsWith(LEASES);
    const given = context.getSignal();
    // In line first, then on the clock: the timeout is for the API server's answer, not for our own queue.
    if (!lease) await settings.bucket.take(given);
    const signal = deadlines.signal(settings.requestTimeoutMs);
    context.setSignal(given ? AbortSignal.any([given, signal]) : signal);
    const method = context.getHttpMethod().toString();
    if (!READS.has(method) && settings.writeFence) {
      const refused = lease ? undefined : settings.writeFence();
      if (refused) throw new FencedWriteError(`${method} ${path} not sent: ${refused}`);
    }
  };
  // Clients made from here on send with Node's http(s).request instead of node-fetch (src/k8s/http-library.ts);
  // everything above still applies to each request, as it is the clients' authentication step.
  kc.makeApiClient = ((apiClientType: new (config: ReturnType<typeof createConfiguration>) => unknown) => {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig has no current cluster: set current-context to one');
    return new apiClientType(
      createConfiguration({
        baseServer: new ServerConfiguration(cluster.server, {}),
        authMethods: { default: kc },
        httpApi: nodeHttpLibrary,
      }),
    );
  }) as KubeConfig['makeApiClient'];
  // Watch asks for fetch options; it sets its own abort signal, and a watch stays open on purpose: it
  // keeps the connection client-node makes for it, so a long stream never holds one of the pool's.
  const fetchOptions = kc.applyToFetchOptions.bind(kc);
  kc.applyToFetchOptions = async (o) => {
    const init = await fetchOptions(o);
    (init.headers as unknown as Headers).set('User-Agent', settings.userAgent);
    return init;
  };
  return kc;
}
