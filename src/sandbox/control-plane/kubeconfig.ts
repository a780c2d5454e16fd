// Kubeconfig files for the sandbox: the server, its CA and a bearer token, so kubectl needs no flags.
import { dumpYaml, loadYaml } from '@kubernetes/client-node';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';

export interface KubeconfigParams {
  server: string;
  caPem: string;
  token: string;
  user: string;
  namespace?: string;
}

const CONTEXT = 'perch-sandbox';

/**
 * Throws unless `file` may be written as a sandbox kubeconfig: it does not exist, or it is one the
 * sandbox wrote before (current-context perch-sandbox). A person's own kubeconfig (~/.kube/config)
 * is never overwritten, nor later removed.
 */
export function assertSandboxKubeconfigPath(file: string): void {
  if (!existsSync(file)) return;
  if (readKubeconfig(file)?.['current-context'] !== CONTEXT) {
    throw new Error(
      `--kubeconfig ${file}: the file exists and is not a Perch sandbox kubeconfig (its current-context is not "${CONTEXT}"); ` +
        'refusing to overwrite it. Give a new path, e.g. --kubeconfig /tmp/perch.kubeconfig',
    );
  }
}

/** The parts of a kubeconfig file read here; undefined when it cannot be read or parsed. */
function readKubeconfig(
  file: string,
): { 'current-context'?: unknown; clusters?: { cluster?: { server?: unknown } }[] } | undefined {
  try {
    return (loadYaml(readFileSync(file, 'utf8')) as ReturnType<typeof readKubeconfig> | null) ?? undefined;
  } catch {
    return undefined;
  }
}

export function kubeconfigYaml(p: KubeconfigParams): string {
  return dumpYaml({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      {
        name: CONTEXT,
        cluster: { server: p.server, 'certificate-authority-data': Buffer.from(p.caPem).toString('base64') },
      },
    ],
    users: [{ name: p.user, user: { token: p.token } }],
    contexts: [
      {
        name: CONTEXT,
        context: { cluster: CONTEXT, user: p.user, namespace: p.namespace ?? 'default' },
      },
    ],
    'current-context': CONTEXT,
    preferences: {},
  });
}

export function writeKubeconfig(file: string, p: KubeconfigParams): string {
  writeFileSync(file, kubeconfigYaml(p), { mode: 0o600 });
  return file;
}

/** Whether something accepts TCP connections at the URL's host and port (within `timeoutMs`). */
function answers(url: string, timeoutMs = 500): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port || 443) });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export interface PublishedKubeconfig {
  /** The path a person should use: `to` when published, else `from`. */
  path: string;
  /** Why `to` was not written, when it was not. */
  skipped?: string;
  /** Removes `to` if it still holds what was published (never another sandbox's, never a person's). */
  unpublish(): void;
}

/**
 * Copies the sandbox's kubeconfig `from` to the well-known path `to`, for people to use, unless `to`
 * is a kubeconfig that is not a sandbox's, or one of a sandbox still running (its server answers):
 * two demos at once must not send each other's kubectl to the wrong API server.
 */
export async function publishKubeconfig(from: string, to: string): Promise<PublishedKubeconfig> {
  const unchanged = { path: from, unpublish: () => {} };
  try {
    assertSandboxKubeconfigPath(to);
  } catch (err) {
    return { ...unchanged, skipped: (err as Error).message };
  }
  // A sandbox kubeconfig (or none): the one cluster the sandbox writes names its server.
  const server = existsSync(to) ? readKubeconfig(to)?.clusters?.[0]?.cluster?.server : undefined;
  if (typeof server === 'string' && (await answers(server))) {
    return { ...unchanged, skipped: `${to} belongs to another sandbox that is still running (${server})` };
  }
  const content = readFileSync(from, 'utf8');
  writeFileSync(to, content, { mode: 0o600 });
  return {
    path: to,
    unpublish: () => {
      try {
        if (readFileSync(to, 'utf8') === content) rmSync(to, { force: true });
      } catch {
        // Already gone.
      }
    },
  };
}
