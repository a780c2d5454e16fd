// The short chaos run inside `npm test`: 8 Rollouts, half over SMI, half over a person's HTTPRoute, through the
// seeded fault proxy, 3 seeded SIGKILLs of the controller; every run ends in its phase and writes its plan once.
import { expect } from 'chai';
import { fromEnv, runChaos, summary } from '../support/chaos.js';

const SEED = fromEnv('PERCH_CHAOS_SHORT_SEED', 808);
/** The Rollouts over an HTTPRoute, in percent (0: all over SMI). */
const HTTPROUTE_PERCENT = fromEnv('PERCH_CHAOS_HTTPROUTE_PERCENT', 50);

describe('chaos, short: faults and controller kills', function () {
  this.timeout(180_000);

  it(`8 runs (seed ${SEED}, ${HTTPROUTE_PERCENT} % over HTTPRoute) end in their phase and write each planned weight once, all valid`, async () => {
    const o = await runChaos({
      prefix: 'chaos-short',
      rollouts: 8,
      faultyShare: 0.375,
      httpRouteShare: HTTPROUTE_PERCENT / 100,
      seed: SEED,
      kills: 3,
      restartApiServer: false,
      settleTimeoutMs: 120_000,
    });
    if (process.env.PERCH_TEST_VERBOSE) console.log(summary(o));
    expect(o.problems, `${o.problems.join('\n')}\n${summary(o)}\n${o.diagnostics}`).to.deep.equal([]);
  });
});
