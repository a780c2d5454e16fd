// Mocha hooks for a file of controller scenarios: one `perch controller` child for the file, its
// warnings printed when a test fails, and the test environments closed after.
import { sharedControlPlane } from './control-plane.js';
import { startController, type ControllerProcess } from './controller-process.js';
import { expect } from 'chai';
import { RolloutEnv, sharedPrometheus } from './rollout-env.js';
import type { RouterKind } from './route-under-test.js';

export interface ControllerSuite {
  controller(): ControllerProcess;
  env(prefix: string, services?: string[]): Promise<RolloutEnv>;
  /** Environments made so far, in order. */
  envs: RolloutEnv[];
}

export interface ControllerSuiteOptions {
  /** The controller's --prometheus-url; default: the suite's shared Prometheus. */
  prometheusUrl?: string;
  /** Flags of its own, worked out in the before hook (so namespaces they name can be made first). */
  args?: () => Promise<string[]>;
  /** The router the suite's Rollouts use (default SMI). */
  router?: RouterKind;
}

export function useController(opts: ControllerSuiteOptions = {}): ControllerSuite {
  let controller: ControllerProcess | undefined;
  const envs: RolloutEnv[] = [];
  before(async () => {
    const cp = await sharedControlPlane();
    const prometheusUrl = opts.prometheusUrl ?? (await sharedPrometheus()).prometheus.url;
    controller = await startController(cp.kubeconfig, prometheusUrl, (await opts.args?.()) ?? []);
  });
  afterEach(function () {
    // Over an HTTPRoute, every version Perch wrote differs from the one before only in its two weights.
    if (this.currentTest?.state === 'passed')
      for (const e of envs)
        expect(e.routeChanges, `${e.ns}: HTTPRoute changes beyond the weights`).to.deep.equal([]);
    if (this.currentTest?.state === 'failed' && controller) {
      const noisy = controller.logs.filter((l) => l.level === 'warn' || l.level === 'error').slice(-8);
      console.log(`  controller warnings:\n${noisy.map((l) => `    ${JSON.stringify(l)}`).join('\n')}`);
    }
  });
  after(async () => {
    for (const e of envs) e.close();
    await controller?.stop();
  });
  return {
    controller: () => controller!,
    envs,
    async env(prefix, services) {
      const e = await RolloutEnv.create(prefix, services, opts.router);
      envs.push(e);
      return e;
    },
  };
}
