// A fault proxy in front of the suite's control plane, with a kubeconfig that goes through it.
import { KubeConfig } from '@kubernetes/client-node';
import { join } from 'node:path';
import { servingKeyPair, writeKubeconfig, type ControlPlane } from '../../src/sandbox/control-plane/index.js';
import {
  NO_FAULTS,
  startFaultProxy,
  type FaultProxy,
  type FaultSpec,
} from '../../src/sandbox/faults/proxy.js';

export interface ProxyInFront {
  proxy: FaultProxy;
  /** Path of a kubeconfig whose server is the proxy (for kubectl). */
  kubeconfig: string;
  /** The same, loaded for client-node. */
  kubeConfig: KubeConfig;
}

export async function proxyInFront(cp: ControlPlane, spec: FaultSpec = NO_FAULTS): Promise<ProxyInFront> {
  const proxy = await startFaultProxy({
    target: cp.apiServerUrl,
    caPem: cp.caPem,
    ...servingKeyPair(cp.dataDir),
    spec,
  });
  const kubeconfig = writeKubeconfig(join(cp.dataDir, `proxy-${new URL(proxy.url).port}.kubeconfig`), {
    server: proxy.url,
    caPem: cp.caPem,
    token: cp.token,
    user: 'perch-admin',
  });
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(kubeconfig);
  return { proxy, kubeconfig, kubeConfig };
}
