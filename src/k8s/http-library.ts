// How the controller's API clients send a request: Node's http(s).request on the request's agent, the
// answer read whole. client-node's default goes through node-fetch, whose Headers and streams cost more than the request.
import {
  ResponseContext,
  wrapHttpLibrary,
  type HttpLibrary,
  type RequestContext,
} from '@kubernetes/client-node';
import { request as httpRequest, type Agent, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';

/** Header values as client-node's parsers read them: one string per lower-case name. */
function flat(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers))
    if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

/**
 * Sends `req` and resolves with the whole answer. No Accept-Encoding is sent, so the API server answers
 * uncompressed. Errors are Node's: an abort (the request timeout) is an AbortError, a refused or reset
 * connection an Error with a code, neither with an HTTP status (apiError calls both transient).
 */
export function sendRequest(req: RequestContext): Promise<ResponseContext> {
  return new Promise((resolve, reject) => {
    const url = new URL(req.getUrl());
    const body = req.getBody() as unknown;
    if (body !== undefined && typeof body !== 'string' && !Buffer.isBuffer(body)) {
      reject(
        new Error(`${req.getHttpMethod()} ${url.pathname}: a request body must be a string or a Buffer`),
      );
      return;
    }
    const headers: Record<string, string | number> = { ...req.getHeaders() };
    if (body !== undefined) headers['Content-Length'] = Buffer.byteLength(body);
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const r = send(
      url,
      {
        method: req.getHttpMethod().toString(),
        headers,
        agent: req.getAgent() as Agent | undefined,
        signal: req.getSignal(),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const all = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
          resolve(
            new ResponseContext(res.statusCode ?? 0, flat(res.headers), {
              text: () => Promise.resolve(all.toString('utf8')),
              binary: () => Promise.resolve(all),
            }),
          );
        });
      },
    );
    r.on('error', reject);
    r.end(body);
  });
}

export const nodeHttpLibrary: HttpLibrary = wrapHttpLibrary({ send: sendRequest });
