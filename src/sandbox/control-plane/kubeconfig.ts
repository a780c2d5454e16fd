// Kubeconfig files for the sandbox: the server, its CA and a bearer token, so kubectl needs no flags.
import { dumpYaml, loadYaml } from '@kubernetes/client-node';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

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
  let context: unknown;
  try {
    context = (loadYaml(readFileSync(file, 'utf8')) as { 'current-context'?: unknown } | null)?.[
      'current-context'
    ];
  } catch {
    context = undefined;
  }
  if (context !== CONTEXT) {
    throw new Error(
      `--kubeconfig ${file}: the file exists and is not a Perch sandbox kubeconfig (its current-context is not "${CONTEXT}"); ` +
        'refusing to overwrite it. Give a new path, e.g. --kubeconfig /tmp/perch.kubeconfig',
    );
  }
}

/** Whether `file` still is a sandbox kubeconfig, so it is safe to remove. */
export function isSandboxKubeconfig(file: string): boolean {
  try {
    assertSandboxKubeconfigPath(file);
    return existsSync(file);
  } catch {
    return false;
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
