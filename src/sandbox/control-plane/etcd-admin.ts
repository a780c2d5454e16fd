// A few etcd maintenance calls over etcd's own HTTP gateway (/v3/...), for tests that need a
// compacted history: the real way a Kubernetes watch gets "410 Gone".

async function call<T>(etcdUrl: string, path: string, body: object): Promise<T> {
  const res = await fetch(`${etcdUrl}${path}`, { method: 'POST', body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`etcd ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

/** Writes a key outside the Kubernetes prefix (advancing the revision) and returns the new revision. */
export async function advanceRevision(etcdUrl: string, key = '/perch-test/advance'): Promise<number> {
  const r = await call<{ header: { revision: string } }>(etcdUrl, '/v3/kv/put', {
    key: b64(key),
    value: b64(String(Date.now())),
  });
  return Number(r.header.revision);
}

/** Compacts etcd's history up to `revision`: older revisions can no longer be watched from. */
export async function compact(etcdUrl: string, revision: number): Promise<void> {
  await call(etcdUrl, '/v3/kv/compaction', { revision: String(revision), physical: true });
}
