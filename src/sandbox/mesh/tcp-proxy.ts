// One root Service's TCP listener: each connection is piped whole to the backend the route table picks.
// A connection is routed once, when it opens, as a mesh routes TCP; a weight change affects the next one.
import { connect, createServer, type Server, type Socket } from 'node:net';
import { listenOnLoopback, LOOPBACK } from '../free-port.js';
import type { Listener, RootRouting } from './http-proxy.js';
import type { MeshMetrics } from './metrics.js';

export interface TcpListenerOptions {
  routing: RootRouting;
  metrics: MeshMetrics;
}

export async function startTcpListener(opts: TcpListenerOptions): Promise<Listener> {
  const { routing, metrics } = opts;
  const open = new Set<Socket>();
  const track = (socket: Socket) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
  };

  const server: Server = createServer((client) => {
    track(client);
    const service = routing.pick();
    const port = service === undefined ? undefined : routing.portOf(service);
    if (service === undefined || port === undefined) {
      // TCP has no way to say why; a reset is what a client of a mesh without a route sees.
      if (service !== undefined)
        metrics.recordConnection({ namespace: routing.namespace, name: service }, 'failed');
      client.resetAndDestroy();
      return;
    }
    const destination = { namespace: routing.namespace, name: service };
    const upstream = connect({ host: LOOPBACK, port });
    track(upstream);
    let connected = false;
    upstream.once('connect', () => {
      connected = true;
      metrics.recordConnection(destination, 'connected');
    });
    upstream.once('error', () => {
      if (!connected) metrics.recordConnection(destination, 'failed');
      client.destroy();
    });
    client.once('error', () => upstream.destroy());
    // Writes before 'connect' are buffered by the socket, so the client's first bytes are not lost.
    client.pipe(upstream);
    upstream.pipe(client);
  });

  const port = await listenOnLoopback(server);
  return {
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        for (const socket of open) socket.destroy();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
