// Which benchmarks `npm run bench` runs (PERCH_BENCH_ONLY), the sections of BENCHMARKS.md it writes, and
// those it keeps from the last run for the benchmarks it did not run.
import type { Benchmark, BenchmarkReport } from './run.js';

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

/** The machine a benchmark ran on, as its section's first line says. */
export interface Machine {
  nproc: number;
  cpu: string;
  memory: string;
  kernel: string;
  node: string;
  /** 1-minute load average when the benchmark began: other work on the machine skews the figures. */
  load: string;
  date: string;
}

export function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/** One benchmark's section: heading, machine, description, the figures' table, then its notes. */
export function section(b: Benchmark, m: Machine, report: BenchmarkReport, seconds: number): string {
  const rows = report.figures.map((f) => `| ${cell(f.name)} | ${cell(f.value)} | ${cell(f.note ?? '')} |`);
  return [
    `## ${b.title} (\`bench/${b.file}\`)`,
    '',
    `Machine: ${m.nproc} CPUs (nproc), ${m.cpu}, ${m.memory}, ${m.kernel}; Node ${m.node}; ` +
      `load average ${m.load} at start; ${m.date}; took ${seconds.toFixed(0)} s.`,
    '',
    report.description,
    '',
    '| Figure | Value | How |',
    '| --- | ---: | --- |',
    ...rows,
    '',
    ...(report.notes ? [report.notes, ''] : []),
  ].join('\n');
}
