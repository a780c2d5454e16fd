// Which benchmarks `npm run bench` runs (PERCH_BENCH_ONLY), and the sections of BENCHMARKS.md it keeps
// from the last run for those it did not run.
import type { Benchmark } from './run.js';

/**
 * PERCH_BENCH_ONLY=scale.ts,mesh.ts runs only those (".ts" may be left out); the other sections of
 * BENCHMARKS.md are kept as they were.
 */
export function selectBenchmarks(all: Benchmark[], only: string | undefined): Benchmark[] {
  if (!only?.trim()) return all;
  const wanted = only.split(',').map((w) => w.trim().replace(/\.ts$/, ''));
  for (const w of wanted) {
    if (!all.some((b) => b.file === `${w}.ts`))
      throw new Error(`PERCH_BENCH_ONLY: no benchmark ${w}; use one of ${all.map((b) => b.file).join(', ')}`);
  }
  return all.filter((b) => wanted.includes(b.file.replace(/\.ts$/, '')));
}

/** The sections of an existing BENCHMARKS.md, by the benchmark file named in each heading. */
export function existingSections(markdown: string): Map<string, string> {
  const sections = new Map<string, string>();
  for (const part of markdown.split(/^(?=## )/m).slice(1)) {
    const file = /^## .*\(`bench\/([^`]+)`\)/.exec(part)?.[1];
    if (file) sections.set(file, part.endsWith('\n\n') ? part.slice(0, -1) : part);
  }
  return sections;
}
