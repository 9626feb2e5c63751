/**
 * Structured logs of the runtime (and of the local host, which reuses this through runtime/index.ts): one JSON line
 * per record, `{"event", "level", "time", ...fields}` — `event` stays the first key so `parseRuntimeEvent`
 * (ready.ts) keeps reading the readiness lines — or, when the stream is a terminal, one human-readable line.
 * `LOG_LEVEL` (debug | info | warn | error; default info) drops records below it; the readiness events
 * (`listening`, `ready`, `init_failed`, `error`, `stopping`) are always written, whatever the level.
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export type LogRecord = Record<string, unknown> & { event: string };

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Events a process watching the runtime waits for (ready.ts): never filtered out. */
const ALWAYS = new Set(['listening', 'ready', 'init_failed', 'error', 'stopping']);

/** The level of `LOG_LEVEL` (case-insensitive; `warning` = `warn`); unknown or absent → info. */
export function logLevelOf(value: string | undefined): LogLevel {
  const v = (value ?? '').trim().toLowerCase();
  if (v === 'warning') return 'warn';
  return v in LEVELS ? (v as LogLevel) : 'info';
}

/** The level of a record: its own `level`, else `error` for errors, else info. */
function recordLevel(r: LogRecord): LogLevel {
  if (typeof r.level === 'string' && r.level in LEVELS) return r.level as LogLevel;
  if (r.event === 'error' || r.event === 'init_failed' || r.event === 'worker_init_failed') return 'error';
  if (r.event === 'worker_exit' || r.event === 'model_data_dropped') return 'warn';
  return 'info';
}

export interface LoggerOptions {
  /** Default: process.stdout. */
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Default: `LOG_LEVEL` of the environment. */
  level?: LogLevel;
  /** Human-readable lines instead of JSON (default: when the stream is a terminal). */
  pretty?: boolean;
  /** Fields added to every record (e.g. `{ component: 'host' }`), after event/level/time. */
  base?: Record<string, unknown>;
}

export type Logger = ((record: LogRecord) => void) & { readonly level: LogLevel };

function prettyValue(v: unknown): string {
  if (typeof v === 'string') return /[\s"=]/.test(v) ? JSON.stringify(v) : v;
  return JSON.stringify(v);
}

/** One line of a record: JSON (event first), or `time LEVEL event message key=value …` for a terminal. */
export function formatRecord(r: LogRecord, pretty: boolean, base: Record<string, unknown> = {}): string {
  const { event, level: _l, time, message, ...rest } = r;
  const level = recordLevel(r);
  const t = typeof time === 'string' ? time : new Date().toISOString();
  if (!pretty) return JSON.stringify({ event, level, time: t, ...base, ...(message !== undefined ? { message } : {}), ...rest });
  const fields = Object.entries({ ...base, ...rest }).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${prettyValue(v)}`);
  return [t, level.toUpperCase().padEnd(5), event, ...(message !== undefined ? [String(message)] : []), ...fields].join(' ');
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const stream = opts.stream ?? process.stdout;
  const level = opts.level ?? logLevelOf(process.env.LOG_LEVEL);
  const pretty = opts.pretty ?? stream.isTTY === true;
  const min = LEVELS[level];
  const log = (r: LogRecord) => {
    if (!ALWAYS.has(r.event) && LEVELS[recordLevel(r)] < min) return;
    stream.write(formatRecord(r, pretty, opts.base) + '\n');
  };
  return Object.assign(log, { level });
}

/** A `(message) => void` logger (the local host's) writing `{"event": event, "level", "time", "message"}` records. */
export function messageLogger(event: string, opts: LoggerOptions = {}): (message: string, level?: LogLevel) => void {
  const log = createLogger(opts);
  return (message, level = /failed|error/i.test(message) ? 'warn' : 'info') => log({ event, level, message });
}
