// The controller's log: one line per record, JSON or key=value text, to stderr, with a level floor.
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFormat = 'json' | 'text';
export type Fields = Record<string, unknown>;

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  with(fields: Fields): Logger;
}

function text(value: unknown): string {
  const s =
    value instanceof Error ? value.message : typeof value === 'string' ? value : JSON.stringify(value);
  return /[\s"=]/.test(s ?? '') ? JSON.stringify(s) : String(s);
}

export function createLogger(
  level: LogLevel = 'info',
  format: LogFormat = 'text',
  write: (line: string) => void = (line) => process.stderr.write(line),
  base: Fields = {},
): Logger {
  const emit = (lvl: LogLevel, msg: string, fields: Fields = {}) => {
    if (RANK[lvl] < RANK[level]) return;
    const all = { ...base, ...fields };
    const time = new Date().toISOString();
    if (format === 'json') {
      const plain = Object.fromEntries(
        Object.entries(all).map(([k, v]) => [k, v instanceof Error ? v.message : v]),
      );
      write(`${JSON.stringify({ time, level: lvl, msg, ...plain })}\n`);
    } else {
      const kv = Object.entries(all).map(([k, v]) => `${k}=${text(v)}`);
      write(`${time} ${lvl.toUpperCase().padEnd(5)} ${msg}${kv.length ? ` ${kv.join(' ')}` : ''}\n`);
    }
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    with: (fields) => createLogger(level, format, write, { ...base, ...fields }),
  };
}
