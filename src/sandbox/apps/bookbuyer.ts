// The demo's load generator, OSM's bookbuyer: a steady rate of requests to one URL, with a Host header
// and `x-source-name` so a mesh can route and label them, counting the answers by status code.
import { Agent, request } from 'node:http';

/** The pacer's clock and timers; injectable so a unit test can step time. */
export interface PacerClock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemPacerClock: PacerClock = {
  now: () => performance.now(),
  setTimeout: (callback, ms) => globalThis.setTimeout(callback, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as Parameters<typeof clearTimeout>[0]),
};

export interface BookbuyerRequest {
  url: string;
  host: string | undefined;
  headers: Record<string, string>;
  timeoutMs: number;
}

/** Sends one request; resolves with its status code, rejects on a network error or timeout. */
export type Sender = (req: BookbuyerRequest) => Promise<number>;

export interface BookbuyerOptions {
  /** Full URL, e.g. http://127.0.0.1:PORT/books-bought (the mesh's listener, or a bookstore itself). */
  url: string;
  /** Requests per second; 0 sends nothing until set({ rps }). */
  rps: number;
  /** The Host header, e.g. "bookstore.bookstore" so the mesh picks the root service; default the URL's. */
  host?: string;
  /** The x-source-name header; default "bookbuyer". */
  sourceName?: string;
  /** Extra headers on every request. */
  headers?: Record<string, string>;
  /** Requests in flight at most; a request due while this many are outstanding is dropped. Default 64. */
  maxInFlight?: number;
  /** A request unanswered this long counts as a timeout. Default 5000. */
  timeoutMs?: number;
  clock?: PacerClock;
  /** How requests go out; default node:http with keep-alive. Tests pass a fake. */
  send?: Sender;
}

export interface BookbuyerStats {
  /** Requests sent. */
  sent: number;
  /** Requests answered, by status code ("200", "500", ...). */
  byCode: Record<string, number>;
  /** Requests that got no answer: network errors and timeouts. */
  failed: number;
  /** Requests due while maxInFlight were outstanding, and so never sent. */
  dropped: number;
  inFlight: number;
}

export interface Bookbuyer {
  stats(): BookbuyerStats;
  /** Changes the rate from now on; the schedule restarts at this moment. */
  set(change: { rps: number }): void;
  /** Stops sending, waits for the requests in flight (each bounded by timeoutMs), and returns the stats. */
  stop(): Promise<BookbuyerStats>;
}

/**
 * Open-loop pacing: request k of an epoch is due at epochStart + k × 1000/rps, whatever earlier
 * requests are doing, so slow answers do not lower the rate (a closed loop would hide latency from
 * the metrics). One timer at a time, set for the next due request; a late timer sends every request
 * that came due meanwhile, and concurrency is capped by maxInFlight, so nothing grows without bound.
 */
export function startBookbuyer(opts: BookbuyerOptions): Bookbuyer {
  const clock = opts.clock ?? systemPacerClock;
  const maxInFlight = opts.maxInFlight ?? 64;
  const timeoutMs = opts.timeoutMs ?? 5000;
  const agent = opts.send ? undefined : new Agent({ keepAlive: true, maxSockets: maxInFlight });
  const send = opts.send ?? httpSender(agent!);
  const headers = { ...opts.headers, 'x-source-name': opts.sourceName ?? 'bookbuyer' };
  const template: BookbuyerRequest = { url: opts.url, host: opts.host, headers, timeoutMs };

  let rps = checkedRps(opts.rps);
  let epochStart = clock.now();
  /** Requests of this epoch already due and handled (sent or dropped). */
  let handled = 0;
  let timer: unknown;
  let stopped = false;
  const stats: BookbuyerStats = { sent: 0, byCode: {}, failed: 0, dropped: 0, inFlight: 0 };
  const outstanding = new Set<Promise<void>>();

  function fire(): void {
    stats.sent++;
    stats.inFlight++;
    const done: Promise<void> = send(template).then(
      (code) => {
        stats.byCode[code] = (stats.byCode[code] ?? 0) + 1;
      },
      () => {
        stats.failed++;
      },
    );
    const tracked = done.finally(() => {
      stats.inFlight--;
      outstanding.delete(tracked);
    });
    outstanding.add(tracked);
  }

  function tick(): void {
    timer = undefined;
    if (stopped || rps <= 0) return;
    const periodMs = 1000 / rps;
    // +1: request 0 is due at the epoch's start.
    const due = Math.floor((clock.now() - epochStart) / periodMs + 1e-9) + 1;
    for (; handled < due; handled++) {
      if (stats.inFlight < maxInFlight) fire();
      else stats.dropped++;
    }
    const nextAt = epochStart + handled * periodMs;
    timer = clock.setTimeout(tick, Math.max(0, nextAt - clock.now()));
  }

  function restart(): void {
    if (timer !== undefined) clock.clearTimeout(timer);
    timer = undefined;
    epochStart = clock.now();
    handled = 0;
    tick();
  }

  restart();
  return {
    stats: () => ({ ...stats, byCode: { ...stats.byCode } }),
    set(change) {
      rps = checkedRps(change.rps);
      if (!stopped) restart();
    },
    async stop() {
      stopped = true;
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
      await Promise.all([...outstanding]);
      agent?.destroy();
      return { ...stats, byCode: { ...stats.byCode } };
    },
  };
}

function checkedRps(rps: number): number {
  if (!(Number.isFinite(rps) && rps >= 0)) throw new RangeError(`bookbuyer: rps ${rps} must be >= 0`);
  return rps;
}

/** One GET through a keep-alive agent; the body is read and dropped so the socket is reused. */
function httpSender(agent: Agent): Sender {
  return (r) =>
    new Promise<number>((resolve, reject) => {
      const headers: Record<string, string> = { ...r.headers };
      if (r.host) headers.host = r.host;
      const req = request(r.url, { method: 'GET', agent, headers }, (res) => {
        res.resume();
        // 'close' always comes, even when the answer is cut short; complete says which it was.
        res.once('close', () =>
          res.complete ? resolve(res.statusCode ?? 0) : reject(new Error('answer cut short')),
        );
      });
      req.setTimeout(r.timeoutMs, () => req.destroy(new Error(`no answer within ${r.timeoutMs}ms`)));
      req.once('error', reject);
      req.end();
    });
}
