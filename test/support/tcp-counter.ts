// A TCP relay in front of a plain-HTTP server (the real Prometheus) that records each connection made
// through it and when each request on it began, so a test sees which queries shared a connection.
import { connect, createServer, type Socket } from 'node:net';
import { listenOnLoopback, LOOPBACK } from '../../src/sandbox/free-port.js';

export interface RelayedConnection {
  /** performance.now() of each request line seen on it. */
  requests: number[];
}

export interface TcpCounter {
  /** http://127.0.0.1:<port>, with the target's path, if any. */
  url: string;
  connections: RelayedConnection[];
  close(): Promise<void>;
}

/** Found anywhere: a form-encoded body (Prometheus queries) has no spaces, so it never looks like one. */
const REQUEST_LINE = /(?:GET|POST) \/\S* HTTP\/1\.1\r\n/g;

export async function tcpCounter(target: string): Promise<TcpCounter> {
  const to = new URL(target);
  const connections: RelayedConnection[] = [];
  const open = new Set<Socket>();
  const server = createServer((client) => {
    const seen: RelayedConnection = { requests: [] };
    connections.push(seen);
    const upstream = connect({ host: to.hostname, port: Number(to.port) });
    open.add(client).add(upstream);
    let tail = '';
    client.on('data', (chunk: Buffer) => {
      // The last bytes of the previous chunk too, so a request line split across two is still seen once.
      const text = tail + chunk.toString('latin1');
      const from = tail.length;
      for (const m of text.matchAll(REQUEST_LINE))
        if (m.index + m[0].length > from) seen.requests.push(performance.now());
      tail = text.slice(-64);
    });
    client.pipe(upstream).pipe(client);
    const close = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.once('close', close).once('error', close);
    upstream.once('close', close).once('error', close);
  });
  const port = await listenOnLoopback(server);
  return {
    url: `http://${LOOPBACK}:${port}${to.pathname === '/' ? '' : to.pathname}`,
    connections,
    async close() {
      for (const s of open) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
