// Loopback ports for the sandbox's servers: a free one to hand to another process, or a server of
// our own listening on 127.0.0.1 (port 0 lets the kernel choose, with no race).
import { createServer, type Server } from 'node:net';

export const LOOPBACK = '127.0.0.1';

/** A TCP port on 127.0.0.1 that was free a moment ago (the kernel's choice). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, LOOPBACK, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });
}

/** Starts `server` (net, http or https) on 127.0.0.1:`port` and resolves with the port it got. */
export function listenOnLoopback(server: Server, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, LOOPBACK, () => {
      server.off('error', reject);
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : port);
    });
  });
}
