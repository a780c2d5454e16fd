// Kubeconfig files for the sandbox: the server, its CA and a bearer token, so kubectl needs no flags.
import { dumpYaml } from '@kubernetes/client-node';
import { writeFileSync } from 'node:fs';

export interface KubeconfigParams {
  server: string;
  caPem: string;
  token: string;
  user: string;
  namespace?: string;
}

export function kubeconfigYaml(p: KubeconfigParams): string {
  return dumpYaml({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      {
        name: 'perch-sandbox',
        cluster: { server: p.server, 'certificate-authority-data': Buffer.from(p.caPem).toString('base64') },
      },
    ],
    users: [{ name: p.user, user: { token: p.token } }],
    contexts: [
      {
        name: 'perch-sandbox',
        context: { cluster: 'perch-sandbox', user: p.user, namespace: p.namespace ?? 'default' },
      },
    ],
    'current-context': 'perch-sandbox',
    preferences: {},
  });
}

export function writeKubeconfig(file: string, p: KubeconfigParams): string {
  writeFileSync(file, kubeconfigYaml(p), { mode: 0o600 });
  return file;
}
