// Every API request the controller makes, whoever makes it: the user agent `perch-controller/<version>`,
// a timeout on every request but watches, and (under leader election) no write unless this process leads.
import type { KubeConfig, RequestContext } from '@kubernetes/client-node';
import { readFileSync } from 'node:fs';
import { repoRoot } from '../sandbox/repo.js';

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
}

/** A write refused by the fence: it never left this process. */
export class FencedWriteError extends Error {
  override readonly name = 'FencedWriteError';
}

interface Settings {
  userAgent: string;
  requestTimeoutMs: number;
  writeFence: WriteFence | undefined;
}

const configured = new WeakMap<KubeConfig, Settings>();
const READS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** Leader election writes its Lease whether or not it leads: that is how it comes to lead. */
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
    return kc;
  }
  const settings: Settings = {
    userAgent: opts.userAgent ?? userAgent(),
    requestTimeoutMs: timeout ?? DEFAULT_REQUEST_TIMEOUT_MS,
    writeFence: opts.writeFence,
  };
  configured.set(kc, settings);

  // The generated API clients (makeApiClient, KubernetesObjectApi) call this for every request,
  // just before their middleware and the send.
  const authenticate = kc.applySecurityAuthentication.bind(kc);
  kc.applySecurityAuthentication = async (context: RequestContext) => {
    await authenticate(context);
    context.setHeaderParam('User-Agent', settings.userAgent);
    const signal = AbortSignal.timeout(settings.requestTimeoutMs);
    const given = context.getSignal();
    context.setSignal(given ? AbortSignal.any([given, signal]) : signal);
    const method = context.getHttpMethod().toString();
    if (!READS.has(method) && settings.writeFence) {
      const path = new URL(context.getUrl()).pathname;
      const refused = path.startsWith(LEASES) ? undefined : settings.writeFence();
      if (refused) throw new FencedWriteError(`${method} ${path} not sent: ${refused}`);
    }
  };
  // Watch asks for fetch options; it sets its own abort signal, and a watch stays open on purpose.
  const fetchOptions = kc.applyToFetchOptions.bind(kc);
  kc.applyToFetchOptions = async (o) => {
    const init = await fetchOptions(o);
    (init.headers as unknown as Headers).set('User-Agent', settings.userAgent);
    return init;
  };
  return kc;
}
