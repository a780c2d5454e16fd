// kube-controller-manager for the sandbox: only the garbage collector and namespace controllers,
// so ownerReferences, finalizers and namespace deletion behave as in a cluster.
import { join } from 'node:path';
import { startChild, type Child } from '../child-process.js';
import { writeKubeconfig } from './kubeconfig.js';
import type { SandboxUser } from './credentials.js';

export const SANDBOX_CONTROLLERS = ['garbage-collector-controller', 'namespace-controller'];

export function startControllerManager(
  binary: string,
  dir: string,
  server: string,
  caPem: string,
  user: SandboxUser,
): Child {
  const kubeconfig = writeKubeconfig(join(dir, 'kube-controller-manager.kubeconfig'), {
    server,
    caPem,
    token: user.token,
    user: user.name,
  });
  return startChild({
    name: 'kube-controller-manager',
    command: binary,
    args: [
      `--kubeconfig=${kubeconfig}`,
      `--controllers=${SANDBOX_CONTROLLERS.join(',')}`,
      '--leader-elect=false',
      // No serving port: nothing here scrapes it, and it would need its own certificates.
      '--secure-port=0',
      '--use-service-account-credentials=false',
      '--v=1',
    ],
    logFile: join(dir, 'kube-controller-manager.log'),
  });
}
