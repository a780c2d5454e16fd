// A demo backend shaped like OSM's bookstore: one version of the shop on a loopback port, answering
// GET /books-bought and /buy-a-book/new, with an error rate and an added latency settable at runtime.
import { createServer, type Server, type ServerResponse } from 'node:http';
import { listenOnLoopback, LOOPBACK } from '../free-port.js';

export interface BookstoreBehaviour {
  /** Fraction of book requests answered 500, 0..1. */
  errorRate: number;
  /** Milliseconds added before every book request is answered (errors too, as a slow backend would). */
  latencyMs: number;
}

export interface BookstoreOptions extends Partial<BookstoreBehaviour> {
  /** The version name it reports, e.g. "v1"; its identity is `bookstore-<version>`. */
  version: string;
  /** A fixed port on 127.0.0.1; default a free one chosen by the kernel. */
  port?: number;
}

export interface BookstoreStats {
  version: string;
  /** Book requests answered, errors included (health checks and 404s are not counted). */
  requests: number;
  /** Book requests answered 500. */
  errors: number;
  /** Books sold since start: /buy-a-book/new answered 200. */
  booksBought: number;
  /** Book requests answered, by status code. */
  byCode: Record<string, number>;
  errorRate: number;
  latencyMs: number;
}

export interface Bookstore {
  /** http://127.0.0.1:PORT */
  url: string;
  port: number;
  version: string;
  /** Changes the error rate and/or latency from the next request on. */
  set(behaviour: Partial<BookstoreBehaviour>): void;
  stats(): BookstoreStats;
  close(): Promise<void>;
}

/** Guards against 0.1 × 30 = 2.9999999999999996 losing an error to the comparison. */
const EPSILON = 1e-9;

const BOOK_PATHS = new Set(['/books-bought', '/buy-a-book/new']);

/**
 * Errors are spread evenly, not drawn at random: each request adds errorRate to a carry and fails when
 * the carry reaches 1, so any N consecutive requests after a set() hold exactly floor(N × errorRate)
 * errors. Tests and the demo's metrics then see the configured rate, not a sample of it.
 */
export async function startBookstore(opts: BookstoreOptions): Promise<Bookstore> {
  const version = opts.version;
  const identity = `bookstore-${version}`;
  let behaviour: BookstoreBehaviour = checked(version, {
    errorRate: opts.errorRate ?? 0,
    latencyMs: opts.latencyMs ?? 0,
  });
  let errorCarry = 0;
  let requests = 0;
  let errors = 0;
  let booksBought = 0;
  const byCode: Record<string, number> = {};
  // Delayed answers are tracked so close() can cancel them rather than wait out the latency.
  const pending = new Set<NodeJS.Timeout>();

  function answer(res: ServerResponse, path: string): void {
    errorCarry += behaviour.errorRate;
    const fail = errorCarry >= 1 - EPSILON;
    if (fail) errorCarry = Math.max(0, errorCarry - 1);
    const respond = () => {
      requests++;
      const code = fail ? 500 : 200;
      byCode[code] = (byCode[code] ?? 0) + 1;
      if (fail) {
        errors++;
        res.writeHead(500, { 'content-type': 'application/json', identity });
        res.end(JSON.stringify({ version, identity, error: 'injected failure' }) + '\n');
        return;
      }
      if (path === '/buy-a-book/new') booksBought++;
      res.writeHead(200, { 'content-type': 'application/json', identity });
      res.end(JSON.stringify({ version, identity, booksBought }) + '\n');
    };
    if (behaviour.latencyMs <= 0) return respond();
    const timer = setTimeout(() => {
      pending.delete(timer);
      respond();
    }, behaviour.latencyMs);
    pending.add(timer);
    // A client that gave up must not leave its timer behind. The response's 'close', not the request's:
    // the request closes as soon as its body has been read.
    res.once('close', () => {
      if (res.writableEnded || !pending.has(timer)) return;
      clearTimeout(timer);
      pending.delete(timer);
    });
  }

  const server: Server = createServer((req, res) => {
    const path = req.url?.split('?')[0] ?? '/';
    if (path === '/healthz') {
      res.writeHead(200, { identity }).end('ok\n');
      return;
    }
    if (!BOOK_PATHS.has(path) || (req.method !== 'GET' && req.method !== 'POST')) {
      res.writeHead(404, { identity }).end('try GET /books-bought or /buy-a-book/new\n');
      return;
    }
    // Drain any body so keep-alive connections stay usable.
    req.resume();
    answer(res, path);
  });
  const port = await listenOnLoopback(server, opts.port);

  return {
    url: `http://${LOOPBACK}:${port}`,
    port,
    version,
    set(change) {
      behaviour = checked(version, { ...behaviour, ...change });
      // A fresh carry makes the new rate exact from this request on, whatever the old one left.
      errorCarry = 0;
    },
    stats: () => ({
      version,
      requests,
      errors,
      booksBought,
      byCode: { ...byCode },
      errorRate: behaviour.errorRate,
      latencyMs: behaviour.latencyMs,
    }),
    close: () =>
      new Promise<void>((resolve, reject) => {
        for (const timer of pending) clearTimeout(timer);
        pending.clear();
        // Load generators keep connections alive; close() alone would wait for them.
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}

function checked(version: string, b: BookstoreBehaviour): BookstoreBehaviour {
  if (!(b.errorRate >= 0 && b.errorRate <= 1)) {
    throw new RangeError(`bookstore-${version}: errorRate ${b.errorRate} must be a fraction in 0..1`);
  }
  if (!(Number.isFinite(b.latencyMs) && b.latencyMs >= 0)) {
    throw new RangeError(`bookstore-${version}: latencyMs ${b.latencyMs} must be >= 0`);
  }
  return { errorRate: b.errorRate, latencyMs: b.latencyMs };
}
