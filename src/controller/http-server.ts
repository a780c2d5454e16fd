// The controller's HTTP endpoints: /metrics (prom-client), /healthz (alive: no worker stuck),
// /readyz (caches synced).
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';

export interface HttpServer {
  /** The address it listens on, e.g. 127.0.0.1:40123 (port 0 in --metrics-addr picks a free one). */
  address: string;
  close(): Promise<void>;
}

/** ":8080" → all interfaces, "127.0.0.1:0" → loopback and a free port. */
export function parseListenAddress(addr: string): { host: string | undefined; port: number } {
  const i = addr.lastIndexOf(':');
  const host = i > 0 ? addr.slice(0, i).replace(/^\[|\]$/g, '') : undefined;
  const port = Number(addr.slice(i + 1));
  if (i < 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`--metrics-addr ${addr}: write [host]:port, e.g. :8080 or 127.0.0.1:0`);
  }
  return { host, port };
}

/** What /healthz answers: ok, or why not (a kubelet restarts a process whose liveness fails). */
export type Health = { ok: true } | { ok: false; reason: string };

export async function startHttpServer(
  addr: string,
  registry: Registry,
  ready: () => boolean,
  health: () => Health = () => ({ ok: true }),
): Promise<HttpServer> {
  const { host, port } = parseListenAddress(addr);
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      registry.metrics().then(
        (body) => {
          res.writeHead(200, { 'content-type': registry.contentType });
          res.end(body);
        },
        (err: Error) => {
          res.writeHead(500);
          res.end(err.message);
        },
      );
    } else if (path === '/healthz') {
      const h = health();
      res.writeHead(h.ok ? 200 : 503, { 'content-type': 'text/plain' });
      res.end(h.ok ? 'ok' : h.reason);
    } else if (path === '/readyz') {
      const ok = ready();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' });
      res.end(ok ? 'ok' : 'caches not synced yet');
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const a = server.address();
  const bound =
    typeof a === 'object' && a ? `${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}` : addr;
  return { address: bound, close: () => new Promise((resolve) => server.close(() => resolve())) };
}
