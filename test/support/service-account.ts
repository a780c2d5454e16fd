// A kubeconfig that authenticates as a ServiceAccount: the sandbox's server and CA, and a token the API
// server issues through the TokenRequest API, as the kubelet mounts one into a Pod.
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { writeFileSync } from 'node:fs';
import type { ControlPlane } from '../../src/sandbox/control-plane/index.js';

/** `system:serviceaccount:NS:NAME`, the user name the API server (and its audit log) gives it. */
export const serviceAccountUser = (namespace: string, name: string) =>
  `system:serviceaccount:${namespace}:${name}`;

/** Writes to `file` a kubeconfig for the ServiceAccount namespace/name (token valid for an hour). */
export async function writeServiceAccountKubeconfig(
  cp: ControlPlane,
  namespace: string,
  name: string,
  file: string,
): Promise<void> {
  const request = await cp
    .kubeConfig()
    .makeApiClient(CoreV1Api)
    .createNamespacedServiceAccountToken({
      namespace,
      name,
      body: { spec: { audiences: [], expirationSeconds: 3600 } },
    });
  const token = request.status?.token;
  if (!token) throw new Error(`the TokenRequest for ${namespace}/${name} returned no token`);
  const user = serviceAccountUser(namespace, name);
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'sandbox', server: cp.server, caData: Buffer.from(cp.caPem).toString('base64') }],
    users: [{ name: user, token }],
    contexts: [{ name: 'sandbox', cluster: 'sandbox', user }],
    currentContext: 'sandbox',
  });
  writeFileSync(file, kc.exportConfig(), { mode: 0o600 });
}
