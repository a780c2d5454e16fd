// Tests whose bodies run side by side: scenarios that mostly wait (on 1 s checks, on watches) need not wait
// for one another. The first of them to run starts every body, and each test awaits its own.

/** Declares one test: its title and its body, as mocha's `it`. */
export type DeclareTest = (title: string, body: () => Promise<void>) => void;

/**
 * The tests `declare` declares, in order, their bodies all started when the first of them runs; by the
 * end of the last, every body has ended, so the tests after them run alone as usual. Only for tests that
 * share nothing but the suite's servers: no body may wait for another's end or disturb what another reads.
 */
export function together(declare: (test: DeclareTest) => void): void {
  const tests: { title: string; body: () => Promise<void>; run?: Promise<void> }[] = [];
  declare((title, body) => tests.push({ title, body }));
  const start = () => {
    for (const t of tests) {
      t.run = t.body();
      // Awaited by its test; a failure before then is that test's, not an unhandled rejection.
      t.run.catch(() => undefined);
    }
  };
  for (const t of tests)
    it(t.title, () => {
      if (!t.run) start();
      return t.run!;
    });
}
