// Kubernetes API errors as values with a kind (DESIGN principle 5), from client-node's ApiException.
// Callers decide on the kind: report invalid input, retry conflicts now, back off on transient errors.

export type ApiErrorKind = 'invalid' | 'notFound' | 'conflict' | 'transient' | 'forbidden' | 'bug';

export interface ApiError {
  kind: ApiErrorKind;
  /** HTTP status, 0 when the request never got an answer. */
  code: number;
  /** The Status reason (`Conflict`, `Invalid`, ...) when the server sent one. */
  reason: string;
  /** The server's own message, or the network error's. */
  message: string;
}

interface StatusBody {
  message?: string;
  reason?: string;
}

function parseBody(body: unknown): StatusBody {
  if (typeof body === 'string') {
    try {
      return JSON.parse(body) as StatusBody;
    } catch {
      return { message: body };
    }
  }
  return (body ?? {}) as StatusBody;
}

function kindOf(code: number): ApiErrorKind {
  if (code === 0 || code === 429 || code >= 500) return 'transient';
  if (code === 409) return 'conflict';
  if (code === 404 || code === 410) return 'notFound';
  if (code === 401 || code === 403) return 'forbidden';
  if (code === 400 || code === 422) return 'invalid';
  return 'bug';
}

export function apiError(err: unknown): ApiError {
  const e = err as { code?: unknown; body?: unknown; message?: string };
  const code = typeof e?.code === 'number' ? e.code : 0;
  if (code === 0) {
    // A request cut by its timeout says only "The user aborted a request": say what happened.
    const name = (err as { name?: unknown })?.name;
    if (name === 'AbortError' || name === 'TimeoutError')
      return {
        kind: 'transient',
        code: 0,
        reason: 'Timeout',
        message: 'no answer within the request timeout',
      };
    return { kind: 'transient', code: 0, reason: 'NetworkError', message: e?.message ?? String(err) };
  }
  const status = parseBody(e.body);
  return {
    kind: kindOf(code),
    code,
    reason: status.reason ?? '',
    message: status.message ?? e.message ?? `HTTP ${code}`,
  };
}

/** An Error whose message is the server's, for places that only report. */
export function describeApiError(err: unknown, doing: string): Error {
  const a = apiError(err);
  return new Error(`${doing}: ${a.code ? `${a.code} ${a.reason}: ` : ''}${a.message}`);
}

/**
 * Whether the server answered 429 Too Many Requests (API Priority and Fairness turning a request away, a
 * watch cache still initializing): the server asking to wait, not a failure. A ListWatch's list answers
 * with an ApiException (`code`), its watch with an Error carrying `statusCode`.
 */
export function isTooManyRequests(err: unknown): boolean {
  const e = err as { code?: unknown; statusCode?: unknown } | undefined;
  return e?.code === 429 || e?.statusCode === 429;
}

/**
 * The wait a 429 asks for, in ms: its Retry-After header (seconds), else the Status body's
 * details.retryAfterSeconds; undefined when the answer names none or is not a 429.
 */
export function retryAfterMs(err: unknown): number | undefined {
  if (!isTooManyRequests(err)) return undefined;
  const e = err as { headers?: Record<string, unknown>; body?: unknown };
  const header = Object.entries(e.headers ?? {}).find(([name]) => name.toLowerCase() === 'retry-after')?.[1];
  const details = (parseBody(e.body) as { details?: { retryAfterSeconds?: unknown } }).details;
  for (const given of [header, details?.retryAfterSeconds]) {
    // Seconds only: an HTTP-date Retry-After, which kube-apiserver never sends, falls through.
    const seconds =
      typeof given === 'number' || (typeof given === 'string' && given.trim() !== '') ? Number(given) : NaN;
    if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  }
  return undefined;
}
