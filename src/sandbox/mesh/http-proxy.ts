// One root Service's HTTP listener: each request goes to the backend the route table picks, Host kept as sent.
// Bodies stream both ways; every request sent to a backend is counted in osm_request_total and _duration_ms.
import {
  createServer,
  request,
  type Agent,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type Server,
} from 'node:http';
import type { TrafficSource } from '../apps/osm-metrics-target.js';
import { listenOnLoopback, LOOPBACK } from '../free-port.js';
import type { Decision, RequestFacts } from './http-route-rules.js';
import { sourceOf, type MeshMetrics } from './metrics.js';

export interface RootRouting {
  namespace: string;
  root: string;
  /**
   * The backend Service for the next request or connection: by the root's split, else the root itself
   * when it is a backend with an endpoint; undefined when neither.
   */
  pick(): string | undefined;
  /** The loopback port a backend Service is served on; undefined when none is registered. */
  portOf(service: string): number | undefined;
}

export interface HttpRootRouting extends Omit<RootRouting, 'pick'> {
  /**
   * Where the request goes: by the root's HTTPRoutes, else its split, else the root itself when it is a
   * backend with an endpoint; a status the mesh answers itself (no rule matches, an invalid backend);
   * undefined when nothing routes the root.
   */
  decide(req: RequestFacts): Decision | undefined;
}

export interface HttpListenerOptions {
  routing: HttpRootRouting;
  metrics: MeshMetrics;
  defaultSource: TrafficSource;
  /** Keep-alive connections to the backends, shared by every root. */
  agent: Agent;
}

export interface Listener {
  port: number;
  close(): Promise<void>;
}

/** Connection-scoped headers (RFC 9110 §7.6.1): they describe one hop, so a proxy never forwards them. */
const HOP_BY_HOP = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
];

function endToEnd(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = { ...headers };
  for (const name of HOP_BY_HOP) delete out[name];
  return out;
}

export async function startHttpListener(opts: HttpListenerOptions): Promise<Listener> {
  const { routing, metrics, defaultSource, agent } = opts;
  const where = `${routing.root}.${routing.namespace}`;

  const server: Server = createServer((req, res) => {
    const started = performance.now();
    const decision = routing.decide({
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      headers: req.headers,
    });
    // Not counted: a request the mesh answers itself has no destination to label it with, as in OSM.
    if (decision === undefined || !decision.ok) {
      const [status, message] = decision
        ? [decision.status, decision.message]
        : [
            503,
            `no TrafficSplit routes ${where}, no HTTPRoute names it as a parent, and it has no endpoint of its own: a root Service without a route has no backend`,
          ];
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' }).end(`${message}\n`);
      req.resume();
      return;
    }
    const service = decision.service;
    const destination = { namespace: routing.namespace, name: service };
    const source = sourceOf(req.headers, defaultSource);
    // 'close' follows 'finish', and also comes alone when the client goes away; count once, and only
    // requests that got an answer, as Envoy's response_code does.
    res.once('close', () => {
      if (res.headersSent)
        metrics.recordRequest(source, destination, res.statusCode, performance.now() - started);
    });
    const fail = (message: string) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      res.writeHead(502, { 'content-type': 'text/plain; charset=utf-8' }).end(`${message}\n`);
    };

    const port = routing.portOf(service);
    if (port === undefined) {
      req.resume();
      fail(`backend ${routing.namespace}/${service} of ${where} has no sandbox endpoint registered`);
      return;
    }
    // req.headers still holds the client's Host, so the backend sees the authority it was called by.
    const upstream = request(
      { host: LOOPBACK, port, method: req.method, path: req.url, headers: endToEnd(req.headers), agent },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.statusMessage, endToEnd(answer.headers));
        answer.pipe(res);
        answer.once('error', () => res.destroy());
      },
    );
    upstream.once('error', (err) =>
      fail(`backend ${routing.namespace}/${service} at ${LOOPBACK}:${port} failed: ${err.message}`),
    );
    res.once('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  });

  const port = await listenOnLoopback(server);
  return {
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        // Load generators keep their connections alive; close() alone would wait for them.
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
