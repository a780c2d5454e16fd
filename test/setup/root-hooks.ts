// Mocha root hooks: after the whole run, delete test namespaces and stop the shared control plane.
import { deleteTestNamespaces, stopSharedControlPlane } from '../support/control-plane.js';

export const mochaHooks = {
  async afterAll(this: Mocha.Context) {
    this.timeout(60_000);
    await deleteTestNamespaces();
    await stopSharedControlPlane();
  },
};
