// The controller killed with SIGKILL at seeded random moments while 20 runs are in flight, and started
// again each time: every run ends in the right phase, and its TrafficSplit shows every step once.
import { expect } from 'chai';
import { sharedControlPlane } from '../support/control-plane.js';
import { startController, type ControllerProcess } from '../support/controller-process.js';
import { analysis, canaryTraffic, HEALTHY, RolloutEnv, sharedPrometheus } from '../support/rollout-env.js';

const RUNS = 20;
const FAULTY = new Set([3, 8, 13, 18]);
const SEED = 20261124;

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('rollout controller killed with SIGKILL mid-run', function () {
  this.timeout(300_000);
  let controller: ControllerProcess | undefined;
  let env: RolloutEnv | undefined;

  after(async () => {
    env?.close();
    await controller?.stop();
  });

  it(`ends ${RUNS} runs in the right phase with every step written once, across seeded kills`, async () => {
    const cp = await sharedControlPlane();
    const prometheusUrl = (await sharedPrometheus()).prometheus.url;
    const canaries = Array.from({ length: RUNS }, (_, i) => `canary-${i}`);
    env = await RolloutEnv.create('crash', ['web', 'web-v1', ...canaries]);
    const e = env;
    await Promise.all(
      canaries.map((canary, i) => {
        e.canaryServices.set(`run-${i}`, canary);
        return canaryTraffic(e, FAULTY.has(i) ? { rps: 50, errorRate: 0.2, latencyMs: 20 } : HEALTHY, canary);
      }),
    );
    controller = await startController(cp.kubeconfig, prometheusUrl);
    const created = new Map<string, number>();
    for (const [i, canary] of canaries.entries()) {
      await e.createRollout(`run-${i}`, {
        canaryService: canary,
        steps: [
          { setWeight: 10 },
          { analysis: { iterations: 3 } },
          { setWeight: 30 },
          { pause: { duration: '2s' } },
          { setWeight: 60 },
          { analysis: { iterations: 3 } },
          { setWeight: 100 },
        ],
        analysis: analysis(),
      });
      created.set(`run-${i}`, Date.now());
    }

    const settledAt = new Map<string, number>();
    const settled = Promise.all(
      canaries.map(async (_, i) => {
        const r = await e.until(
          `run-${i}`,
          (x) => ['Succeeded', 'Failed'].includes(x.status?.phase ?? ''),
          'a final phase',
          240_000,
        );
        settledAt.set(`run-${i}`, Date.now());
        return r;
      }),
    );
    const random = prng(SEED);
    const kills: number[] = [];
    let done = false;
    void settled.finally(() => (done = true));
    while (!done) {
      await Promise.race([new Promise((r) => setTimeout(r, 100 + random() * 700)), settled]);
      if (done) break;
      await controller.kill();
      kills.push(Date.now());
      controller = await startController(cp.kubeconfig, prometheusUrl);
    }
    const finals = await settled;

    // Concurrent runs: each kill lands at a random moment of every run in flight (asserted per run below).
    expect(kills.length, 'kills').to.be.at.least(5);
    for (const [i, r] of finals.entries()) {
      const name = `run-${i}`;
      const expected = FAULTY.has(i)
        ? { phase: 'Failed', weights: [0, 10, 0] }
        : { phase: 'Succeeded', weights: [0, 10, 30, 60, 100] };
      expect(r.status?.phase, name).to.equal(expected.phase);
      expect(e.weights(name), `${name}: every step once`).to.deep.equal(expected.weights);
      const during = kills.filter((k) => k > created.get(name)! && k < settledAt.get(name)!).length;
      expect(during, `${name}: killed during its run`).to.be.at.least(1);
    }
  });
});
