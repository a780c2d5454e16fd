// The promotion window of SPEC §2 (`spec.window`): whether a cron schedule is open at an instant in a time
// zone, and when it next opens. Outside it no step advances (SPEC §4); rollback never waits for it.
//
// node-cron decides every match: its createTask() returns a task whose match(date) evaluates the
// expression against any instant in the task's time zone (DST included), without starting it. Its
// parse() gives the expanded fields, which only tell the forward search how far it may skip. node-cron's
// own next-run search cannot start from a given instant (getNextRun reads the real clock), hence ours.
// Its semantics are node-cron's: a restricted day-of-month and day-of-week must both match (Vixie cron
// would accept either), and ranges may wrap ("22-2" is 22:00 to 02:59).
import { createTask, parse, validateDetailed, type CronFieldError, type ParsedFields } from 'node-cron';

export interface WindowSpec {
  schedule: string;
  /** IANA name; default UTC. */
  timeZone?: string;
}

/** What the rollout machine observes (src/machine/types.ts `Observation.window`). */
export interface WindowState {
  open: boolean;
  /** Start of the next open minute (epoch ms) when closed, if one falls within WINDOW_HORIZON_MS. */
  nextOpenAt?: number;
}

export interface Window {
  readonly schedule: string;
  /** The canonical zone name, e.g. "Europe/Berlin" for "europe/berlin"; "UTC" by default. */
  readonly timeZone: string;
  /** Open when the minute containing `nowMs` matches the schedule in the window's time zone. */
  state(nowMs: number): WindowState;
}

export type WindowField = 'spec.window.schedule' | 'spec.window.timeZone';

export interface WindowError {
  field: WindowField;
  reason: 'InvalidSchedule' | 'InvalidTimeZone';
  /** Names the field and says how to fix it, for a Valid=False condition. */
  message: string;
}

export type WindowResult = { ok: true; value: Window } | { ok: false; error: WindowError };

const MINUTE_MS = 60_000;
const MINUTES_PER_DAY = 1440;

/**
 * How far ahead the next opening is searched: four years and a day, so even a window that opens
 * only on 29 February is found. Beyond it, a closed window reports no nextOpenAt.
 */
export const WINDOW_HORIZON_MS = (4 * 365 + 2) * MINUTES_PER_DAY * MINUTE_MS;

const EXAMPLE = '"* 9-16 * * 1-5" (09:00 to 16:59, Monday to Friday)';
const FIELDS = 'five fields: minute hour day-of-month month day-of-week';

const FIELD_HELP: Record<string, string> = {
  minute: 'the minute field takes 0-59',
  hour: 'the hour field takes 0-23',
  dayOfMonth: 'the day-of-month field takes 1-31, L, L-n or nW',
  month: 'the month field takes 1-12 or JAN-DEC',
  dayOfWeek: 'the day-of-week field takes 0-7 (0 and 7 are Sunday), SUN-SAT, d#n or dL',
};

export function compileWindow(spec: WindowSpec): WindowResult {
  const problem = scheduleProblem(spec.schedule);
  if (problem !== undefined) {
    return invalid('spec.window.schedule', 'InvalidSchedule', `spec.window.schedule ${problem}`);
  }
  const timeZone = canonicalTimeZone(spec.timeZone);
  if (timeZone === undefined) {
    return invalid(
      'spec.window.timeZone',
      'InvalidTimeZone',
      `spec.window.timeZone ${JSON.stringify(spec.timeZone)} is not a time zone this controller knows; ` +
        'use an IANA name such as "Europe/Berlin" or "America/New_York", or leave it out for UTC',
    );
  }
  const fields = parse(spec.schedule);
  const full = cronMatcher(spec.schedule, timeZone);
  // Same days as the schedule, any time of day: lets the search skip a whole closed day at once.
  const day = cronMatcher(
    `* * ${[fields.dayOfMonth, fields.month, fields.dayOfWeek].map(list).join(' ')}`,
    timeZone,
  );
  const wall = wallClock(timeZone);
  const next = nextCandidate(fields);

  return {
    ok: true,
    value: {
      schedule: spec.schedule,
      timeZone,
      state(nowMs) {
        const minute = Math.floor(nowMs / MINUTE_MS) * MINUTE_MS;
        if (full(minute)) return { open: true };
        const nextOpenAt = search(minute + MINUTE_MS, minute + WINDOW_HORIZON_MS, { full, day, wall, next });
        return nextOpenAt === undefined ? { open: false } : { open: false, nextOpenAt };
      },
    },
  };
}

function invalid(field: WindowField, reason: WindowError['reason'], message: string): WindowResult {
  return { ok: false, error: { field, reason, message } };
}

function canonicalTimeZone(timeZone: string | undefined): string | undefined {
  if (timeZone === undefined) return 'UTC';
  if (typeof timeZone !== 'string' || timeZone.trim() === '') return undefined;
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone }).resolvedOptions().timeZone;
  } catch {
    return undefined;
  }
}

/** What is wrong with the expression, worded to follow "spec.window.schedule", or undefined. */
function scheduleProblem(schedule: unknown): string | undefined {
  if (typeof schedule !== 'string' || schedule.trim() === '')
    return `is empty; give ${FIELDS}, e.g. ${EXAMPLE}`;
  const quoted = JSON.stringify(schedule);
  const count = schedule.trim().split(/\s+/).length;
  // node-cron also takes a leading seconds field; a window is open or closed per minute, so refuse it
  // rather than let "*/10 * * * * *" look like it means something.
  if (count === 6) return `${quoted} has a seconds field; a window is matched per minute, so give ${FIELDS}`;
  const result = validateDetailed(schedule);
  if (result.valid) return undefined;
  const fieldErrors = result.errors.filter((e) => e.field in FIELD_HELP);
  if (fieldErrors.length === 0) {
    const first = result.errors[0]?.message ?? 'is not a cron expression';
    return `${quoted} is not a cron expression (${first}); give ${FIELDS}, e.g. ${EXAMPLE}`;
  }
  const [, , dayOfMonth, month] = schedule.trim().split(/\s+/);
  return `${quoted}: ${fieldErrors.map((e) => describeFieldError(e, dayOfMonth, month)).join('; ')}`;
}

function describeFieldError(error: CronFieldError, dayOfMonth?: string, month?: string): string {
  if (/impossible/.test(error.message)) {
    return `day-of-month ${JSON.stringify(dayOfMonth)} never falls in month ${JSON.stringify(month)}, so the window would never open`;
  }
  return `${JSON.stringify(error.value ?? '')} is not valid: ${FIELD_HELP[error.field]}`;
}

/** node-cron's matcher for one expression, at the start of a minute given in epoch ms. */
function cronMatcher(expression: string, timeZone: string): (minuteMs: number) => boolean {
  // The time zone is always passed: without one node-cron would match in the host's local zone.
  const task = createTask(expression, () => undefined, { timezone: timeZone });
  // createTask registers the task in node-cron's process-wide registry; destroying it at once keeps
  // compiled windows from piling up there. match() stays usable: it only consults the parsed pattern.
  void task.destroy();
  return (minuteMs) => task.match(new Date(minuteMs));
}

/** A parsed field back into node-cron syntax ("1,2,3", "L,15W", "5#2"). */
function list(values: readonly (number | string)[]): string {
  return values.join(',');
}

interface Wall {
  hour: number;
  minute: number;
  /** Minutes east of UTC; a change between two instants means a DST (or other) transition lies between. */
  offset: number;
}

/** The wall-clock hour, minute and UTC offset in the zone, at the start of a minute. */
function wallClock(timeZone: string): (minuteMs: number) => Wall {
  const format = new Intl.DateTimeFormat('en-US', {
    timeZone,
    hourCycle: 'h23',
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: 'numeric',
    minute: 'numeric',
  });
  return (minuteMs) => {
    const parts: Record<string, number> = {};
    for (const part of format.formatToParts(minuteMs)) {
      if (part.type !== 'literal') parts[part.type] = Number(part.value);
    }
    const local = Date.UTC(parts.year!, parts.month! - 1, parts.day!, parts.hour!, parts.minute!);
    return { hour: parts.hour!, minute: parts.minute!, offset: (local - minuteMs) / MINUTE_MS };
  };
}

/**
 * Minutes from a wall-clock time to the next one the hour and minute fields allow later the same day,
 * or to midnight when none is left.
 */
function nextCandidate(fields: ParsedFields): (wall: Wall) => number {
  const hours = [...new Set(fields.hour)].sort((a, b) => a - b);
  const minutes = [...new Set(fields.minute)].sort((a, b) => a - b);
  return ({ hour, minute }) => {
    const now = hour * 60 + minute;
    for (const h of hours) {
      if (h < hour) continue;
      const m = minutes.find((m) => h * 60 + m > now);
      if (m !== undefined) return h * 60 + m - now;
    }
    return MINUTES_PER_DAY - now;
  };
}

interface Search {
  full: (minuteMs: number) => boolean;
  day: (minuteMs: number) => boolean;
  wall: (minuteMs: number) => Wall;
  next: (wall: Wall) => number;
}

/**
 * The first minute in [from, until] that matches, walking forward in skips: a closed day to the next
 * midnight, an open day to the next hour and minute its fields allow. Skips are wall-clock arithmetic,
 * valid only while the UTC offset holds, so a skip across a transition stops at the transition's first
 * minute and the walk goes on from there under the new offset.
 */
function search(from: number, until: number, { full, day, wall, next }: Search): number | undefined {
  let t = from;
  let here = wall(t);
  while (t <= until) {
    let skip: number;
    if (!day(t)) skip = MINUTES_PER_DAY - (here.hour * 60 + here.minute);
    else if (full(t)) return t;
    else skip = next(here);
    let target = t + skip * MINUTE_MS;
    let there = wall(target);
    if (there.offset !== here.offset) {
      target = firstMinuteWithOtherOffset(t, target, here.offset, wall);
      there = wall(target);
    }
    t = target;
    here = there;
  }
  return undefined;
}

/** Binary search for the first minute in (from, to] whose offset is not `offset`; `to` is known to be one. */
function firstMinuteWithOtherOffset(
  from: number,
  to: number,
  offset: number,
  wall: (minuteMs: number) => Wall,
): number {
  let lo = from; // offset holds here
  let hi = to; // offset differs here
  while (hi - lo > MINUTE_MS) {
    const mid = lo + Math.floor((hi - lo) / MINUTE_MS / 2) * MINUTE_MS;
    if (wall(mid).offset === offset) lo = mid;
    else hi = mid;
  }
  return hi;
}
