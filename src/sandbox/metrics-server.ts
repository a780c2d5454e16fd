// A /metrics endpoint on a loopback port of its own, for the sandbox's scrape targets (mesh, OSM target).
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import { listenOnLoopback, LOOPBACK } from './free-port.js';

export interface MetricsServer {
  port: number;
  /** http://127.0.0.1:PORT/metrics */
  url: string;
  /** "127.0.0.1:PORT", as a Prometheus static target. */
  target: string;
  close(): Promise<void>;
}

/** GET /metrics on a port of its own, apart from any traffic, as a sidecar's admin port is. */
export async function serveMetrics(registry: Registry): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
      res.writeHead(404).end('only GET /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: Error) => res.writeHead(500).end(`${err.message}\n`),
    );
  });
  const port = await listenOnLoopback(server);
  return {
    port,
    url: `http://${LOOPBACK}:${port}/metrics`,
    target: `${LOOPBACK}:${port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        // Prometheus keeps its scrape connection open; close() alone would wait for it.
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
