// Mocha's spec reporter plus one plain closing line, "mocha: N passed, N failed, N skipped",
// which CI logs and other tools read without knowing mocha's own summary format. With
// PERCH_TEST_TIMES=1 it also prints each test file's wall time, slowest first (where the budget goes).
'use strict';
const Mocha = require('mocha');
const { relative } = require('node:path');

class SpecWithSummary extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    const files = new Map();
    runner.on('suite', (suite) => {
      if (suite.file && !files.has(suite.file)) files.set(suite.file, { start: Date.now(), end: Date.now() });
    });
    runner.on('suite end', (suite) => {
      const f = suite.file && files.get(suite.file);
      if (f) f.end = Date.now();
    });
    runner.once('end', () => {
      const s = runner.stats;
      if (process.env.PERCH_TEST_TIMES) {
        const rows = [...files].map(([file, t]) => [relative(process.cwd(), file), (t.end - t.start) / 1000]);
        rows.sort((a, b) => b[1] - a[1]);
        process.stdout.write('\nwall time per file (s):\n');
        for (const [file, secs] of rows) process.stdout.write(`${secs.toFixed(1).padStart(7)}  ${file}\n`);
      }
      process.stdout.write(`\nmocha: ${s.passes} passed, ${s.failures} failed, ${s.pending} skipped\n`);
    });
  }
}

module.exports = SpecWithSummary;
