// One keep-alive connection pool for a KubeConfig's API requests: client-node 1.4 gives each request an
// Agent of its own, so each one paid a new TCP and TLS handshake. Watches keep their own connections.
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent, type AgentOptions } from 'node:https';

/** The agent options that choose who we talk to and as whom: two agents differing here must not share sockets. */
const TLS_KEYS = ['ca', 'cert', 'key', 'pfx', 'passphrase', 'rejectUnauthorized', 'servername'] as const;

/**
 * Idle connections close after this: well under the idle timeouts of Go's HTTP servers (kube-apiserver
 * keeps an idle connection 90 s), so a request is never sent on a socket the server is closing.
 */
export const IDLE_SOCKET_MS = 30_000;
/**
 * Idle connections kept at most. No bound on connections in use: the rate limit bounds the request rate,
 * and a Lease renewal must never wait for a socket behind a burst of writes.
 */
export const MAX_IDLE_SOCKETS = 32;

type Tls = Pick<AgentOptions, (typeof TLS_KEYS)[number]>;

function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => same(x, b[i]));
  const bytes = (v: unknown) => (Buffer.isBuffer(v) ? v : typeof v === 'string' ? Buffer.from(v) : undefined);
  const [x, y] = [bytes(a), bytes(b)];
  return x !== undefined && y !== undefined && x.equals(y);
}

/**
 * An HTTPS agent whose socket key is host, port and server name only. Node's https.Agent keys sockets by
 * every TLS option, the CA, certificate and key text included, rebuilt on each request's every lookup;
 * this agent has one TLS identity (the pool makes another when it changes) and requests bring none of their own.
 */
class OneIdentityHttpsAgent extends HttpsAgent {
  override getName(options: Parameters<HttpAgent['getName']>[0] & { servername?: string } = {}): string {
    return `${HttpAgent.prototype.getName.call(this, options)}:${options.servername ?? ''}`;
  }
}

export class PooledAgent {
  private pooled: { agent: HttpAgent; tls: Tls } | undefined;

  /**
   * The pool to use instead of `fresh`, the agent client-node just made for one request: one agent
   * with its TLS settings, made again only when they change (a rotated client certificate). A proxy's
   * agent (HTTP CONNECT, SOCKS) is left as it is: undefined.
   */
  instead(fresh: unknown): HttpAgent | undefined {
    if (!(fresh instanceof HttpAgent)) return undefined;
    const plain = fresh.constructor === HttpAgent;
    if (!plain && fresh.constructor !== HttpsAgent) return undefined;
    const given = (fresh as HttpAgent & { options: AgentOptions }).options;
    const tls: Tls = {};
    for (const k of TLS_KEYS) if (given[k] !== undefined) Object.assign(tls, { [k]: given[k] });
    const current = this.pooled;
    const sameKind = current !== undefined && (current.agent instanceof HttpsAgent ? !plain : plain);
    if (sameKind && TLS_KEYS.every((k) => same(current.tls[k], tls[k]))) return current.agent;
    // The old pool's idle sockets close by themselves after IDLE_SOCKET_MS; those in use finish first.
    const options = { ...tls, keepAlive: true, maxFreeSockets: MAX_IDLE_SOCKETS, timeout: IDLE_SOCKET_MS };
    const agent = plain ? new HttpAgent(options) : new OneIdentityHttpsAgent(options);
    this.pooled = { agent, tls };
    return agent;
  }

  /** Closes the pool's connections (those in use too). */
  destroy(): void {
    this.pooled?.agent.destroy();
    this.pooled = undefined;
  }
}
