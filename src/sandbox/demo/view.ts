// What `perch demo` shows of a rollout run: a redrawn block on a terminal, one line per transition
// otherwise (CI logs), and the summary table at the end. Pure formatting; the caller owns the stream.
import { phaseText as spoken, type Rollout } from '../../api/v1alpha1.js';

const phaseText = (s: Pick<RunState, 'phase' | 'pauseReason'>) => spoken(s, 'Pending');
import type { BookbuyerStats } from '../apps/bookbuyer.js';

export interface RunState {
  /** "v2", "v3". */
  run: string;
  canary: string;
  stable: string;
  /** The phase the run must end in. */
  expected: 'Succeeded' | 'Failed';
  startedAt: number;
  endedAt?: number;
  phase?: string;
  /** Why it is Paused (Manual when a person set perch.dev/paused); undefined otherwise. */
  pauseReason?: string;
  weight?: number;
  step?: string;
  /** The last success-rate measurement, in percent. */
  successRate?: number;
  message?: string;
}

/** The run's fields as the Rollout's status shows them (once it speaks of the run's generation). */
export function observe(state: RunState, rollout: Rollout, generation: number): void {
  const s = rollout.status;
  if (!s || (s.observedGeneration ?? 0) < generation) return;
  state.phase = s.phase;
  state.pauseReason = s.phase === 'Paused' ? s.pauseReason : undefined;
  state.weight = s.canaryWeight;
  state.step = s.step;
  state.message = s.message;
  const rates = (s.analysis?.measurements ?? []).filter(
    (m) => m.metric === 'request-success-rate' && m.value !== undefined,
  );
  const last = rates.sort((a, b) => Date.parse(a.at) - Date.parse(b.at)).at(-1);
  if (last?.value !== undefined) state.successRate = last.value;
}

export function weightBar(weight: number | undefined, width = 10): string {
  const w = Math.max(0, Math.min(100, weight ?? 0));
  const filled = Math.round((w / 100) * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(w).padStart(3)}%`;
}

/** A person holds the run (perch.dev/paused): time that does not count against the demo's limit. */
export const heldByPerson = (s: RunState): boolean =>
  s.endedAt === undefined && s.phase === 'Paused' && s.pauseReason === 'Manual';

const rate = (v: number | undefined) => (v === undefined ? '-' : `${v.toFixed(1)}%`);
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)}s`;

/** One line of the live view for a run. */
export function liveLine(s: RunState, now = Date.now()): string {
  const elapsed = seconds((s.endedAt ?? now) - s.startedAt);
  return (
    `${s.run.padEnd(3)} ${s.stable} -> ${s.canary}  ${weightBar(s.weight)}  ` +
    `${phaseText(s).padEnd(11)} step ${(s.step ?? '-').padEnd(4)} ` +
    `success ${rate(s.successRate).padStart(6)}  ${elapsed}`
  );
}

/** The weights the mesh routes the root Service by now: the routing object, and each of its rules. */
export interface RoutingSeen {
  kind: 'TrafficSplit' | 'HTTPRoute';
  /** The object's name (the names, when several HTTPRoutes attach to the root). */
  name: string;
  /** A TrafficSplit has one; an HTTPRoute one per rule, every rule shown (the person's too). */
  rules: { name?: string; backends: { service: string; weight: number }[] }[];
}

/**
 * One line for the routing object: "route: TrafficSplit bookstore-split bookstore-v1=90 bookstore-v2=10", or
 * "route: HTTPRoute bookstore pinned: bookstore-v1=1 | split: bookstore-v1=90 bookstore-v2=10".
 */
export function routingLine(r: RoutingSeen | undefined): string {
  if (!r) return 'route: nothing routes the root Service yet';
  const weights = (rule: RoutingSeen['rules'][number] | undefined) =>
    (rule?.backends ?? []).map((b) => `${b.service}=${b.weight}`).join(' ') || 'no backend';
  if (r.kind === 'TrafficSplit') return `route: TrafficSplit ${r.name} ${weights(r.rules[0])}`;
  const rules = r.rules.map((rule, i) => `${rule.name ?? `rule ${i}`}: ${weights(rule)}`);
  return `route: HTTPRoute ${r.name} ${rules.join(' | ')}`;
}

/** The plain line for a transition; undefined when phase, weight and step are as last printed. */
export class TransitionLog {
  private readonly last = new Map<string, string>();

  line(s: RunState, now = Date.now()): string | undefined {
    const key = `${phaseText(s)}|${s.weight}|${s.step}`;
    if (s.phase === undefined || this.last.get(s.run) === key) return undefined;
    this.last.set(s.run, key);
    const t = seconds(now - s.startedAt).padStart(6);
    return (
      `[${t}] ${s.run} ${s.canary}: phase=${phaseText(s)} weight=${s.weight ?? 0} step=${s.step ?? '-'} ` +
      `success=${rate(s.successRate)}`
    );
  }
}

/** The plain line for a change of the routing; undefined when it reads as last printed. */
export class RoutingLog {
  private last: string | undefined;

  line(
    routing: RoutingSeen | undefined,
    run: Pick<RunState, 'run' | 'startedAt'>,
    now = Date.now(),
  ): string | undefined {
    const text = routingLine(routing);
    if (text === this.last) return undefined;
    this.last = text;
    return `[${seconds(now - run.startedAt).padStart(6)}] ${run.run} ${text}`;
  }
}

/** Redraws a block of lines in place: moves up over the last block, clears each line, writes anew. */
export class Redrawer {
  private drawn = 0;

  constructor(private readonly write: (text: string) => void) {}

  draw(lines: string[]): void {
    let out = this.drawn > 0 ? `\x1b[${this.drawn}A` : '';
    for (const line of lines) out += `\r\x1b[2K${line}\n`;
    this.write(out);
    this.drawn = lines.length;
  }

  /** Leaves the last block on screen; the next draw starts below it. */
  release(): void {
    this.drawn = 0;
  }
}

export function outcomeOf(s: RunState): string {
  return s.phase ?? 'not started';
}

export function summaryTable(runs: RunState[]): string {
  const rows = [
    ['run', 'canary', 'expected', 'outcome', 'duration', ''],
    ...runs.map((s) => [
      s.run,
      s.canary,
      s.expected,
      outcomeOf(s),
      s.endedAt === undefined ? '-' : seconds(s.endedAt - s.startedAt),
      outcomeOf(s) === s.expected ? 'ok' : 'UNEXPECTED',
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** bookbuyer's counts: "load: 1200 sent (200:1180 500:20)". */
export function loadLine(load: BookbuyerStats): string {
  const answered = Object.entries(load.byCode)
    .map(([code, n]) => `${code}:${n}`)
    .join(' ');
  const lost = load.failed > 0 ? ` ${load.failed} unanswered` : '';
  return `load: ${load.sent} sent (${answered || 'none answered yet'})${lost}`;
}
