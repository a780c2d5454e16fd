// `perch sandbox` and `perch sandbox prepare`: the local control plane from the command line.
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import {
  assertSandboxKubeconfigPath,
  prepareBinaries,
  prepareGatewayApiCrds,
  startControlPlane,
} from '../sandbox/control-plane/index.js';
import { parseFaultSpec } from '../sandbox/faults/spec.js';
import { UsageError } from './usage-error.js';

export const SANDBOX_USAGE = `usage:
  perch sandbox --kubeconfig FILE [--port N] [--audit-log FILE] [--faults SPEC]
      Starts kube-apiserver, etcd and kube-controller-manager on 127.0.0.1, installs crds/ and the
      official Gateway API CRDs (standard channel, the version tools/gateway-api/go.mod pins), writes
      an admin kubeconfig to FILE and prints "ready <url>". Ctrl-C stops it all.
      --faults SPEC  e.g. seed=7,500=0.05,429=0.02,409=0.01,latency=20ms,jitter=10ms,watch-cut=5s
  perch sandbox prepare
      Makes sure the control-plane binaries are there (building them once with Go) and prints their folder,
      and that the Gateway API CRDs are cached (fetched once with Go; or PERCH_GATEWAY_API_CRDS=folder).`;

function parseFlags(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      options: {
        kubeconfig: { type: 'string' },
        port: { type: 'string' },
        'audit-log': { type: 'string' },
        faults: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values;
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n${SANDBOX_USAGE}`);
  }
}

const progress = (line: string) => process.stderr.write(`perch sandbox: ${line}\n`);

export async function sandboxCommand(argv: string[]): Promise<number> {
  if (argv[0] === 'prepare') {
    if (argv.length > 1) throw new UsageError(`perch sandbox prepare takes no arguments\n${SANDBOX_USAGE}`);
    const binaries = await prepareBinaries(progress);
    const gatewayApi = await prepareGatewayApiCrds(progress);
    progress(`Gateway API CRDs ${gatewayApi.version} (standard channel) in ${gatewayApi.dir}`);
    process.stdout.write(`${binaries.dir}\n`);
    return 0;
  }
  const values = parseFlags(argv);
  if (values.help) {
    process.stdout.write(`${SANDBOX_USAGE}\n`);
    return 0;
  }
  if (!values.kubeconfig)
    throw new UsageError(
      `--kubeconfig FILE is required: where to write the admin kubeconfig\n${SANDBOX_USAGE}`,
    );
  let port: number | undefined;
  if (values.port !== undefined) {
    port = Number(values.port);
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new UsageError(
        `--port ${values.port} is not a TCP port; give a number from 1 to 65535, or leave it out for a free one`,
      );
    }
  }
  let faults;
  try {
    faults = values.faults ? parseFaultSpec(values.faults) : undefined;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const kubeconfig = resolve(values.kubeconfig);
  try {
    assertSandboxKubeconfigPath(kubeconfig);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  // Signal handlers first: a Ctrl-C or SIGTERM at any moment, start-up included, stops cleanly.
  let signalled: () => void = () => {};
  const stopRequested = new Promise<void>((resolve) => (signalled = resolve));
  const onSignal = () => signalled();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const cp = await startControlPlane({
    kubeconfig,
    port,
    auditLog: values['audit-log'] ? resolve(values['audit-log']) : undefined,
    faults,
    progress,
  });
  process.stdout.write(`ready ${cp.server}\n`);
  progress(`kubeconfig ${cp.kubeconfig}; try: KUBECONFIG=${cp.kubeconfig} kubectl get trafficsplits -A`);
  await stopRequested;
  progress('stopping');
  await cp.stop();
  return 0;
}
