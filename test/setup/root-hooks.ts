// Mocha root hooks: after the whole run, stop the shared Prometheus, delete test namespaces, stop the control plane.
import { deleteTestNamespaces, stopSharedControlPlane } from '../support/control-plane.js';
import { stopSharedPrometheus } from '../support/rollout-env.js';

export const mochaHooks = {
  async afterAll(this: Mocha.Context) {
    this.timeout(60_000);
    await stopSharedPrometheus();
    await deleteTestNamespaces();
    await stopSharedControlPlane();
  },
};
