// Query templates: finds the {{ variables }} of a metric's PromQL, validates them and renders them.
// A value is escaped for where it lands (inside "…", '…', `…`, a regex matcher, a comment, or bare), so no
// value can change the query.

/** The variables every query may use (SPEC §2); `target` is Flagger's name for the canary. */
export const BUILTIN_VARIABLES = [
  'namespace',
  'name',
  'service',
  'stable',
  'canary',
  'target',
  'interval',
] as const;
export type BuiltinVariable = (typeof BUILTIN_VARIABLES)[number];

/** What a query is rendered with. `target` is not here: it is always the canary. */
export interface TemplateValues {
  namespace: string;
  /** The Rollout's name. */
  name: string;
  service: string;
  stable: string;
  canary: string;
  /** The analysis interval; must be a PromQL duration (30s, 1m, 1m30s). */
  interval: string;
  /** The metric's templateVariables, used as {{ variables.KEY }}. */
  variables?: Record<string, string>;
}

export type TemplateErrorKind = 'malformed' | 'unknown-variable' | 'invalid-interval' | 'unsafe-value';

export interface TemplateError {
  kind: TemplateErrorKind;
  /** Names the metric (when known), the variable and what to do, for a Valid=False condition. */
  message: string;
  /** The placeholder's name as written, e.g. "canary" or "variables.direction". */
  variable?: string;
  metric?: string;
}

export type TemplateResult<T> = { ok: true; value: T } | { ok: false; error: TemplateError };

/** Where a placeholder sits in the PromQL, which decides how its value must be written. */
type Context = 'bare' | 'double-quoted' | 'single-quoted' | 'raw' | 'comment';

interface Placeholder {
  /** As written inside the braces, trimmed: "canary", "variables.key". */
  variable: string;
  context: Context;
  /** Inside the string of a regex matcher (=~ or !~): the value must match itself only, so "web.v2" not "webXv2". */
  regex: boolean;
}

type Segment = string | Placeholder;

const PLACEHOLDER_NAME = /^(?:[A-Za-z_][A-Za-z0-9_]*|variables\.[A-Za-z0-9_][A-Za-z0-9_.-]*)$/;

/** Prometheus's duration syntax (units largest first), as `[{{ interval }}]` and `offset` need it. */
const PROMQL_DURATION = /^(?:\d+y)?(?:\d+w)?(?:\d+d)?(?:\d+h)?(?:\d+m)?(?:\d+s)?(?:\d+ms)?$/;

const NUMBER = /^[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|0[xX][0-9a-fA-F]+)$/;
const IDENTIFIER = /^[A-Za-z_:][A-Za-z0-9_:]*$/;
/** Bare words that would change how the expression around them parses. */
const PROMQL_KEYWORDS = new Set([
  'and',
  'or',
  'unless',
  'atan2',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'offset',
  'bool',
]);

/** True for a positive PromQL duration such as 30s, 1m, 1m30s, 500ms. */
export function isPromQLDuration(text: string): boolean {
  return text !== '' && PROMQL_DURATION.test(text) && /[1-9]/.test(text);
}

/**
 * Escapes `value` for the inside of a PromQL string literal opened with `quote`. PromQL (like Go)
 * rejects an escaped quote of the other kind, so only the enclosing quote is escaped.
 */
export function escapePromQLString(value: string, quote: '"' | "'"): string {
  let out = '';
  for (const ch of value) {
    const cp = ch.codePointAt(0) ?? 0;
    if (ch === '\\') out += '\\\\';
    else if (ch === quote) out += `\\${quote}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) out += `\\u${cp.toString(16).padStart(4, '0')}`;
    // A lone surrogate cannot be sent as UTF-8; fetch would turn it into U+FFFD anyway.
    else if (cp >= 0xd800 && cp <= 0xdfff) out += '\ufffd';
    else out += ch;
  }
  return out;
}

/** RE2's metacharacters, as Go's regexp.QuoteMeta escapes them; Prometheus compiles matchers with RE2. */
const RE2_META = /[\\.+*?()|[\]{}^$]/g;

/** `value` as an RE2 regex that matches exactly `value`: every metacharacter backslash-escaped. */
export function escapeRegex(value: string): string {
  return value.replace(RE2_META, '\\$&');
}

/** The distinct variables a query uses, in order of first use; an error if one is unknown or malformed. */
export function queryVariables(query: string, metric?: string): TemplateResult<string[]> {
  const parsed = parse(query, metric);
  if (!parsed.ok) return parsed;
  const names: string[] = [];
  for (const seg of parsed.value) {
    if (typeof seg === 'string' || names.includes(seg.variable)) continue;
    if (!isBuiltin(seg.variable) && !seg.variable.startsWith('variables.')) {
      return { ok: false, error: unknownVariable(seg.variable, metric, undefined) };
    }
    names.push(seg.variable);
  }
  return { ok: true, value: names };
}

/**
 * Checks a query as the controller validates a spec, before any value of the run is known:
 * placeholders well formed, every variable known, every templateVariables value safe where it is used.
 */
export function validateQuery(
  query: string,
  opts: { metric?: string; variables?: Record<string, string> } = {},
): TemplateError | undefined {
  const parsed = parse(query, opts.metric);
  if (!parsed.ok) return parsed.error;
  const variables = opts.variables ?? {};
  for (const seg of parsed.value) {
    if (typeof seg === 'string' || isBuiltin(seg.variable)) continue;
    const value = templateVariable(seg.variable, variables);
    if (value === undefined) return unknownVariable(seg.variable, opts.metric, variables);
    const written = encode(seg, value, opts.metric);
    if (!written.ok) return written.error;
  }
  return undefined;
}

/** The query with every placeholder replaced, each value written safely for its place; one pass, no re-expansion. */
export function renderQuery(query: string, values: TemplateValues, metric?: string): TemplateResult<string> {
  const parsed = parse(query, metric);
  if (!parsed.ok) return parsed;
  const variables = values.variables ?? {};
  let out = '';
  for (const seg of parsed.value) {
    if (typeof seg === 'string') {
      out += seg;
      continue;
    }
    const value = isBuiltin(seg.variable)
      ? builtinValue(seg.variable, values)
      : templateVariable(seg.variable, variables);
    if (value === undefined) return { ok: false, error: unknownVariable(seg.variable, metric, variables) };
    if (seg.variable === 'interval' && !isPromQLDuration(value)) {
      return {
        ok: false,
        error: {
          kind: 'invalid-interval',
          variable: 'interval',
          ...(metric ? { metric } : {}),
          message: `${subject(metric)}{{ interval }} is ${JSON.stringify(value)}, which is not a PromQL duration (e.g. 30s, 1m, 1m30s)`,
        },
      };
    }
    const written = encode(seg, value, metric);
    if (!written.ok) return written;
    out += written.value;
  }
  return { ok: true, value: out };
}

function isBuiltin(name: string): name is BuiltinVariable {
  return (BUILTIN_VARIABLES as readonly string[]).includes(name);
}

function builtinValue(name: BuiltinVariable, values: TemplateValues): string {
  return name === 'target' ? values.canary : values[name];
}

function templateVariable(name: string, variables: Record<string, string>): string | undefined {
  if (!name.startsWith('variables.')) return undefined;
  const key = name.slice('variables.'.length);
  return Object.hasOwn(variables, key) ? variables[key] : undefined;
}

function subject(metric: string | undefined): string {
  return metric ? `metric "${metric}": ` : '';
}

function unknownVariable(
  variable: string,
  metric: string | undefined,
  variables: Record<string, string> | undefined,
): TemplateError {
  const known = [...BUILTIN_VARIABLES, ...Object.keys(variables ?? {}).map((k) => `variables.${k}`)];
  const hint =
    variables === undefined
      ? `known: ${BUILTIN_VARIABLES.join(', ')}, variables.KEY`
      : `known: ${known.join(', ')}`;
  return {
    kind: 'unknown-variable',
    variable,
    ...(metric ? { metric } : {}),
    message: `${subject(metric)}unknown template variable "${variable}" in the query (${hint})`,
  };
}

/** Writes a value for its place: escaped inside quotes, refused where it could break out. */
function encode(p: Placeholder, value: string, metric: string | undefined): TemplateResult<string> {
  const unsafe = (why: string): TemplateResult<string> => ({
    ok: false,
    error: {
      kind: 'unsafe-value',
      variable: p.variable,
      ...(metric ? { metric } : {}),
      message: `${subject(metric)}the value ${JSON.stringify(value)} of {{ ${p.variable} }} ${why}`,
    },
  });
  // A regex is escaped first, then written as the string it sits in (its backslashes doubled in "…").
  const literal = p.regex ? escapeRegex(value) : value;
  switch (p.context) {
    case 'double-quoted':
      return { ok: true, value: escapePromQLString(literal, '"') };
    case 'single-quoted':
      return { ok: true, value: escapePromQLString(literal, "'") };
    case 'raw':
      // A backtick string has no escapes: the only way to keep a value inside is to refuse a backtick.
      return value.includes('`')
        ? unsafe('contains a backtick and sits in a `raw string`; use a "double-quoted" string instead')
        : { ok: true, value: literal };
    case 'comment':
      return /[\r\n]/.test(value)
        ? unsafe('contains a line break and sits in a # comment')
        : { ok: true, value };
    case 'bare':
      return isBareToken(value)
        ? { ok: true, value }
        : unsafe(
            'sits outside quotes, where only a number, a duration or a name is allowed; quote it, e.g. "{{ ' +
              p.variable +
              ' }}"',
          );
  }
}

/** A value that stays one token outside quotes: it cannot add operators, brackets, quotes or keywords. */
function isBareToken(value: string): boolean {
  if (NUMBER.test(value) || isPromQLDuration(value)) return true;
  return IDENTIFIER.test(value) && !PROMQL_KEYWORDS.has(value.toLowerCase());
}

/**
 * Splits a query into text and placeholders, tracking PromQL's lexical context so each placeholder knows
 * whether it sits in a string, a comment or bare code, and whether that string is a regex matcher's.
 * Placeholders are opaque to that tracking because their rendered values never change it.
 */
function parse(query: string, metric: string | undefined): TemplateResult<Segment[]> {
  const segments: Segment[] = [];
  let context: Context = 'bare';
  let text = '';
  let i = 0;
  // The last two characters of bare code, spaces and comments skipped: "=~" or "!~" before a quote makes
  // the string a regex (PromQL has no other ~ operator, and allows spaces between a matcher's parts).
  let lastCode = '';
  let inRegex = false;
  while (i < query.length) {
    if (query.startsWith('{{', i)) {
      const end = query.indexOf('}}', i + 2);
      const inner = end < 0 ? undefined : query.slice(i + 2, end).trim();
      if (inner === undefined || !PLACEHOLDER_NAME.test(inner)) {
        const written = end < 0 ? query.slice(i, i + 30) : query.slice(i, end + 2);
        return {
          ok: false,
          error: {
            kind: 'malformed',
            ...(metric ? { metric } : {}),
            message:
              end < 0
                ? `${subject(metric)}"${written}" opens a template variable that is never closed with }}`
                : `${subject(metric)}"${written}" is not a template variable; write e.g. {{ canary }} or {{ variables.KEY }}`,
          },
        };
      }
      segments.push(text, { variable: inner, context, regex: context !== 'bare' && inRegex });
      if (context === 'bare') lastCode = '';
      text = '';
      i = end + 2;
      continue;
    }
    const ch = query[i] as string;
    text += ch;
    i++;
    switch (context) {
      case 'bare':
        if (ch === '"' || ch === "'" || ch === '`') {
          context = ch === '"' ? 'double-quoted' : ch === "'" ? 'single-quoted' : 'raw';
          inRegex = lastCode === '=~' || lastCode === '!~';
          lastCode = ch;
        } else if (ch === '#') context = 'comment';
        else if (!/\s/.test(ch)) lastCode = (lastCode + ch).slice(-2);
        break;
      case 'double-quoted':
      case 'single-quoted':
        if (ch === '\\' && i < query.length && !query.startsWith('{{', i)) {
          text += query[i];
          i++;
        } else if (ch === (context === 'double-quoted' ? '"' : "'")) context = 'bare';
        break;
      case 'raw':
        if (ch === '`') context = 'bare';
        break;
      case 'comment':
        if (ch === '\n' || ch === '\r') context = 'bare';
        break;
    }
  }
  if (text) segments.push(text);
  return { ok: true, value: segments.filter((s) => s !== '') };
}
