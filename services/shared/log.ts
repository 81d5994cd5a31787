/**
 * JSON-lines logging. One logger is created at start and passed down; modules
 * never print on their own. Fields are the caller's responsibility: log ids and
 * sizes, never tokens, cookies or event data (docs/operations.md, "Logs").
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Readonly<Record<string, unknown>>;

export interface Logger {
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
  /** Cheap guard for hot paths: build fields only when they will be written. */
  enabled(level: LogLevel): boolean;
}

const RANK: Readonly<Record<LogLevel, number>> = { debug: 10, info: 20, warn: 30, error: 40 };
const RESERVED: ReadonlySet<string> = new Set(['ts', 'level', 'event']);

/** Logging never throws into its caller: a field JSON cannot hold (BigInt, a cycle) is replaced. */
function serialize(record: Record<string, unknown>): string {
  try {
    return JSON.stringify(record, (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value));
  } catch {
    return JSON.stringify({ ts: record.ts, level: record.level, event: record.event, logError: 'fields could not be serialized' });
  }
}

export function isLogLevel(value: string): value is LogLevel {
  return Object.hasOwn(RANK, value);
}

/** Errors become plain fields; `cause` chains are followed so wrapped SDK faults stay visible. */
function describeError(error: unknown, depth = 0): unknown {
  if (!(error instanceof Error)) return error;
  const code = (error as { code?: unknown }).code;
  return {
    name: error.name,
    message: error.message,
    ...(code === undefined ? {} : { code }),
    ...(error.stack === undefined ? {} : { stack: error.stack }),
    ...(error.cause !== undefined && depth < 3 ? { cause: describeError(error.cause, depth + 1) } : {}),
  };
}

export interface LoggerOptions {
  readonly level?: LogLevel;
  readonly sink?: (line: string) => void;
  readonly base?: LogFields;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const threshold = RANK[options.level ?? 'info'];
  const sink = options.sink ?? ((line: string) => process.stdout.write(line + '\n'));
  const base = options.base ?? {};

  const write = (level: LogLevel, event: string, fields?: LogFields): void => {
    if (RANK[level] < threshold) return;
    const record: Record<string, unknown> = { ts: new Date().toISOString(), level, event };
    for (const source of [base, fields ?? {}]) {
      for (const [key, value] of Object.entries(source)) {
        // ts, level and event identify the line; a field may not overwrite them.
        if (!RESERVED.has(key)) record[key] = value instanceof Error ? describeError(value) : value;
      }
    }
    sink(serialize(record));
  };

  return {
    debug: (event, fields) => write('debug', event, fields),
    info: (event, fields) => write('info', event, fields),
    warn: (event, fields) => write('warn', event, fields),
    error: (event, fields) => write('error', event, fields),
    child: (fields) => createLogger({ level: options.level ?? 'info', sink, base: { ...base, ...fields } }),
    enabled: (level) => RANK[level] >= threshold,
  };
}

/** For tests and tools that must stay quiet. */
export const silentLogger: Logger = createLogger({ level: 'error', sink: () => undefined });
