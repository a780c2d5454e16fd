// How the Prometheus client reaches a server: a POST over node:http(s) through a keep-alive Agent, one per
// Prometheus. Global fetch drops a connection idle for 4 s (less than a check interval) and opens one per query in flight.
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

/** What the client reads of an answer; global fetch's Response is one too (tests inject a fetch). */
export interface PrometheusAnswer {
  status: number;
  text(): Promise<string>;
}

export interface PrometheusRequest {
  method: 'POST';
  headers: Record<string, string>;
  body: string;
  /** Aborts the request, or the reading of its body. */
  signal: AbortSignal;
}

export type PrometheusFetch = (url: URL, init: PrometheusRequest) => Promise<PrometheusAnswer>;

/**
 * Idle connections close after this: under Prometheus's own idle limit (its --web.read-timeout, 5 min),
 * above any check interval worth having, so a Rollout's next round finds its connection still open.
 */
export const IDLE_SOCKET_MS = 60_000;
/**
 * Connections to one Prometheus at most; further queries wait for one. Prometheus runs 20 queries at
 * once by default (--query.max-concurrency) and queues the rest itself: more connections than this only
 * cost it sockets, as a thousand Rollouts' rounds coming due together would.
 */
export const MAX_SOCKETS = 32;

/**
 * The keep-alive pool for the Prometheus at `address` (an https one gets TLS, anything else plain HTTP),
 * of `maxSockets` connections at most.
 */
export function prometheusAgent(address: string, maxSockets = MAX_SOCKETS): HttpAgent {
  const options = {
    keepAlive: true,
    maxSockets,
    maxFreeSockets: maxSockets,
    timeout: IDLE_SOCKET_MS,
  };
  return address.startsWith('https:') ? new HttpsAgent(options) : new HttpAgent(options);
}

/** A fetch-shaped POST through `agent`. Socket errors reject as Node gives them (with their code). */
export function agentFetch(agent: HttpAgent): PrometheusFetch {
  return (url, init) =>
    new Promise<PrometheusAnswer>((resolve, reject) => {
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
      const req = send(
        url,
        {
          method: init.method,
          headers: { ...init.headers, 'content-length': String(Buffer.byteLength(init.body)) },
          agent,
          signal: init.signal,
        },
        (res) => {
          const body = readBody(res);
          // Read at once, so the socket goes back to the pool even if nobody asks for the text.
          body.catch(() => undefined);
          resolve({ status: res.statusCode ?? 0, text: () => body });
        },
      );
      req.once('error', reject);
      req.end(init.body);
    });
}

function readBody(res: IncomingMessage): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let ended = false;
    res.on('data', (chunk: Buffer) => chunks.push(chunk));
    res.once('end', () => {
      ended = true;
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    res.once('error', reject);
    res.once('close', () => {
      if (!ended) reject(new Error('the connection closed before the whole answer came'));
    });
  });
}
