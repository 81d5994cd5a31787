/**
 * JSON-lines logging. One logger is created at start and passed down; modules
 * never print on their own. Fields are the caller's responsibility: log ids and
 * sizes, never tokens, cookies or event data (STYLE.md, "Logs").
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

export function isLogLevel(value: string): value is LogLevel {
  return value in RANK;
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
    const record: Record<string, unknown> = { ts: new Date().toISOString(), level, event, ...base };
    if (fields) {
      for (const [key, value] of Object.entries(fields)) record[key] = key === 'error' ? describeError(value) : value;
    }
    sink(JSON.stringify(record));
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
