// The writes to a routing object that reached kube-apiserver, read from its audit log (whose policy keeps
// the request body of route writes), and whether each carried SPEC §3's precondition.
import { readAuditLog } from './control-plane.js';
import { resourceOf, ROUTERS, type RouterKind } from './route-under-test.js';

export interface RouteWrite {
  router: RouterKind;
  name: string;
  verb: string;
  code: number | undefined;
  userAgent: string;
  at: string;
  /** The request body as audited: the object (create, update), or the patch as sent. */
  body: unknown;
}

const WRITES = new Set(['create', 'update', 'patch']);

/** Writes to the routing objects of `ns` (not their status) the API server answered, in the order received. */
export function routeWrites(auditLog: string, ns: string): RouteWrite[] {
  const routers = new Map(ROUTERS.map((r) => [resourceOf(r).plural, r]));
  const out: RouteWrite[] = [];
  for (const e of readAuditLog(auditLog)) {
    const ref = e.objectRef ?? {};
    const router = routers.get(ref.resource ?? '');
    if (!router || e.stage !== 'ResponseComplete' || !WRITES.has(e.verb)) continue;
    if (ref.subresource !== undefined || ref.namespace !== ns || !ref.name) continue;
    out.push({
      router,
      name: ref.name,
      verb: e.verb,
      code: e.responseStatus?.code,
      userAgent: e.userAgent ?? '',
      at: e.requestReceivedTimestamp,
      body: e.requestObject,
    });
  }
  return out;
}

interface PatchOp {
  op?: unknown;
  path?: unknown;
}

/** The rule a JSON Pointer lies under (`/spec/rules/2/...` → 2), if any. */
const ruleOf = (path: unknown) =>
  typeof path === 'string' ? /^\/spec\/rules\/(\d+)(\/|$)/.exec(path)?.[1] : undefined;

/**
 * Why a write could overwrite a change it has not seen (SPEC §3), undefined when it could not: a create
 * needs nothing (the name is its precondition), a JSON Patch must open with a `test` and pin every rule it
 * changes with a `test` under that rule first, any other patch or update must carry a resourceVersion.
 */
export function unguardedWrite(w: RouteWrite): string | undefined {
  if (w.verb === 'create') return undefined;
  if (w.body === undefined || w.body === null)
    return 'the audit log holds no request body (is the policy at Request level for routing objects?)';
  if (Array.isArray(w.body)) {
    const ops = w.body as PatchOp[];
    if (ops[0]?.op !== 'test')
      return `a JSON Patch that does not open with a test: ${JSON.stringify(ops).slice(0, 300)}`;
    const pinned = new Set<string>();
    for (const op of ops) {
      const rule = ruleOf(op.path);
      if (op.op === 'test') {
        if (rule !== undefined) pinned.add(rule);
      } else if (rule !== undefined && !pinned.has(rule))
        return `a JSON Patch that changes rule ${rule} without a test of it first: ${JSON.stringify(op)}`;
    }
    return undefined;
  }
  const rv = (w.body as { metadata?: { resourceVersion?: unknown } }).metadata?.resourceVersion;
  if (typeof rv === 'string' && rv !== '') return undefined;
  return `a ${w.verb} without a resourceVersion: ${JSON.stringify(w.body).slice(0, 300)}`;
}
