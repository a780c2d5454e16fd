// Counting one client's requests in the API server's audit log: by verb and resource, over time
// windows, with reads outside watches apart. Streams the file, so a run of many objects fits.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';

/** The fields of one audit event (audit.k8s.io/v1 Event, JSON lines) a tally reads. */
export interface AuditLine {
  stage: string;
  verb: string;
  userAgent?: string;
  /** RFC 3339 with microseconds, the API server's clock when the request arrived. */
  requestReceivedTimestamp: string;
  objectRef?: { resource?: string; subresource?: string; apiGroup?: string };
  responseStatus?: { code?: number };
}

export const WRITE_VERBS: ReadonlySet<string> = new Set([
  'create',
  'update',
  'patch',
  'delete',
  'deletecollection',
]);
/** GET and LIST that are not a watch (a LIST with watch=true is audited as the verb `watch`). */
export const READ_VERBS: ReadonlySet<string> = new Set(['get', 'list']);

export interface RequestTally {
  total: number;
  writes: number;
  /** GET and LIST outside watches. */
  reads: number;
  watches: number;
  /** Requests answered with a status of 400 or more (a conflict, a not-found GET). */
  failed: number;
  /** "verb resource" → count, e.g. "patch canaries.flagger.app/status", "create events". */
  byVerbResource: Record<string, number>;
  /** The distinct user agents counted, to show whose requests these are. */
  userAgents: string[];
}

/** A time window [from, to) in epoch milliseconds. */
export interface Window {
  name: string;
  from: number;
  to: number;
}

export function emptyTally(): RequestTally {
  return { total: 0, writes: 0, reads: 0, watches: 0, failed: 0, byVerbResource: {}, userAgents: [] };
}

/** "canaries.flagger.app/status", "services", "events.events.k8s.io": the resource as kubectl names it. */
export function resourceOf(e: AuditLine): string {
  const ref = e.objectRef ?? {};
  const resource = ref.apiGroup ? `${ref.resource ?? '?'}.${ref.apiGroup}` : (ref.resource ?? '?');
  return ref.subresource ? `${resource}/${ref.subresource}` : resource;
}

/** One finished request: the stage the API server writes once per request (a watch's ends with it). */
export function isFinished(e: AuditLine): boolean {
  return e.stage === 'ResponseComplete' || e.stage === 'Panic';
}

export function addToTally(t: RequestTally, e: AuditLine): void {
  t.total++;
  if (WRITE_VERBS.has(e.verb)) t.writes++;
  else if (READ_VERBS.has(e.verb)) t.reads++;
  else if (e.verb === 'watch') t.watches++;
  if ((e.responseStatus?.code ?? 0) >= 400) t.failed++;
  const key = `${e.verb} ${resourceOf(e)}`;
  t.byVerbResource[key] = (t.byVerbResource[key] ?? 0) + 1;
  const ua = e.userAgent ?? '';
  if (!t.userAgents.includes(ua)) t.userAgents.push(ua);
}

/**
 * Tallies the finished requests of the clients `fromClient` accepts, into the window each arrived in
 * (by requestReceivedTimestamp; a request in no window is left out).
 */
export function tallyAudit(
  events: Iterable<AuditLine>,
  fromClient: (userAgent: string) => boolean,
  windows: readonly Window[],
): Record<string, RequestTally> {
  const tally = new Tallier(fromClient, windows);
  for (const e of events) tally.add(e);
  return tally.result();
}

/** tallyAudit over an audit log file, read line by line; a line still being written is skipped. */
export async function tallyAuditFile(
  file: string,
  fromClient: (userAgent: string) => boolean,
  windows: readonly Window[],
): Promise<Record<string, RequestTally>> {
  const tally = new Tallier(fromClient, windows);
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  for await (const line of lines) {
    if (line.trim() === '') continue;
    let e: AuditLine;
    try {
      e = JSON.parse(line) as AuditLine;
    } catch {
      continue;
    }
    tally.add(e);
  }
  return tally.result();
}

class Tallier {
  private readonly tallies: Record<string, RequestTally> = {};

  constructor(
    private readonly fromClient: (userAgent: string) => boolean,
    private readonly windows: readonly Window[],
  ) {
    for (const w of windows) this.tallies[w.name] = emptyTally();
  }

  add(e: AuditLine): void {
    if (!isFinished(e) || !this.fromClient(e.userAgent ?? '')) return;
    const at = Date.parse(e.requestReceivedTimestamp);
    for (const w of this.windows) {
      if (at >= w.from && at < w.to) addToTally(this.tallies[w.name]!, e);
    }
  }

  result(): Record<string, RequestTally> {
    return this.tallies;
  }
}

/** client-go's default user agent starts with the program's file name: `flagger/v0.0.0 (linux/amd64) ...`. */
export function userAgentOf(program: string): (userAgent: string) => boolean {
  return (ua) => ua.startsWith(`${program}/`);
}
