// Counts every request to the API server by verb, resource and response code, for perch_kube_requests_total.
// client-node has no hook that sees both request and response; Node's http diagnostics channel does.
import diagnostics from 'node:diagnostics_channel';
import type { ClientRequest, IncomingMessage } from 'node:http';

export interface KubeRequest {
  verb: string;
  /** Plural resource, with its subresource: "rollouts", "rollouts/status". */
  resource: string;
}

/** The Kubernetes verb and resource of a request, from its method and path (as in the audit log). */
export function classify(method: string, path: string): KubeRequest {
  const [pathname = '', query = ''] = path.split('?');
  const parts = pathname.split('/').filter(Boolean);
  // A non-resource URL (/version, /readyz) is counted under its path, as the audit log does.
  if (parts[0] !== 'api' && parts[0] !== 'apis') return { verb: method.toLowerCase(), resource: pathname };
  // /api/v1/... or /apis/<group>/<version>/...
  let rest = parts.slice(parts[0] === 'api' ? 2 : 3);
  if (rest[0] === 'namespaces' && rest.length >= 3) rest = rest.slice(2);
  const [res = '', name, sub] = rest;
  const resource = sub ? `${res}/${sub}` : res;
  const watch = /(^|&)watch=(true|1)(&|$)/.test(query);
  const verbs: Record<string, string> = { POST: 'create', PUT: 'update', PATCH: 'patch' };
  const verb =
    method === 'GET'
      ? watch
        ? 'watch'
        : name
          ? 'get'
          : 'list'
      : method === 'DELETE'
        ? name
          ? 'delete'
          : 'deletecollection'
        : (verbs[method] ?? method.toLowerCase());
  return { verb, resource };
}

/** Counts the responses of requests to `server` (its host:port); returns a function that stops counting. */
export function countKubeRequests(
  server: string,
  count: (verb: string, resource: string, code: number) => void,
): () => void {
  const target = new URL(server);
  const port = target.port || (target.protocol === 'https:' ? '443' : '80');
  const channel = diagnostics.channel('http.client.response.finish');
  const onFinish = (message: unknown) => {
    const { request, response } = message as { request: ClientRequest; response: IncomingMessage };
    const [host, p] = [
      request.host,
      String((request as unknown as { socket?: { remotePort?: number } }).socket?.remotePort ?? ''),
    ];
    if (host !== target.hostname || (p && p !== port)) return;
    const { verb, resource } = classify(request.method, request.path);
    count(verb, resource, response.statusCode ?? 0);
  };
  channel.subscribe(onFinish);
  return () => channel.unsubscribe(onFinish);
}
