// Mocha hooks for a file of controller scenarios: one `perch controller` child for the file, its warnings
// printed when a test fails, the test environments closed after; and a scenario run over each router at once.
import { sharedControlPlane } from './control-plane.js';
import { startController, type ControllerProcess } from './controller-process.js';
import { expect } from 'chai';
import { RolloutEnv, sharedPrometheus } from './rollout-env.js';
import { ROUTERS, type RouterKind } from './route-under-test.js';

export interface ControllerSuite {
  controller(): ControllerProcess;
  /** A namespace and its Services; its Rollouts use `router` (default: the suite's) unless they name one. */
  env(prefix: string, services?: string[], router?: RouterKind): Promise<RolloutEnv>;
  /** An environment per router, made side by side, for a scenario run over each at once with `eachRouter`. */
  routerEnvs(prefix: string, services?: string[]): Promise<Map<RouterKind, RolloutEnv>>;
  /** Environments made so far, in order. */
  envs: RolloutEnv[];
}

/**
 * Runs `step` over every router's environment at once (scenarios mostly wait on their checks) and waits
 * for each to end, so none runs on into the next test; a failure names its router, and any other's.
 */
export async function eachRouter(
  envs: Map<RouterKind, RolloutEnv>,
  step: (e: RolloutEnv, router: RouterKind) => Promise<void>,
): Promise<void> {
  const routers = [...envs.keys()];
  const results = await Promise.allSettled(routers.map((router) => step(envs.get(router)!, router)));
  const failures = results.flatMap((result, i) =>
    result.status === 'rejected' ? [{ router: routers[i]!, reason: result.reason as unknown }] : [],
  );
  if (failures.length === 0) return;
  const text = (reason: unknown) => (reason instanceof Error ? reason.message : String(reason));
  const [first, ...others] = failures;
  const err = first!.reason instanceof Error ? first!.reason : new Error(text(first!.reason));
  err.message =
    `over ${first!.router}: ${err.message}` +
    others.map((o) => `\n(and over ${o.router}: ${text(o.reason)})`).join('');
  throw err;
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
  const env = async (prefix: string, services?: string[], router = opts.router) => {
    const e = await RolloutEnv.create(prefix, services, router);
    envs.push(e);
    return e;
  };
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
    env,
    async routerEnvs(prefix, services) {
      const made = await Promise.all(ROUTERS.map((router) => env(`${prefix}-${router}`, services, router)));
      return new Map(ROUTERS.map((router, i) => [router, made[i]!]));
    },
  };
}
