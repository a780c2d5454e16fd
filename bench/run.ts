// `npm run bench`: runs every benchmark module of bench/ in turn (or those PERCH_BENCH_ONLY names), prints
// its figures and writes BENCHMARKS.md at the repository root, one section per benchmark with its machine.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../src/sandbox/repo.js';
import { controllerBenchmark } from './controller.js';
import { meshBenchmark } from './mesh.js';
import { sandboxBenchmark } from './sandbox.js';
import { scaleBenchmark } from './scale.js';
import { cell, existingSections, section, selectBenchmarks, type Machine } from './sections.js';

export interface Figure {
  /** What was measured, e.g. "start to ready, median of 3". */
  name: string;
  /** The number with its unit, formatted for reading, e.g. "4.21 s". */
  value: string;
  /** How it was measured, when the name alone does not say. */
  note?: string;
}

export interface BenchmarkReport {
  /** A paragraph on what the benchmark does, in markdown. */
  description: string;
  figures: Figure[];
  /** Markdown shown after the figures: what they do not say by themselves (where the time went). */
  notes?: string;
}

export interface Benchmark {
  /** Its file in bench/, named in the section heading. */
  file: string;
  title: string;
  /** `progress` lines go to stderr while it runs. */
  run(progress: (line: string) => void): Promise<BenchmarkReport>;
}

const BENCHMARKS: Benchmark[] = [sandboxBenchmark, controllerBenchmark, meshBenchmark, scaleBenchmark];

function machine(): Machine {
  return {
    nproc: availableParallelism(),
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    kernel: `Linux ${release()}`,
    node: process.version,
    load: (loadavg()[0] ?? 0).toFixed(2),
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
  };
}

async function main(): Promise<number> {
  const selected = selectBenchmarks(BENCHMARKS, process.env.PERCH_BENCH_ONLY);
  const file = join(repoRoot, 'BENCHMARKS.md');
  const kept = existingSections(existsSync(file) ? readFileSync(file, 'utf8') : '');
  const written = new Map<string, string>();
  let failed = 0;
  for (const b of selected) {
    const progress = (line: string) => process.stderr.write(`bench ${b.file}: ${line}\n`);
    const m = machine();
    const started = performance.now();
    try {
      const report = await b.run(progress);
      const seconds = (performance.now() - started) / 1000;
      process.stdout.write(`\n${b.title}\n`);
      const width = Math.max(...report.figures.map((f) => f.name.length));
      for (const f of report.figures) {
        process.stdout.write(`  ${f.name.padEnd(width)}  ${f.value}${f.note ? `  (${f.note})` : ''}\n`);
      }
      written.set(b.file, section(b, m, report, seconds));
    } catch (err) {
      failed++;
      process.stderr.write(
        `bench ${b.file}: failed: ${err instanceof Error ? (err.stack ?? err.message) : err}\n`,
      );
      written.set(
        b.file,
        `## ${b.title} (\`bench/${b.file}\`)\n\nFailed on ${m.date}: ${cell(String(err))}\n`,
      );
    }
  }
  const sections = BENCHMARKS.map((b) => written.get(b.file) ?? kept.get(b.file)).filter(
    (s): s is string => s !== undefined,
  );
  const header = [
    '# Benchmarks',
    '',
    'Written by `npm run bench` (`bench/run.ts`), which runs each benchmark module of `bench/` and',
    'replaces this file. Figures depend on the machine and on whatever else ran on it; compare runs',
    'made on the same machine.',
    '',
  ].join('\n');
  writeFileSync(file, `${header}\n${sections.join('\n')}`);
  process.stdout.write(`\nwrote ${file}\n`);
  return failed === 0 ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : err}\n`);
    process.exitCode = 1;
  },
);
