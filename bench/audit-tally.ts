// The benchmarks' reading of the API server's audit log: one client's requests counted once each, by verb and
// resource, in named time windows, with reads outside watches apart. Streams the file, so a long run fits.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { auditLogFiles } from '../src/sandbox/control-plane/kube-apiserver.js';

/** One audit event, the fields the benchmarks read (audit.k8s.io/v1 Event, JSON lines). */
export interface AuditEvent {
  stage: string;
  verb: string;
  userAgent?: string;
  user?: { username?: string };
  /** RFC 3339 with microseconds, the API server's clock when the request arrived. */
  requestReceivedTimestamp: string;
  objectRef?: {
    resource?: string;
    subresource?: string;
    apiGroup?: string;
    namespace?: string;
    name?: string;
  };
  responseStatus?: { code?: number };
  /** The request body, where the audit policy keeps it (writes to routing objects). */
  requestObject?: unknown;
}

/** Milliseconds since the epoch, keeping the microseconds an audit timestamp carries. */
export function auditTime(timestamp: string): number {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(timestamp);
  if (!m) return NaN;
  const whole = Date.parse(`${m[1]}${m[3]}`);
  const fraction = m[2] ? Number(`0.${m[2]}`) * 1000 : 0;
  return whole + fraction;
}

const WRITES: ReadonlySet<string> = new Set(['create', 'update', 'patch', 'delete', 'deletecollection']);
const READS: ReadonlySet<string> = new Set(['get', 'list']);

export const isWrite = (verb: string): boolean => WRITES.has(verb);
/** A GET or LIST that is not a watch (a LIST with watch=true is audited as the verb `watch`). */
export const isRead = (verb: string): boolean => READS.has(verb);

/**
 * "patch rollouts/status", "create events": the verb and the resource with its subresource. The API group
 * is left out so that two controllers' writes of the same kind (core or events.k8s.io Events) share a row.
 */
export function requestKey(e: AuditEvent): string {
  const resource = e.objectRef?.resource ?? 'nonresource';
  return `${e.verb} ${e.objectRef?.subresource ? `${resource}/${e.objectRef.subresource}` : resource}`;
}

/**
 * One request, once: a watch when it starts (ResponseStarted; its ResponseComplete comes only when the
 * stream ends, maybe after the window or never), anything else when it completes or panics.
 */
export function isCountedStage(e: AuditEvent): boolean {
  if (e.verb === 'watch') return e.stage === 'ResponseStarted';
  return e.stage === 'ResponseComplete' || e.stage === 'Panic';
}

/** Half-open [from, to) in epoch milliseconds. */
export interface Window {
  from: number;
  to: number;
}

export interface RequestTally {
  total: number;
  writes: number;
  /** GETs and LISTs, watches not included. */
  reads: number;
  watches: number;
  /** Requests answered with a status of 400 or more (a conflict, a not-found GET). */
  failed: number;
  /** requestKey() → count, every verb. A plain record, so a tally survives JSON between processes. */
  byVerbResource: Record<string, number>;
  /** The distinct user agents counted, to show whose requests these are. */
  userAgents: string[];
}

export const emptyTally = (): RequestTally => ({
  total: 0,
  writes: 0,
  reads: 0,
  watches: 0,
  failed: 0,
  byVerbResource: {},
  userAgents: [],
});

export function addToTally(t: RequestTally, e: AuditEvent): void {
  t.total++;
  if (isWrite(e.verb)) t.writes++;
  else if (isRead(e.verb)) t.reads++;
  else if (e.verb === 'watch') t.watches++;
  if ((e.responseStatus?.code ?? 0) >= 400) t.failed++;
  const key = requestKey(e);
  t.byVerbResource[key] = (t.byVerbResource[key] ?? 0) + 1;
  const ua = e.userAgent ?? '';
  if (!t.userAgents.includes(ua)) t.userAgents.push(ua);
}

/** Whose requests a tally counts. */
export type ClientFilter = (e: AuditEvent) => boolean;

/**
 * A program by the first word of its user agent: client-go's default starts with the program's file name
 * (`flagger/v0.0.0 (linux/amd64) ...`), Perch's controller sends `perch-controller/<version> ...`.
 */
export function userAgentOf(program: string): ClientFilter {
  return (e) => (e.userAgent ?? '').startsWith(`${program}/`);
}

/** One client's requests, each counted once into every window it arrived in (by requestReceivedTimestamp). */
export class AuditTally<W extends string> {
  readonly windows: Record<W, RequestTally>;
  /** The client's requests seen at all, whatever their time: zero means the filter matched nothing. */
  clientEvents = 0;

  constructor(
    private readonly isClient: ClientFilter,
    private readonly bounds: Record<W, Window>,
  ) {
    this.windows = Object.fromEntries(Object.keys(bounds).map((w) => [w, emptyTally()])) as Record<
      W,
      RequestTally
    >;
  }

  add(e: AuditEvent): void {
    if (!isCountedStage(e) || !this.isClient(e)) return;
    this.clientEvents++;
    const at = auditTime(e.requestReceivedTimestamp);
    for (const w of Object.keys(this.bounds) as W[]) {
      const { from, to } = this.bounds[w];
      if (at >= from && at < to) addToTally(this.windows[w], e);
    }
  }
}

/** The tallies of `events` by window. */
export function tallyAudit<W extends string>(
  events: Iterable<AuditEvent>,
  isClient: ClientFilter,
  windows: Record<W, Window>,
): Record<W, RequestTally> {
  const tally = new AuditTally(isClient, windows);
  for (const e of events) tally.add(e);
  return tally.windows;
}

/**
 * Feeds every complete JSON line of an audit log, its rotated backups first, to `onEvent`, streaming (the
 * log may be gigabytes); a line cut short (still being written, or the API server stopped mid-line) is
 * skipped. Returns the events read.
 */
export async function readAuditLog(file: string, onEvent: (e: AuditEvent) => void): Promise<number> {
  let count = 0;
  for (const part of auditLogFiles(file)) {
    const lines = createInterface({ input: createReadStream(part, 'utf8'), crlfDelay: Infinity });
    for await (const line of lines) {
      if (line.trim() === '') continue;
      let e: AuditEvent;
      try {
        e = JSON.parse(line) as AuditEvent;
      } catch {
        continue;
      }
      onEvent(e);
      count++;
    }
  }
  return count;
}

/** tallyAudit over an audit log file. */
export async function tallyAuditFile<W extends string>(
  file: string,
  isClient: ClientFilter,
  windows: Record<W, Window>,
): Promise<Record<W, RequestTally>> {
  const tally = new AuditTally(isClient, windows);
  await readAuditLog(file, (e) => tally.add(e));
  return tally.windows;
}
