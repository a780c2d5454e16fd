// The local control plane: official etcd, kube-apiserver and kube-controller-manager on 127.0.0.1.
// One call starts it (`startControlPlane`), one call (`stop`) ends every process and removes its data.
import { KubeConfig } from '@kubernetes/client-node';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Child } from '../child-process.js';
import { makeDataDir } from '../data-dir.js';
import { parseFaultSpec, startFaultProxy, type FaultProxy, type FaultSpec } from '../faults/proxy.js';
import { freePort } from '../free-port.js';
import { crdsDir as defaultCrdsDir } from '../repo.js';
import { prepareBinaries, type Binaries, type Progress } from './binaries.js';
import { installCrds, readCrds } from './crds.js';
import { writeCredentials, type Credentials } from './credentials.js';
import { startEtcd } from './etcd.js';
import { prepareGatewayApiCrds } from './gateway-api.js';
import { startApiServer, type ApiServerConfig } from './kube-apiserver.js';
import { startControllerManager } from './kube-controller-manager.js';
import { assertSandboxKubeconfigPath, writeKubeconfig } from './kubeconfig.js';

export interface ControlPlaneOptions {
  /** Where to write the admin kubeconfig; default: inside the sandbox's data folder. */
  kubeconfig?: string;
  /** kube-apiserver's secure port; default: a free one. */
  port?: number;
  /** Write the API server's audit log (Metadata level, route writes with their body; JSON lines) here. */
  auditLog?: string;
  /** Put the seeded fault-injecting proxy in front of the API server and point the kubeconfig at it. */
  faults?: FaultSpec | string;
  /** Folder of CRDs to install; default: the repository's crds/. */
  crdsDir?: string;
  /** Install the official Gateway API CRDs too (after crdsDir's); default true. False: a cluster without them. */
  gatewayApi?: boolean;
  /** Progress lines (binary builds, the Gateway API CRDs' first fetch); default: none. */
  progress?: Progress;
}

export interface ControlPlane {
  /** The URL clients use: the fault proxy when faults are on, else kube-apiserver. */
  server: string;
  /** kube-apiserver itself. */
  apiServerUrl: string;
  /** Admin kubeconfig: CA plus bearer token, kubectl needs no flag. */
  kubeconfig: string;
  token: string;
  caPem: string;
  auditLog: string | undefined;
  etcdUrl: string;
  dataDir: string;
  binaries: Binaries;
  faultProxy: FaultProxy | undefined;
  /** A client-node KubeConfig loaded from `kubeconfig`. */
  kubeConfig(): KubeConfig;
  /** PIDs of every process the sandbox runs now. */
  pids(): number[];
  /**
   * Stops kube-apiserver and starts it again on the same port, data and certificate;
   * `whileStopped` runs in between (tests use it to advance and compact etcd).
   */
  restartApiServer(whileStopped?: () => Promise<void>): Promise<void>;
  stop(): Promise<void>;
}

const DIR_PREFIX = 'perch-sandbox-';

export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  // Before anything starts: never overwrite a kubeconfig that is not the sandbox's own.
  if (opts.kubeconfig) assertSandboxKubeconfigPath(opts.kubeconfig);
  const binaries = await prepareBinaries(opts.progress);
  // Before anything starts too: a missing Go or a wrong PERCH_GATEWAY_API_CRDS is said at once.
  const gatewayApi = opts.gatewayApi === false ? undefined : await prepareGatewayApiCrds(opts.progress);
  const dataDir = makeDataDir(DIR_PREFIX);
  const children: Child[] = [];
  let faultProxy: FaultProxy | undefined;
  const stopAll = async () => {
    await faultProxy?.close();
    // Reverse start order: the controller manager and API server before the store they use.
    for (const child of [...children].reverse()) await child.stop();
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    const credentials: Credentials = writeCredentials(dataDir);
    const etcd = await startEtcd(binaries.etcd, dataDir);
    children.push(etcd.child);
    const apiConfig: ApiServerConfig = {
      binary: binaries.kubeApiserver,
      dir: dataDir,
      port: opts.port ?? (await freePort()),
      etcdUrl: etcd.url,
      credentials,
      auditLog: opts.auditLog,
    };
    let api = await startApiServer(apiConfig);
    children.push(api.child);

    let server = api.url;
    if (opts.faults) {
      const spec = typeof opts.faults === 'string' ? parseFaultSpec(opts.faults) : opts.faults;
      faultProxy = await startFaultProxy({
        target: api.url,
        caPem: api.caPem,
        ...servingKeyPair(dataDir),
        spec,
      });
      server = faultProxy.url;
    }
    const kubeconfig = writeKubeconfig(opts.kubeconfig ?? join(dataDir, 'admin.kubeconfig'), {
      server,
      caPem: api.caPem,
      token: credentials.admin.token,
      user: credentials.admin.name,
    });
    // Straight to the API server, so a fault spec cannot fail the sandbox's own setup.
    const setupConfig = new KubeConfig();
    setupConfig.loadFromFile(
      writeKubeconfig(join(dataDir, 'setup.kubeconfig'), {
        server: api.url,
        caPem: api.caPem,
        token: credentials.admin.token,
        user: credentials.admin.name,
      }),
    );
    // One call: crds/ applied first, then the Gateway API's, and the waits for Established overlap.
    await installCrds(setupConfig, [
      ...readCrds(opts.crdsDir ?? defaultCrdsDir),
      ...(gatewayApi?.crds ?? []),
    ]);
    // Started after the CRDs exist, so the garbage collector watches their objects from its first sync.
    children.push(
      startControllerManager(
        binaries.kubeControllerManager,
        dataDir,
        api.url,
        api.caPem,
        credentials.controllerManager,
      ),
    );

    return {
      server,
      apiServerUrl: api.url,
      kubeconfig,
      token: credentials.admin.token,
      caPem: api.caPem,
      auditLog: opts.auditLog,
      etcdUrl: etcd.url,
      dataDir,
      binaries,
      faultProxy,
      kubeConfig() {
        const kc = new KubeConfig();
        kc.loadFromFile(kubeconfig);
        return kc;
      },
      pids: () => children.filter((c) => c.isRunning()).map((c) => c.pid),
      async restartApiServer(whileStopped) {
        const old = api.child;
        await old.stop();
        await whileStopped?.();
        api = await startApiServer(apiConfig);
        children.splice(children.indexOf(old), 1, api.child);
      },
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** kube-apiserver's own serving key pair, which the fault proxy reuses so the kubeconfig CA fits both. */
export function servingKeyPair(dir: string): { certPem: string; keyPem: string } {
  return {
    certPem: readFileSync(join(dir, 'pki', 'apiserver.crt'), 'utf8'),
    keyPem: readFileSync(join(dir, 'pki', 'apiserver.key'), 'utf8'),
  };
}

export { prepareBinaries, pinnedKubernetesVersion, cacheDir } from './binaries.js';
export { assertSandboxKubeconfigPath, publishKubeconfig, writeKubeconfig } from './kubeconfig.js';
export { installCrds, readCrds } from './crds.js';
export {
  GATEWAY_API_CRDS_ENV,
  gatewayApiCacheDir,
  pinnedGatewayApiVersion,
  prepareGatewayApiCrds,
  type GatewayApiCrds,
} from './gateway-api.js';
