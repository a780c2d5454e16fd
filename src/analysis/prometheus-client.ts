// The Prometheus HTTP API's instant query (POST /api/v1/query): one request, a typed answer or a typed error.
// No retries and no verdicts here. An error's message never quotes the server's body: it reaches status.
import type { Agent } from 'node:http';
import { agentFetch, prometheusAgent, type PrometheusFetch } from './prometheus-transport.js';

/** [unix seconds, value]; Prometheus sends values as strings ("0.5", "NaN", "+Inf"). */
export type SamplePair = [number, string];

export interface VectorSample {
  metric: Record<string, string>;
  value: SamplePair;
}

export interface MatrixSeries {
  metric: Record<string, string>;
  values: SamplePair[];
}

/** The `data` of a successful answer. */
export type QueryData =
  | { resultType: 'scalar'; result: SamplePair }
  | { resultType: 'string'; result: SamplePair }
  | { resultType: 'vector'; result: VectorSample[] }
  | { resultType: 'matrix'; result: MatrixSeries[] };

/**
 * unreachable: no connection (refused, DNS, reset, bad address). timeout: no full answer in time.
 * http: a non-2xx answer that is not a query error. bad-response: not the API's JSON shape.
 * query: Prometheus rejected or failed the query itself (errorType bad_data / execution).
 */
export type PrometheusErrorKind = 'unreachable' | 'timeout' | 'http' | 'bad-response' | 'query';

export interface PrometheusError {
  kind: PrometheusErrorKind;
  /**
   * One line for a person: what went wrong and where, in our words only (address, HTTP status,
   * errorType), so it may go into status and Events.
   */
  message: string;
  /** The HTTP status, when there was an answer. */
  status?: number;
  /** Prometheus's own errorType, when it sent one of the API's (PROMETHEUS_ERROR_TYPES). */
  errorType?: PrometheusErrorType;
  /**
   * The start of what the server said (its `error`, or its body), on one line and at most 200
   * characters, for a log line when debugging. Another server's text: never put it into status or Events.
   */
  detail?: string;
}

export type QueryResult =
  { ok: true; data: QueryData; warnings: string[] } | { ok: false; error: PrometheusError };

/** The `outcome` label of perch_prometheus_queries_total. */
export type QueryOutcome = 'success' | PrometheusErrorKind;

export interface PrometheusClientOptions {
  /** Base URL, e.g. http://prometheus.monitoring:9090 (a path prefix is kept). */
  address: string;
  /** Whole-request deadline, body included; default 5000. */
  timeoutMs?: number;
  /** Called once per query with its outcome, so the controller can count them. */
  onOutcome?: (outcome: QueryOutcome) => void;
  /**
   * The connection pool, shared by every client of the same Prometheus (prometheusAgent); default: one
   * of this client's own.
   */
  agent?: Agent;
  /** Injected in tests that need a failure no real socket gives on demand (DNS). */
  fetch?: PrometheusFetch;
}

export interface QueryOptions {
  /** Evaluation time: a Date, unix seconds, or an RFC 3339 string; default: Prometheus's now. */
  time?: Date | number | string;
}

/** The errorTypes of Prometheus's HTTP API (web/api/v1): a fixed vocabulary, so safe to repeat. */
export const PROMETHEUS_ERROR_TYPES = [
  'timeout',
  'canceled',
  'execution',
  'bad_data',
  'internal',
  'unavailable',
  'not_found',
  'not_acceptable',
] as const;
export type PrometheusErrorType = (typeof PROMETHEUS_ERROR_TYPES)[number];

/** Prometheus's errorTypes that mean "this query is wrong", as opposed to "Prometheus is struggling". */
const QUERY_ERROR_TYPES = new Set<string>(['bad_data', 'execution']);

export class PrometheusClient {
  readonly address: string;
  readonly timeoutMs: number;
  private readonly onOutcome: ((outcome: QueryOutcome) => void) | undefined;
  private readonly fetch: PrometheusFetch;

  constructor(opts: PrometheusClientOptions) {
    this.address = opts.address.replace(/\/+$/, '');
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.onOutcome = opts.onOutcome;
    this.fetch = opts.fetch ?? agentFetch(opts.agent ?? prometheusAgent(this.address));
  }

  /** Never throws: every failure comes back as `{ ok: false, error }` with a kind. */
  async query(promql: string, opts: QueryOptions = {}): Promise<QueryResult> {
    const result = await this.send(promql, opts);
    this.onOutcome?.(result.ok ? 'success' : result.error.kind);
    return result;
  }

  private async send(promql: string, opts: QueryOptions): Promise<QueryResult> {
    const url = queryUrl(this.address);
    if (!url) {
      return failure('unreachable', `invalid Prometheus address "${this.address}": want http(s)://host:port`);
    }
    const form = new URLSearchParams({ query: promql });
    if (opts.time !== undefined) form.set('time', formatTime(opts.time));
    // One signal for connect, headers and body: a server that stalls mid-body is a timeout too.
    const signal = AbortSignal.timeout(this.timeoutMs);
    let status: number;
    let body: string;
    try {
      const res = await this.fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: form.toString(),
        signal,
      });
      status = res.status;
      body = await res.text();
    } catch (err) {
      if (signal.aborted) {
        return failure('timeout', `Prometheus at ${this.address} did not answer within ${this.timeoutMs} ms`);
      }
      return failure('unreachable', `Prometheus at ${this.address} is unreachable: ${networkCause(err)}`);
    }
    return status >= 200 && status < 300 ? this.parseSuccess(status, body) : this.parseFailure(status, body);
  }

  private parseSuccess(status: number, body: string): QueryResult {
    const json = parseJson(body);
    if (!isRecord(json)) return this.notTheApi(status, body);
    if (json.status === 'error') return this.apiError('query', status, json);
    if (json.status !== 'success') {
      return failure(
        'bad-response',
        `Prometheus at ${this.address} answered ${status} with a status that is neither "success" nor "error"`,
        { status, detail: excerpt(body) },
      );
    }
    const data = asQueryData(json.data);
    if (!data) {
      return failure(
        'bad-response',
        `Prometheus at ${this.address} answered ${status} with a data field that is not a query result`,
        { status, detail: excerpt(body) },
      );
    }
    const warnings = Array.isArray(json.warnings)
      ? json.warnings.filter((w): w is string => typeof w === 'string')
      : [];
    return { ok: true, data, warnings };
  }

  private parseFailure(status: number, body: string): QueryResult {
    const json = parseJson(body);
    if (isRecord(json) && json.status === 'error') {
      const kind = QUERY_ERROR_TYPES.has(String(json.errorType)) ? 'query' : 'http';
      return this.apiError(kind, status, json);
    }
    // A proxy's error page, a login form, a 404 from something that is not Prometheus: say only the status.
    return failure('http', `HTTP ${status} from ${this.address}`, { status, detail: excerpt(body) });
  }

  /** A 2xx whose body is not the API's JSON object (an HTML login page, a wrong path behind a proxy). */
  private notTheApi(status: number, body: string): QueryResult {
    return failure(
      'bad-response',
      `Prometheus at ${this.address} answered ${status} without the Prometheus API's JSON`,
      { status, detail: excerpt(body) },
    );
  }

  private apiError(kind: 'query' | 'http', status: number, json: Record<string, unknown>): QueryResult {
    const errorType = (PROMETHEUS_ERROR_TYPES as readonly unknown[]).includes(json.errorType)
      ? (json.errorType as PrometheusErrorType)
      : undefined;
    const said = [
      errorType === undefined && typeof json.errorType === 'string' ? `errorType ${json.errorType}` : '',
      typeof json.error === 'string' ? json.error : '',
    ]
      .filter(Boolean)
      .join(': ');
    const why = errorType ? `${errorType}, HTTP ${status}` : `HTTP ${status}`;
    const message =
      kind === 'query'
        ? `Prometheus at ${this.address} rejected the query (${why})`
        : `Prometheus at ${this.address} failed the query (${why})`;
    return failure(kind, message, {
      status,
      ...(errorType ? { errorType } : {}),
      ...(said ? { detail: excerpt(said) } : {}),
    });
  }
}

function failure(
  kind: PrometheusErrorKind,
  message: string,
  extra: Pick<PrometheusError, 'status' | 'errorType' | 'detail'> = {},
): QueryResult {
  return { ok: false, error: { kind, message, ...extra } };
}

/** undefined unless the address is an http(s) URL ("prometheus:9090" parses as a URL of scheme "prometheus:"). */
function queryUrl(address: string): URL | undefined {
  try {
    const url = new URL(`${address}/api/v1/query`);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url : undefined;
  } catch {
    return undefined;
  }
}

function formatTime(time: Date | number | string): string {
  if (time instanceof Date) return String(time.getTime() / 1000);
  return String(time);
}

/**
 * Node gives the socket error itself; fetch hides it in `cause` (sometimes an AggregateError of one per
 * address tried).
 */
function networkCause(err: unknown): string {
  const cause = err instanceof Error && err.cause !== undefined ? err.cause : err;
  if (cause instanceof AggregateError && cause.errors.length > 0) return networkCause(cause.errors[0]);
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    return code && !cause.message.includes(code) ? `${code}: ${cause.message}` : cause.message;
  }
  return String(cause);
}

function parseJson(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    return undefined;
  }
}

function excerpt(body: string): string {
  const line = body.replace(/\s+/g, ' ').trim();
  if (!line) return '(empty body)';
  return line.length > 200 ? `${line.slice(0, 200)}...` : line;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isSamplePair(v: unknown): v is SamplePair {
  return Array.isArray(v) && v.length === 2 && typeof v[0] === 'number' && typeof v[1] === 'string';
}

function isLabels(v: unknown): v is Record<string, string> {
  return isRecord(v) && Object.values(v).every((x) => typeof x === 'string');
}

/** The whole shape is checked once here, so the verdict code can trust every field it reads. */
function asQueryData(v: unknown): QueryData | undefined {
  if (!isRecord(v)) return undefined;
  const { resultType, result } = v;
  switch (resultType) {
    case 'scalar':
    case 'string':
      return isSamplePair(result) ? { resultType, result } : undefined;
    case 'vector':
      return Array.isArray(result) &&
        result.every((s) => isRecord(s) && isLabels(s.metric) && isSamplePair(s.value))
        ? { resultType, result: result as VectorSample[] }
        : undefined;
    case 'matrix':
      return Array.isArray(result) &&
        result.every(
          (s) => isRecord(s) && isLabels(s.metric) && Array.isArray(s.values) && s.values.every(isSamplePair),
        )
        ? { resultType, result: result as MatrixSeries[] }
        : undefined;
    default:
      return undefined;
  }
}
