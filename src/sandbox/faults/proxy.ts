// A seeded fault-injecting reverse proxy in front of kube-apiserver (`perch sandbox --faults`).
// It answers a seeded share of requests with 500/429/409, adds latency, cuts watches; the rest passes byte for byte.
import {
  createServer as createHttpServer,
  request as httpRequest,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { Agent, createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { connect as netConnect } from 'node:net';
import { listenOnLoopback, LOOPBACK } from '../free-port.js';
import { NO_FAULTS, seededUnit, type FaultSpec } from './spec.js';

export { parseFaultSpec, NO_FAULTS, type FaultSpec } from './spec.js';

export type Fault = 'none' | '500' | '429' | '409';

export interface FaultRecord {
  index: number;
  method: string;
  path: string;
  fault: Fault;
  latencyMs: number;
  watch: boolean;
  /** When the request arrived, on this process's monotonic clock (performance.now(), ms). */
  at: number;
}

export interface FaultProxyOptions {
  /** The API server's URL (https, or http for a plain upstream). */
  target: string;
  /** CA that signed the upstream's certificate. */
  caPem?: string;
  /** Serve TLS with this key pair (the API server's own, so clients keep one CA); plain HTTP without. */
  certPem?: string;
  keyPem?: string;
  spec?: FaultSpec;
  port?: number;
  /** How many records to keep (oldest dropped). */
  recordLimit?: number;
}

export interface FaultProxy {
  url: string;
  /** The spec in force: a field changed here changes the faults of the requests that follow. */
  spec: FaultSpec;
  /** What happened to each request, in arrival order. */
  records(): FaultRecord[];
  /** Cuts every open watch stream now (tests use it to force a reconnect at a chosen moment). */
  cutWatches(): number;
  /** How many watch streams are open now. */
  openWatchCount(): number;
  /** How many client connections (TLS sessions, when serving TLS) were accepted so far. */
  connectionCount(): number;
  /** Emits 'watch' (FaultRecord) when a watch stream has been forwarded upstream, so it can be cut. */
  events: EventEmitter;
  /**
   * Holds the next request that matches until the test lets it go: the moment between a client's read
   * and its write, made as long as a test needs (a concurrent edit lands in it). Resolves once held.
   */
  holdNext(match: (method: string, path: string) => boolean): Promise<HeldRequest>;
  close(): Promise<void>;
}

export interface HeldRequest {
  record: FaultRecord;
  /** Forwards the request; resolves with the upstream's status code. */
  release(): Promise<number>;
}

const WRITE_VERBS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export function isWatch(req: IncomingMessage): boolean {
  const url = new URL(req.url ?? '/', 'http://x');
  const w = url.searchParams.get('watch');
  return w === 'true' || w === '1' || url.pathname.includes('/watch/');
}

/** The fault for request `index`: draw 0 picks the kind, so a spec's fractions hold over many requests. */
export function decideFault(spec: FaultSpec, index: number, method: string): Fault {
  const u = seededUnit(spec.seed, index, 0);
  if (u < spec.error500) return '500';
  if (u < spec.error500 + spec.error429) return '429';
  if (u < spec.error500 + spec.error429 + spec.error409) return WRITE_VERBS.has(method) ? '409' : 'none';
  return 'none';
}

function statusBody(code: number, reason: string, message: string, details?: object): string {
  return JSON.stringify({
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    ...(details && { details }),
    code,
  });
}

const FAULT_ANSWERS: Record<Exclude<Fault, 'none'>, { code: number; reason: string }> = {
  '500': { code: 500, reason: 'InternalError' },
  '429': { code: 429, reason: 'TooManyRequests' },
  '409': { code: 409, reason: 'Conflict' },
};

export async function startFaultProxy(opts: FaultProxyOptions): Promise<FaultProxy> {
  const spec = { ...(opts.spec ?? NO_FAULTS) }; // its own copy: tests change it live, through FaultProxy.spec
  const target = new URL(opts.target);
  const upstreamTls = target.protocol === 'https:';
  const agent = upstreamTls ? new Agent({ keepAlive: true, ca: opts.caPem }) : undefined;
  const log: FaultRecord[] = [];
  const limit = opts.recordLimit ?? 100_000;
  const openWatches = new Set<{ cut: () => void }>();
  const events = new EventEmitter();
  let next = 0;
  const holds: { match: (method: string, path: string) => boolean; held: (h: HeldRequest) => void }[] = [];

  const forward = (req: IncomingMessage, res: ServerResponse, record: FaultRecord) => {
    const watch = record.watch;
    const send = upstreamTls ? httpsRequest : httpRequest;
    const upstream = send({
      protocol: target.protocol,
      hostname: target.hostname,
      port: target.port,
      method: req.method,
      path: req.url,
      headers: { ...req.headers, host: target.host },
      agent,
    });
    let entry: { cut: () => void } | undefined;
    let timer: NodeJS.Timeout | undefined;
    if (watch) {
      entry = {
        cut: () => {
          upstream.destroy();
          res.socket?.destroy();
        },
      };
      openWatches.add(entry);
      if (spec.watchCutSeconds > 0) timer = setTimeout(entry.cut, spec.watchCutSeconds * 1000);
      events.emit('watch', record);
    }
    const done = () => {
      if (timer) clearTimeout(timer);
      if (entry) openWatches.delete(entry);
    };
    res.once('close', () => {
      done();
      upstream.destroy();
    });
    upstream.once('response', (up) => {
      events.emit('response', record, up.statusCode ?? 502);
      res.writeHead(up.statusCode ?? 502, up.statusMessage, up.rawHeaders);
      if (watch) res.flushHeaders();
      up.pipe(res);
    });
    upstream.once('error', (err) => {
      done();
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'application/json' });
        res.end(statusBody(502, 'ServiceUnavailable', `perch fault proxy: upstream: ${err.message}`));
      } else res.destroy();
    });
    req.pipe(upstream);
  };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const index = next++;
    const method = req.method ?? 'GET';
    const watch = isWatch(req);
    const fault = decideFault(spec, index, method);
    const latencyMs = spec.latencyMs + Math.floor(seededUnit(spec.seed, index, 1) * spec.jitterMs);
    const record: FaultRecord = {
      index,
      method,
      path: req.url ?? '/',
      fault,
      latencyMs,
      watch,
      at: performance.now(),
    };
    log.push(record);
    if (log.length > limit) log.shift();
    const act = () => {
      if (fault === 'none') return forward(req, res, record);
      const { code, reason } = FAULT_ANSWERS[fault];
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (fault === '429') headers['retry-after'] = String(spec.retryAfterSeconds);
      req.resume();
      events.emit('response', record, code);
      res.writeHead(code, headers);
      res.end(
        statusBody(
          code,
          reason,
          `perch fault proxy: injected ${code} (seed ${spec.seed}, request ${index})`,
          // As kube-apiserver's own 429s: the wait in the body's details as well as in Retry-After.
          fault === '429' ? { retryAfterSeconds: spec.retryAfterSeconds } : undefined,
        ),
      );
    };
    const hold = holds.findIndex((h) => h.match(method, record.path));
    if (hold >= 0) {
      const [h] = holds.splice(hold, 1);
      h!.held({
        record,
        release: () =>
          new Promise<number>((resolve) => {
            const answered = (r: FaultRecord, code: number) => {
              if (r !== record) return;
              events.off('response', answered);
              resolve(code);
            };
            events.on('response', answered);
            act();
          }),
      });
      return;
    }
    if (latencyMs > 0) setTimeout(act, latencyMs);
    else act();
  };

  const server =
    opts.certPem && opts.keyPem
      ? createHttpsServer({ cert: opts.certPem, key: opts.keyPem }, handle)
      : createHttpServer(handle);

  // Upgrades (exec, port-forward, websocket watches) are tunnelled as raw bytes.
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const port = Number(target.port) || (upstreamTls ? 443 : 80);
    const up = upstreamTls
      ? tlsConnect({ host: target.hostname, port, ca: opts.caPem, servername: undefined })
      : netConnect({ host: target.hostname, port });
    up.once(upstreamTls ? 'secureConnect' : 'connect', () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        const name = req.rawHeaders[i] ?? '';
        lines.push(`${name}: ${name.toLowerCase() === 'host' ? target.host : req.rawHeaders[i + 1]}`);
      }
      up.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length) up.write(head);
      up.pipe(socket).pipe(up);
    });
    const close = () => {
      up.destroy();
      socket.destroy();
    };
    up.once('error', close);
    socket.once('error', close);
  });

  const sockets = new Set<Socket>();
  const tls = Boolean(opts.certPem && opts.keyPem);
  let connections = 0;
  server.on('connection', (s: Socket) => {
    if (!tls) connections++;
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.on('secureConnection', (s: Socket) => {
    connections++;
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });

  const port = await listenOnLoopback(server, opts.port);
  const scheme = opts.certPem ? 'https' : 'http';

  return {
    url: `${scheme}://${LOOPBACK}:${port}`,
    spec,
    records: () => [...log],
    events,
    openWatchCount: () => openWatches.size,
    connectionCount: () => connections,
    holdNext: (match) => new Promise<HeldRequest>((held) => holds.push({ match, held })),
    cutWatches() {
      const n = openWatches.size;
      for (const w of [...openWatches]) w.cut();
      return n;
    },
    async close() {
      for (const w of [...openWatches]) w.cut();
      for (const s of sockets) s.destroy();
      agent?.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
