// The scale benchmark's reading of the API server's audit log: one client's requests counted by verb and
// resource in time windows, and the time each TrafficSplit was written back to its stable Service alone.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';

/** One audit event, the fields the benchmark reads (audit.k8s.io/v1 Event, JSON lines). */
export interface AuditEvent {
  stage: string;
  verb: string;
  userAgent?: string;
  user?: { username?: string };
  /** RFC 3339 with microseconds, the API server's clock. */
  requestReceivedTimestamp: string;
  objectRef?: { resource?: string; subresource?: string; namespace?: string; name?: string };
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

const WRITES = new Set(['create', 'update', 'patch', 'delete', 'deletecollection']);
const READS = new Set(['get', 'list']);

export const isWrite = (verb: string): boolean => WRITES.has(verb);
/** A GET or LIST that is not a watch: what a controller with complete watch caches never sends. */
export const isRead = (verb: string): boolean => READS.has(verb);

/** "patch rollouts/status", "create events": the verb and the resource with its subresource. */
export function requestKey(e: AuditEvent): string {
  const resource = e.objectRef?.resource ?? 'nonresource';
  return `${e.verb} ${e.objectRef?.subresource ? `${resource}/${e.objectRef.subresource}` : resource}`;
}

/**
 * One request, once: a watch when it starts (ResponseStarted; its ResponseComplete comes when the stream
 * ends), anything else when it completes.
 */
export function isCountedStage(e: AuditEvent): boolean {
  return e.verb === 'watch' ? e.stage === 'ResponseStarted' : e.stage === 'ResponseComplete';
}

/** Half-open [from, to) in epoch milliseconds. */
export interface Window {
  from: number;
  to: number;
}

export interface Tally {
  /** Requests by requestKey(), every verb. */
  byKey: Map<string, number>;
  writes: number;
  /** GETs and LISTs, watches not included. */
  reads: number;
  watches: number;
  total: number;
}

export const emptyTally = (): Tally => ({ byKey: new Map(), writes: 0, reads: 0, watches: 0, total: 0 });

export function addToTally(t: Tally, e: AuditEvent): void {
  const key = requestKey(e);
  t.byKey.set(key, (t.byKey.get(key) ?? 0) + 1);
  t.total++;
  if (isWrite(e.verb)) t.writes++;
  else if (isRead(e.verb)) t.reads++;
  else if (e.verb === 'watch') t.watches++;
}

/** Whether a body routes all traffic to `stable`: a `backends` array (anywhere in it) of that Service alone at 100. */
export function routesStableAlone(body: unknown, stable: string): boolean {
  const found = findBackends(body);
  if (!found || found.length !== 1) return false;
  const only = found[0] as { service?: unknown; weight?: unknown } | null;
  return only?.service === stable && Number(only.weight) === 100;
}

/** The first `backends` array in a merge patch, an update's object or a JSON patch's values. */
function findBackends(v: unknown): unknown[] | undefined {
  if (Array.isArray(v)) {
    for (const item of v) {
      const inner = findBackends(item);
      if (inner) return inner;
    }
    return undefined;
  }
  if (v === null || typeof v !== 'object') return undefined;
  const o = v as Record<string, unknown>;
  if (Array.isArray(o.backends)) return o.backends;
  // A JSON patch operation on /spec/backends carries the array as its value.
  if (typeof o.path === 'string' && /\/backends$/.test(o.path) && Array.isArray(o.value)) return o.value;
  for (const value of Object.values(o)) {
    const inner = findBackends(value);
    if (inner) return inner;
  }
  return undefined;
}

export interface AuditSummaryOptions {
  /** Whose requests are counted (the controller's). */
  isClient(e: AuditEvent): boolean;
  run: Window;
  idle: Window;
  /** TrafficSplit name to its stable Service, for the rollback writes. */
  stableOf(split: string): string | undefined;
}

/** Everything the benchmark takes from one pass over the audit log. */
export class AuditSummary {
  readonly run = emptyTally();
  readonly idle = emptyTally();
  /** Per TrafficSplit, the receive times of the client's writes (not creates) routing the stable Service alone. */
  readonly stableAloneWrites = new Map<string, number[]>();
  /** Client events seen at all, whatever their time: zero means the filter matched nothing. */
  clientEvents = 0;

  constructor(private readonly opts: AuditSummaryOptions) {}

  add(e: AuditEvent): void {
    if (!isCountedStage(e) || !this.opts.isClient(e)) return;
    this.clientEvents++;
    const at = auditTime(e.requestReceivedTimestamp);
    if (at >= this.opts.run.from && at < this.opts.run.to) addToTally(this.run, e);
    if (at >= this.opts.idle.from && at < this.opts.idle.to) addToTally(this.idle, e);
    const name = e.objectRef?.name;
    if (e.objectRef?.resource === 'trafficsplits' && name && (e.verb === 'patch' || e.verb === 'update')) {
      const stable = this.opts.stableOf(name);
      const code = e.responseStatus?.code ?? 0;
      if (stable && code >= 200 && code < 300 && routesStableAlone(e.requestObject, stable)) {
        const list = this.stableAloneWrites.get(name) ?? [];
        list.push(at);
        this.stableAloneWrites.set(name, list);
      }
    }
  }

  /** The first stable-alone write of `split` at or after `since`, or undefined. */
  rollbackWriteAfter(split: string, since: number): number | undefined {
    return (this.stableAloneWrites.get(split) ?? []).filter((t) => t >= since).sort((a, b) => a - b)[0];
  }
}

/** Feeds every complete JSON line of an audit log to `summary`, streaming (the log may be gigabytes). */
export async function readAuditLog(file: string, summary: AuditSummary): Promise<number> {
  const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
  let count = 0;
  for await (const line of lines) {
    if (line.trim() === '') continue;
    try {
      summary.add(JSON.parse(line) as AuditEvent);
      count++;
    } catch {
      // A line cut short when the API server stopped.
    }
  }
  return count;
}
