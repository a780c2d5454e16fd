#!/usr/bin/env node
// `perch`: the command-line entry point; each subcommand lives in its own module.
import { controllerCommand, CONTROLLER_USAGE } from './controller.js';
import { demoCommand, DEMO_USAGE } from './demo.js';
import { runMain } from './main.js';
import { sandboxCommand, SANDBOX_USAGE } from './sandbox.js';
import { uninstallCommand, UNINSTALL_USAGE } from './uninstall.js';
import { UsageError } from './usage-error.js';

const USAGE = `usage: perch <command> [flags]

commands:
  controller the Rollout controller
  sandbox    the local Kubernetes control plane (official kube-apiserver, etcd, kube-controller-manager)
  demo       the whole story on one machine: a healthy canary promoted, a faulty one rolled back
  uninstall  with the controller stopped: every Rollout's routing object left at its live version and
             released, and Perch's finalizer removed, so nothing is left Terminating

${CONTROLLER_USAGE}

${SANDBOX_USAGE}

${DEMO_USAGE}

${UNINSTALL_USAGE}`;

runMain('perch', async () => {
  const [command, ...rest] = process.argv.slice(2);
  switch (command) {
    case 'controller':
      return controllerCommand(rest);
    case 'sandbox':
      return sandboxCommand(rest);
    case 'demo':
      return demoCommand(rest);
    case 'uninstall':
      return uninstallCommand(rest);
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
