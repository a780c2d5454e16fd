// `npm run test:chaos`: 50 Rollouts, half over SMI, half over a person's HTTPRoute, through the seeded fault
// proxy, about 10 SIGKILLs of the controller and one kube-apiserver restart; every run keeps its plan.
import { expect } from 'chai';
import { fromEnv, runChaos, summary } from '../support/chaos.js';

const SEED = fromEnv('PERCH_CHAOS_SEED', 1414);
const ROLLOUTS = fromEnv('PERCH_CHAOS_ROLLOUTS', 50);
const KILLS = fromEnv('PERCH_CHAOS_KILLS', 10);
/** The Rollouts over an HTTPRoute, in percent (0: all over SMI). */
const HTTPROUTE_PERCENT = fromEnv('PERCH_CHAOS_HTTPROUTE_PERCENT', 50);

describe('chaos: faults, controller kills and a kube-apiserver restart', function () {
  this.timeout(600_000);

  it(`${ROLLOUTS} runs (seed ${SEED}, ${HTTPROUTE_PERCENT} % over HTTPRoute) end in their phase and write each planned weight once, all valid`, async () => {
    const o = await runChaos({
      prefix: 'chaos',
      rollouts: ROLLOUTS,
      faultyShare: 0.36,
      httpRouteShare: HTTPROUTE_PERCENT / 100,
      seed: SEED,
      kills: KILLS,
      restartApiServer: true,
      settleTimeoutMs: 420_000,
      progress: (line) => process.stderr.write(`  [chaos] ${line}\n`),
    });
    process.stderr.write(`${summary(o)}\n`);
    expect(o.problems, `${o.problems.join('\n')}\n${o.diagnostics}`).to.deep.equal([]);
    for (const rec of o.recorders)
      expect(
        rec.stats.resumes,
        `the ${rec.router} recorder resumed its watch across the restart`,
      ).to.be.at.least(1);
  });
});
