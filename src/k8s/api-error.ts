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
