// What `kubectl perch get` and `kubectl perch status` print: the Rollout table and the status summary.
// Pure formatting of objects already read, with the clock passed in; the command owns the API and the streams.
import type { CoreV1Event } from '@kubernetes/client-node';
import { ANNOTATIONS, phaseText, type Measurement, type Rollout } from '../api/v1alpha1.js';
import { formatDuration } from '../machine/duration.js';
import { planOf } from '../machine/plan.js';

/** What a cell shows when the Rollout has no such value yet (kubectl leaves it blank, which misaligns the eye). */
const NONE = '-';
/** kubectl's tabwriter puts three spaces between columns. */
const GAP = '   ';

const timeOf = (t: Date | string | undefined): number | undefined =>
  t === undefined ? undefined : t instanceof Date ? t.getTime() : Date.parse(t);

/** kubectl's age format (k8s.io/apimachinery duration.HumanDuration): 45s, 3m20s, 15m, 5h3m, 2d4h, 40d. */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  const pair = (a: number, ua: string, b: number, ub: string) =>
    b === 0 ? `${a}${ua}` : `${a}${ua}${b}${ub}`;
  if (minutes < 10) return pair(minutes, 'm', seconds % 60, 's');
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) return pair(hours, 'h', minutes % 60, 'm');
  if (hours < 48) return `${hours}h`;
  const days = Math.floor(hours / 24);
  if (days < 8) return pair(days, 'd', hours % 24, 'h');
  if (days < 730) return `${days}d`;
  const years = Math.floor(days / 365);
  if (years < 8) return pair(years, 'y', days % 365, 'd');
  return `${years}y`;
}

/** The age of a timestamp at `now`, as kubectl prints it; "-" when there is none. */
export function age(t: Date | string | undefined, now: number): string {
  const at = timeOf(t);
  return at === undefined || Number.isNaN(at) ? NONE : humanDuration(now - at);
}

/** One line per cell row, columns padded to `widths` (the last column is never padded). */
export function formatRow(cells: readonly string[], widths: readonly number[]): string {
  return cells
    .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
    .join(GAP)
    .trimEnd();
}

export function columnWidths(rows: readonly (readonly string[])[]): number[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return widths;
}

/** Messages can hold anything; a table row must stay one line. */
const oneLine = (text: string) => text.replace(/\s+/g, ' ').trim();

export function tableHeader(allNamespaces: boolean): string[] {
  const columns = ['NAME', 'PHASE', 'WEIGHT', 'STEP', 'AGE', 'MESSAGE'];
  return allNamespaces ? ['NAMESPACE', ...columns] : columns;
}

export function rolloutRow(rollout: Rollout, now: number, allNamespaces: boolean): string[] {
  const s = rollout.status;
  const cells = [
    rollout.metadata?.name ?? NONE,
    phaseText(s),
    s?.canaryWeight === undefined ? NONE : String(s.canaryWeight),
    s?.step ?? NONE,
    age(rollout.metadata?.creationTimestamp, now),
    s?.message ? oneLine(s.message) : NONE,
  ];
  return allNamespaces ? [rollout.metadata?.namespace ?? NONE, ...cells] : cells;
}

const byNamespaceAndName = (a: Rollout, b: Rollout) =>
  (a.metadata?.namespace ?? '').localeCompare(b.metadata?.namespace ?? '') ||
  (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? '');

/** The header and one row per Rollout, by namespace and name; nothing at all for no Rollouts. */
function tableRows(rollouts: readonly Rollout[], now: number, allNamespaces: boolean): string[][] {
  if (rollouts.length === 0) return [];
  const sorted = [...rollouts].sort(byNamespaceAndName);
  return [tableHeader(allNamespaces), ...sorted.map((r) => rolloutRow(r, now, allNamespaces))];
}

/** `kubectl perch get`: the table's lines, no lines for no Rollouts (the caller says so on stderr). */
export function rolloutTable(rollouts: readonly Rollout[], now: number, allNamespaces: boolean): string[] {
  const rows = tableRows(rollouts, now, allNamespaces);
  const widths = columnWidths(rows);
  return rows.map((r) => formatRow(r, widths));
}

const keyOf = (r: Rollout) => `${r.metadata?.namespace ?? ''}/${r.metadata?.name ?? ''}`;

/**
 * The lines of `get -w`: the table first, then a row whenever a Rollout's row changes. AGE is left out
 * of the comparison (it changes by itself), and a status write that changes no column prints nothing.
 */
export class WatchTable {
  private widths: number[] | undefined;
  private readonly printed = new Map<string, string>();

  constructor(private readonly allNamespaces: boolean) {}

  /** The initial table; its column widths are the ones later rows line up with. */
  start(rollouts: readonly Rollout[], now: number): string[] {
    for (const r of rollouts) this.printed.set(keyOf(r), this.comparable(r, false));
    const rows = tableRows(rollouts, now, this.allNamespaces);
    if (rows.length > 0) this.widths = columnWidths(rows);
    return rows.map((r) => formatRow(r, this.widths!));
  }

  /** The lines for a Rollout that was added, changed or deleted: [] when its row is as last printed. */
  change(rollout: Rollout, now: number, deleted = false): string[] {
    const key = keyOf(rollout);
    const comparable = this.comparable(rollout, deleted);
    if (this.printed.get(key) === comparable) return [];
    if (deleted) this.printed.delete(key);
    else this.printed.set(key, comparable);
    const cells = this.cells(rollout, now, deleted);
    if (this.widths) return [formatRow(cells, this.widths)];
    // The first row of a watch that started on an empty list: the header comes with it.
    const header = tableHeader(this.allNamespaces);
    this.widths = columnWidths([header, cells]);
    return [formatRow(header, this.widths), formatRow(cells, this.widths)];
  }

  private cells(rollout: Rollout, now: number, deleted: boolean): string[] {
    const cells = rolloutRow(rollout, now, this.allNamespaces);
    // A deleted Rollout keeps its last row, with the fact of its deletion where the phase was.
    if (deleted) cells[this.allNamespaces ? 2 : 1] = '(deleted)';
    return cells;
  }

  private comparable(rollout: Rollout, deleted: boolean): string {
    const cells = this.cells(rollout, 0, deleted);
    cells.splice(this.allNamespaces ? 5 : 4, 1);
    return JSON.stringify(cells);
  }
}

/** A measured value, short: integers as they are, others to 2 decimals (3 significant digits below 1). */
export function formatValue(value: number | undefined): string {
  if (value === undefined) return NONE;
  if (Number.isInteger(value)) return String(value);
  return String(Math.abs(value) >= 1 ? Number(value.toFixed(2)) : Number(value.toPrecision(3)));
}

export function formatRange(range: { min?: number; max?: number } | undefined): string {
  const { min, max } = range ?? {};
  if (min !== undefined && max !== undefined) return `${min}..${max}`;
  if (min !== undefined) return `>= ${min}`;
  if (max !== undefined) return `<= ${max}`;
  return NONE;
}

/** The newest measurement of each metric: the spec's metrics in order, then any no longer in the spec. */
export function latestMeasurements(rollout: Rollout): { metric: string; latest: Measurement | undefined }[] {
  const latest = new Map<string, Measurement | undefined>(
    (rollout.spec.analysis?.metrics ?? []).map((m) => [m.name, undefined]),
  );
  for (const m of rollout.status?.analysis?.measurements ?? []) {
    const seen = latest.get(m.metric);
    if (!seen || Date.parse(m.at) >= Date.parse(seen.at)) latest.set(m.metric, m);
  }
  return [...latest].map(([metric, m]) => ({ metric, latest: m }));
}

const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;

/** The current step, in words: "2/3 pause, waits for perch.dev/resume (kubectl perch resume web)". */
export function describeStep(rollout: Rollout, now: number): string {
  const s = rollout.status;
  if (!s?.phase || s.phase === 'Invalid') return NONE;
  const plan = planOf(rollout.spec);
  const total = plan.steps.length;
  const index = s.currentStepIndex ?? 0;
  if (index >= total) return `${total}/${total} done`;
  const label = `${index + 1}/${total}`;
  const step = plan.steps[index]!;
  switch (step.kind) {
    case 'setWeight':
      return `${label} setWeight ${step.weight}`;
    case 'analysis':
      return `${label} analysis: ${s.analysis?.consecutivePassed ?? 0} of ${plural(step.iterations, 'consecutive passing check')}`;
    case 'pause': {
      if (step.durationMs === undefined) {
        const name = rollout.metadata?.name ?? 'NAME';
        return `${label} pause, waits for ${ANNOTATIONS.resume} (kubectl perch resume ${name})`;
      }
      const started =
        s.phase === 'Paused' && s.pauseReason === 'PauseStep' ? timeOf(s.stepStartedAt) : undefined;
      const left =
        started === undefined ? '' : `, ${formatDuration(Math.max(0, started + step.durationMs - now))} left`;
      return `${label} pause ${formatDuration(step.durationMs)}${left}`;
    }
  }
}

/** A block of aligned rows under a heading, indented; "<heading> <none>" when there are no rows. */
function section(heading: string, header: string[], rows: string[][]): string[] {
  if (rows.length === 0) return [`${heading} <none>`];
  const widths = columnWidths([header, ...rows]);
  return [heading, ...[header, ...rows].map((r) => `  ${formatRow(r, widths)}`)];
}

const eventTime = (e: CoreV1Event) =>
  timeOf(e.lastTimestamp ?? e.eventTime ?? e.firstTimestamp ?? e.metadata?.creationTimestamp) ?? 0;

/** The Events to show: the newest `limit`, oldest first, as `kubectl describe` lists them. */
export function recentEvents(events: readonly CoreV1Event[], limit = 5): CoreV1Event[] {
  return [...events].sort((a, b) => eventTime(a) - eventTime(b)).slice(-limit);
}

/** `kubectl perch status NAME`: everything a person needs to know about the run, in one screen. */
export function statusText(rollout: Rollout, events: readonly CoreV1Event[], now: number): string {
  const s = rollout.status;
  const spec = rollout.spec;
  const field = (name: string, value: string) => `${(name ? `${name}:` : '').padEnd(14)}${value}`;
  const generation = rollout.metadata?.generation;
  const observed = s?.observedGeneration;
  const lines = [
    field('Name', rollout.metadata?.name ?? NONE),
    field('Namespace', rollout.metadata?.namespace ?? NONE),
    field('Phase', s?.phase ? phaseText(s) : 'no status yet (has the controller seen it?)'),
    field('Message', s?.message ? oneLine(s.message) : NONE),
  ];
  if (generation !== undefined && observed !== undefined && generation !== observed) {
    lines.push(
      field('Generation', `${generation} (the run shown is of generation ${observed}; a new one starts)`),
    );
  }
  const weight = (w: number | undefined) => (w === undefined ? '' : ` ${w}%`);
  lines.push(
    field(
      'Services',
      `root ${spec.service}, stable ${spec.stableService}${weight(s?.stableWeight)}, canary ${spec.canaryService}${weight(s?.canaryWeight)}`,
    ),
    field('Step', describeStep(rollout, now)),
  );
  if (s?.runStartedAt)
    lines.push(field('Run started', `${s.runStartedAt} (${age(s.runStartedAt, now)} ago)`));

  const a = spec.analysis;
  if (!a || a.metrics.length === 0) {
    lines.push(field('Analysis', 'none (spec.analysis has no metrics)'));
  } else {
    const c = s?.analysis;
    // The plan's values, defaults applied: a Rollout written before the CRD defaulted them has none.
    const plan = planOf(spec);
    lines.push(
      field(
        'Analysis',
        `every ${formatDuration(plan.intervalMs)}: ${c?.passed ?? 0} passed, ${c?.failed ?? 0} failed (limit ${plan.failureLimit}), ` +
          `${c?.inconclusive ?? 0} inconclusive (limit ${plan.inconclusiveLimit}), ` +
          `${c?.consecutiveErrors ?? 0} consecutive errors (limit ${plan.errorLimit})`,
      ),
    );
    const last = c?.lastCheckAt ? `last check ${age(c.lastCheckAt, now)} ago` : 'no check yet';
    const nextAt = timeOf(c?.nextCheckAt);
    const next = nextAt === undefined ? '' : `, next in ${humanDuration(Math.max(0, nextAt - now))}`;
    lines.push(field('', `${last}${next}`));
    const ranges = new Map(a.metrics.map((m) => [m.name, m.thresholdRange]));
    lines.push(
      ...section(
        'Metrics:',
        ['METRIC', 'VALUE', 'VERDICT', 'RANGE', 'AT'],
        latestMeasurements(rollout).map(({ metric, latest }) => [
          metric,
          formatValue(latest?.value),
          latest?.verdict ?? 'not checked yet',
          formatRange(ranges.get(metric)),
          latest ? `${latest.at} (${age(latest.at, now)} ago)` : NONE,
        ]),
      ),
    );
  }

  lines.push(
    ...section(
      'Conditions:',
      ['TYPE', 'STATUS', 'REASON', 'AGE', 'MESSAGE'],
      (s?.conditions ?? []).map((c) => [
        c.type,
        c.status,
        c.reason,
        age(c.lastTransitionTime, now),
        oneLine(c.message) || NONE,
      ]),
    ),
    ...section(
      'Events:',
      ['TYPE', 'REASON', 'AGE', 'MESSAGE'],
      recentEvents(events).map((e) => [
        e.type ?? NONE,
        e.reason ?? NONE,
        `${age(new Date(eventTime(e)), now)}${(e.count ?? 1) > 1 ? ` (x${e.count})` : ''}`,
        oneLine(e.message ?? ''),
      ]),
    ),
  );
  return lines.join('\n');
}
