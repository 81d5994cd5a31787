/**
 * Reading settings from the environment, for every entry point: the node, the
 * Lambda publisher and the janitor. A bad value throws a ConfigError naming the
 * variable; each entry point turns that into a clear stop.
 */
import { DEFAULT_MAX_DATA_BYTES, MAX_BATCH, MAX_DATA_BYTES_CEILING, MAX_TTL_SECONDS } from '../protocol/limits';
import type { RateBudget } from '../ports/rate-limiter';
import { NODE_QUEUE_SEPARATOR, QUEUE_PREFIX_PATTERN } from '../adapters/aws/bus-naming';

export type Env = Readonly<Record<string, string | undefined>>;

/** A bad setting: the message names the variable, and start-up stops. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
  }
}

export class EnvReader {
  constructor(private readonly env: Env) {}

  raw(name: string): string | undefined {
    const value = this.env[name];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if (!/^\d+$/.test(value)) throw new ConfigError(name, `expected a whole number, got "${value}"`);
    const n = Number(value);
    if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
    return n;
  }

  oneOf<T extends string>(name: string, fallback: T, allowed: readonly T[]): T {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if (!(allowed as readonly string[]).includes(value)) {
      throw new ConfigError(name, `must be one of ${allowed.join(', ')}, got "${value}"`);
    }
    return value as T;
  }

  bool(name: string, fallback: boolean): boolean {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if (value === 'true' || value === '1') return true;
    if (value === 'false' || value === '0') return false;
    throw new ConfigError(name, `must be true or false, got "${value}"`);
  }

  required(name: string, why: string): string {
    const value = this.raw(name);
    if (value === undefined) throw new ConfigError(name, `is required ${why}`);
    return value;
  }
}

/** What every publish path must agree on: limits, retention, the per-publisher budget. */
export interface PublishSettings {
  readonly maxDataBytes: number;
  readonly defaultTtlSeconds: number;
  readonly historyPerUser: number;
  readonly publishRate: RateBudget;
}

export function readPublishSettings(read: EnvReader): PublishSettings {
  const perSecond = read.int('HERALD_PUBLISH_RATE', 1_000, 1, 10_000_000);
  return {
    maxDataBytes: read.int('HERALD_MAX_DATA_BYTES', DEFAULT_MAX_DATA_BYTES, 1, MAX_DATA_BYTES_CEILING),
    defaultTtlSeconds: read.int('HERALD_HISTORY_TTL_SECONDS', 3_600, 0, MAX_TTL_SECONDS),
    historyPerUser: read.int('HERALD_HISTORY_SIZE', 100, 1, 100_000),
    // The burst must hold a whole batch, or a full batch could never be accepted.
    publishRate: { perSecond, burst: read.int('HERALD_PUBLISH_BURST', Math.max(2 * perSecond, MAX_BATCH), MAX_BATCH, 100_000_000) },
  };
}

/** Where the AWS shape keeps its state. */
export interface AwsSettings {
  readonly topicArn: string;
  readonly tableName: string;
}

export function readAwsSettings(read: EnvReader, why: string): AwsSettings {
  return { topicArn: read.required('HERALD_TOPIC_ARN', why), tableName: read.required('HERALD_TABLE_NAME', why) };
}

/**
 * Node queues are `<prefix>_<nodeId>` (SQS: at most 80 characters of
 * [A-Za-z0-9_-]), so the prefix is 1-39 of [A-Za-z0-9-] — no `_`, which
 * separates it from the node id, so no other deployment's prefix can start
 * with `<prefix>_` (see NODE_QUEUE_SEPARATOR).
 */
export function readQueuePrefix(read: EnvReader, why: string): string {
  const queuePrefix = read.required('HERALD_QUEUE_PREFIX', why);
  if (!QUEUE_PREFIX_PATTERN.test(queuePrefix)) {
    throw new ConfigError(
      'HERALD_QUEUE_PREFIX',
      `is 1-39 characters of A-Z a-z 0-9 - (no "_": queues are named <prefix>${NODE_QUEUE_SEPARATOR}<node id>), got "${queuePrefix}"`,
    );
  }
  return queuePrefix;
}
