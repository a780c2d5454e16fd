#!/usr/bin/env node
// `perch`: the command-line entry point; each subcommand lives in its own module.
import { runMain } from './main.js';
import { sandboxCommand, SANDBOX_USAGE } from './sandbox.js';
import { UsageError } from './usage-error.js';

const USAGE = `usage: perch <command> [flags]

commands:
  sandbox    the local Kubernetes control plane (official kube-apiserver, etcd, kube-controller-manager)

${SANDBOX_USAGE}`;

runMain('perch', async () => {
  const [command, ...rest] = process.argv.slice(2);
  switch (command) {
    case 'sandbox':
      return sandboxCommand(rest);
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(`${USAGE}\n`);
      return command === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command "${command}"\n\n${USAGE}`);
  }
});
