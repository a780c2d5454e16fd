// kube-apiserver for the sandbox: RBAC on, anonymous refused, static bearer tokens, loopback only.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { basename, dirname, extname, join } from 'node:path';
import { startChild, untilReady, type Child } from '../child-process.js';
import { LOOPBACK } from '../free-port.js';
import { waitFor } from '../wait.js';
import type { Credentials } from './credentials.js';

export interface ApiServerConfig {
  binary: string;
  dir: string;
  port: number;
  etcdUrl: string;
  credentials: Credentials;
  auditLog?: string;
}

// Writes to routing objects keep their request body, so a test can see each carried its precondition.
const AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Request
    verbs: ["create", "update", "patch"]
    resources:
      - group: split.smi-spec.io
        resources: ["trafficsplits"]
      - group: gateway.networking.k8s.io
        resources: ["httproutes"]
  - level: Metadata
`;

function args(c: ApiServerConfig): string[] {
  const a = [
    `--etcd-servers=${c.etcdUrl}`,
    `--bind-address=${LOOPBACK}`,
    `--advertise-address=${LOOPBACK}`,
    `--secure-port=${c.port}`,
    // With no --tls-cert-file it writes a self-signed CA and serving certificate here (for 127.0.0.1),
    // and reuses them after a restart, so the kubeconfig's CA stays valid.
    `--cert-dir=${join(c.dir, 'pki')}`,
    // A /15 (131,070 addresses) so a benchmark's 100,000 Services (SPEC §6) fit; the /24 before was full at
    // about 250. Not larger: every Service create rewrites the range's allocation bitmap in etcd (a /12's
    // 128 KiB, twice, about 300 KiB per create), and 30,000 Services filled etcd's quota; a /15's is 16 KiB.
    '--service-cluster-ip-range=10.0.0.0/15',
    '--authorization-mode=RBAC',
    '--anonymous-auth=false',
    `--token-auth-file=${c.credentials.tokenFile}`,
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${c.credentials.serviceAccountPub}`,
    `--service-account-signing-key-file=${c.credentials.serviceAccountKey}`,
    // No service-account token controller runs, so the admission plugin would refuse every Pod.
    '--disable-admission-plugins=ServiceAccount',
    // As OpenShift runs it: setting blockOwnerDeletion needs the owner's finalizers, so the controller's
    // RBAC (deploy/, charts/perch) is proven here against the strictest cluster it meets.
    '--enable-admission-plugins=OwnerReferencesPermissionEnforcement',
    '--allow-privileged=true',
    '--v=1',
  ];
  if (c.auditLog) {
    const policy = join(c.dir, 'audit-policy.yaml');
    writeFileSync(policy, AUDIT_POLICY);
    a.push(`--audit-policy-file=${policy}`, `--audit-log-path=${c.auditLog}`, '--audit-log-format=json');
    // Rotated at 100 MB all the same: kube-apiserver 1.33 reads a maxsize of 0 as its logger's default
    // (kubernetes#136478, fixed later). A reader of the whole log takes auditLogFiles().
    a.push('--audit-log-mode=blocking', '--audit-log-maxsize=0');
  }
  return a;
}

/**
 * The files of the audit log at `path`, oldest first: the backups its rotation made (`audit-<UTC time>.log`
 * beside `audit.log`, the time sorting as the name does), then `path` itself.
 */
export function auditLogFiles(path: string): string[] {
  const dir = dirname(path);
  const ext = extname(path);
  const stem = basename(path, ext);
  const rotated = new RegExp(
    `^${escapeRegExp(stem)}-\\d{4}-\\d{2}-\\d{2}T\\d{2}-\\d{2}-\\d{2}\\.\\d{3}${escapeRegExp(ext)}$`,
  );
  const backups = existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => rotated.test(f))
        .sort()
    : [];
  return [...backups.map((f) => join(dir, f)), path];
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The CA bundle kube-apiserver wrote for its self-signed serving certificate. */
export function servingCaPath(dir: string): string {
  return join(dir, 'pki', 'apiserver.crt');
}

/** GET a path with the admin token; resolves with the status code and body. */
export function getWithToken(
  url: string,
  caPem: string,
  token: string,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca: caPem, headers: { authorization: `Bearer ${token}` } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.once('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.end();
  });
}

export interface ApiServer {
  child: Child;
  url: string;
  caPem: string;
}

/** Starts kube-apiserver and resolves once /readyz answers ok. */
export async function startApiServer(c: ApiServerConfig): Promise<ApiServer> {
  const child = startChild({
    name: 'kube-apiserver',
    command: c.binary,
    args: args(c),
    logFile: join(c.dir, 'kube-apiserver.log'),
  });
  const url = `https://${LOOPBACK}:${c.port}`;
  const caFile = servingCaPath(c.dir);
  const caPem = await untilReady(
    child,
    waitFor(async () => (existsSync(caFile) ? readFileSync(caFile, 'utf8') : undefined), {
      what: 'kube-apiserver serving certificate',
    }),
  );
  await untilReady(
    child,
    waitFor(
      async () => {
        const r = await getWithToken(`${url}/readyz`, caPem, c.credentials.admin.token);
        return r.status === 200 && r.body.trim() === 'ok' ? true : undefined;
      },
      { what: `kube-apiserver /readyz at ${url}`, timeoutMs: 120_000 },
    ),
  );
  return { child, url, caPem };
}
