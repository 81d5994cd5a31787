import { randomBytes } from 'node:crypto';
import { isLogLevel, type LogLevel } from '../shared/log';
import type { TabPolicy } from '../protocol/stream-terms';
import { isNodeId } from '../protocol/bus-message';
import type { RateBudget } from '../ports/rate-limiter';
import { readRedis, type RedisConfig } from './redis-config';
import { ConfigError, EnvReader, readAwsSettings, readPublishSettings, readQueuePrefix, type AwsSettings, type Env, type PublishSettings } from '../shared/settings';

export { ConfigError } from '../shared/settings';
export type { RedisConfig, RedisTarget } from './redis-config';

export type Mode = 'local' | 'aws' | 'redis';

export type AuthConfig = (
  | { readonly kind: 'hs256'; readonly secret: Uint8Array; readonly issuer?: string; readonly audience?: string }
  | { readonly kind: 'jwks'; readonly jwksUrl: URL; readonly issuer: string; readonly audience: string }
) & {
  /** Seconds by which `exp` may have passed and `nbf` be ahead (HERALD_JWT_CLOCK_TOLERANCE_S). @default 0 */
  readonly clockToleranceSeconds?: number;
};

/**
 * The most HERALD_JWT_CLOCK_TOLERANCE_S may be. It covers an identity
 * provider's clock a little off the nodes'; more would mostly lengthen the
 * life of stolen tokens.
 */
export const MAX_JWT_CLOCK_TOLERANCE_S = 60;

export interface AwsConfig extends AwsSettings {
  readonly queuePrefix: string;
}

export interface Config extends PublishSettings {
  readonly mode: Mode;
  /** Dev mode: no secret was configured, so this process made its own. Only in `local` mode. */
  readonly dev: boolean;
  readonly host: string;
  readonly port: number;
  readonly nodeId: string | undefined;
  readonly auth: AuthConfig;
  readonly authCookie: string;
  /** Bearer token for `POST /publish`; without one the route is not served. */
  readonly publishToken: string | undefined;
  readonly tabPolicy: TabPolicy;
  readonly maxTabs: number;
  readonly heartbeatMs: number;
  /** Centre of the jittered `retry:` the stream announces. */
  readonly retryMs: number;
  /** Unsent bytes a stream may hold for longer than `stallTimeoutMs` (and 8× that at any instant). */
  readonly maxQueuedBytes: number;
  readonly stallTimeoutMs: number;
  readonly maxConnections: number;
  /**
   * Sockets the server holds at most, streams and every other request
   * together; past it new sockets are closed unanswered. A last resort below
   * the open-files limit: the stream caps answer first, with a status.
   */
  readonly maxSockets: number;
  /** Deadline for receiving a whole request (headers and body) that is not a stream; an open stream is not affected. */
  readonly requestTimeoutMs: number;
  /** Open streams from one client address (behind a NAT, a whole office shares one). */
  readonly maxConnectionsPerAddress: number;
  readonly connectRatePerAddress: RateBudget;
  /** Take the client address from the last `X-Forwarded-For` hop (behind the ALB), not the socket. */
  readonly trustProxy: boolean;
  readonly historyMaxBytes: number;
  readonly replayLimit: number;
  readonly drainMs: number;
  /** The longest a stream stays open before it is closed with `max_age` (HERALD_MAX_STREAM_S); 0: no cap. */
  readonly maxStreamMs: number;
  readonly logLevel: LogLevel;
  readonly aws: AwsConfig | undefined;
  readonly redis: RedisConfig | undefined;
}

/** The longest cap HERALD_MAX_STREAM_S takes: 7 days, the longest replay retention. */
export const MAX_STREAM_S = 7 * 24 * 3600;

/** Fargate sends SIGKILL 120 s after SIGTERM at most; the drain and the exit must fit inside. */
export const MAX_DRAIN_MS = 110_000;

function readAuth(read: EnvReader, mode: Mode): { auth: AuthConfig; dev: boolean } {
  const secret = read.raw('HERALD_JWT_SECRET');
  const jwks = read.raw('HERALD_JWKS_URL');
  if (secret !== undefined && jwks !== undefined) {
    throw new ConfigError('HERALD_JWKS_URL', 'set either HERALD_JWT_SECRET or HERALD_JWKS_URL, not both');
  }
  if (jwks !== undefined) {
    let url: URL;
    try {
      url = new URL(jwks);
    } catch {
      throw new ConfigError('HERALD_JWKS_URL', 'is not a URL');
    }
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHost(url.hostname))) {
      throw new ConfigError('HERALD_JWKS_URL', 'must be https (plain http only on loopback)');
    }
    const why = 'with HERALD_JWKS_URL, so tokens minted for another service are refused';
    return {
      auth: { kind: 'jwks', jwksUrl: url, issuer: read.required('HERALD_JWT_ISSUER', why), audience: read.required('HERALD_JWT_AUDIENCE', why) },
      dev: false,
    };
  }
  if (secret !== undefined) {
    // RFC 7518 §3.2: an HS256 key must be at least as long as the hash output.
    if (Buffer.byteLength(secret) < 32) throw new ConfigError('HERALD_JWT_SECRET', 'must be at least 32 bytes');
    const issuer = read.raw('HERALD_JWT_ISSUER');
    const audience = read.raw('HERALD_JWT_AUDIENCE');
    return {
      auth: {
        kind: 'hs256',
        secret: new TextEncoder().encode(secret),
        ...(issuer === undefined ? {} : { issuer }),
        ...(audience === undefined ? {} : { audience }),
      },
      dev: false,
    };
  }
  if (mode !== 'local') {
    // Each process of a fleet would make its own secret and refuse the tokens of the others.
    throw new ConfigError('HERALD_JWT_SECRET', `or HERALD_JWKS_URL is required in ${mode} mode (dev mode is local only)`);
  }
  return { auth: { kind: 'hs256', secret: randomBytes(32) }, dev: true };
}

/** Literal loopback addresses only: a DNS name that merely starts with "127." can point anywhere. */
function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127(\.\d{1,3}){3}$/.test(host);
}

function readAws(read: EnvReader, mode: Mode): AwsConfig | undefined {
  if (mode !== 'aws') return undefined;
  const why = 'in aws mode';
  const queuePrefix = readQueuePrefix(read, why);
  return { ...readAwsSettings(read, why), queuePrefix };
}

export function loadConfig(env: Env): Config {
  const read = new EnvReader(env);
  const mode = read.oneOf<Mode>('HERALD_MODE', 'local', ['local', 'aws', 'redis']);
  const { auth: keys, dev } = readAuth(read, mode);
  const auth: AuthConfig = { ...keys, clockToleranceSeconds: read.int('HERALD_JWT_CLOCK_TOLERANCE_S', 5, 0, MAX_JWT_CLOCK_TOLERANCE_S) };
  // A fleet's nodes sit behind a load balancer on other hosts; one local process is reached on loopback.
  const host = read.raw('HERALD_HOST') ?? (mode === 'local' ? '127.0.0.1' : '0.0.0.0');
  if (dev && !isLoopbackHost(host)) {
    throw new ConfigError('HERALD_HOST', 'dev mode (no HERALD_JWT_SECRET) only listens on loopback; set a secret to listen on other addresses');
  }
  const portName = read.raw('HERALD_PORT') === undefined && read.raw('PORT') !== undefined ? 'PORT' : 'HERALD_PORT';
  const nodeId = read.raw('HERALD_NODE_ID');
  if (nodeId !== undefined && !isNodeId(nodeId)) {
    throw new ConfigError('HERALD_NODE_ID', 'is 1-40 characters of A-Z a-z 0-9 _ - (and not "all")');
  }
  const publishToken = read.raw('HERALD_PUBLISH_TOKEN') ?? (dev ? randomBytes(24).toString('base64url') : undefined);
  if (publishToken !== undefined && publishToken.length < 16) {
    throw new ConfigError('HERALD_PUBLISH_TOKEN', 'must be at least 16 characters');
  }
  const heartbeatMs = read.int('HERALD_HEARTBEAT_MS', 15_000, 1_000, 300_000);
  const connectRate = read.int('HERALD_CONNECT_RATE_PER_IP', 20, 1, 1_000_000);
  const maxConnections = read.int('HERALD_MAX_CONNECTIONS', 16_000, 1, 10_000_000);
  // Room above the stream cap for publishes, health checks and refused streams, which get their status.
  const maxSockets = read.int('HERALD_MAX_SOCKETS', maxConnections + 1_000, 2, 10_000_000);
  if (maxSockets <= maxConnections) {
    throw new ConfigError('HERALD_MAX_SOCKETS', `must be above HERALD_MAX_CONNECTIONS (${maxConnections}), so a refused stream still gets its 503`);
  }

  return {
    mode,
    dev,
    host,
    port: read.int(portName, 8080, 0, 65_535),
    nodeId,
    auth,
    authCookie: read.raw('HERALD_AUTH_COOKIE') ?? 'herald_token',
    publishToken,
    tabPolicy: read.oneOf<TabPolicy>('HERALD_TAB_POLICY', 'single', ['single', 'multi']),
    maxTabs: read.int('HERALD_MAX_TABS', 5, 1, 100),
    heartbeatMs,
    retryMs: read.int('HERALD_RETRY_MS', 2_000, 100, 600_000),
    maxQueuedBytes: read.int('HERALD_MAX_QUEUED_BYTES', 1024 * 1024, 16 * 1024, 256 * 1024 * 1024),
    stallTimeoutMs: read.int('HERALD_STALL_TIMEOUT_MS', 10_000, 100, 600_000),
    maxConnections,
    maxSockets,
    requestTimeoutMs: read.int('HERALD_REQUEST_TIMEOUT_MS', 30_000, 1_000, 600_000),
    maxConnectionsPerAddress: read.int('HERALD_MAX_CONNECTIONS_PER_IP', 2_000, 1, 10_000_000),
    connectRatePerAddress: { perSecond: connectRate, burst: read.int('HERALD_CONNECT_BURST_PER_IP', Math.max(100, connectRate), 1, 10_000_000) },
    // Only the ALB of the aws shape is known to append the client's address. In front of a
    // redis fleet there may be none, or one that does not: trusting the header then lets
    // any client pick the address its per-address limits are counted against.
    trustProxy: read.bool('HERALD_TRUST_PROXY', mode === 'aws'),
    ...readPublishSettings(read),
    historyMaxBytes: read.int('HERALD_HISTORY_MAX_BYTES', 256 * 1024 * 1024, 1024 * 1024, 64 * 1024 * 1024 * 1024),
    replayLimit: read.int('HERALD_REPLAY_LIMIT', 1_000, 1, 100_000),
    drainMs: read.int('HERALD_DRAIN_MS', 30_000, 0, MAX_DRAIN_MS),
    maxStreamMs: read.int('HERALD_MAX_STREAM_S', 0, 0, MAX_STREAM_S) * 1000,
    logLevel: readLogLevel(read),
    aws: readAws(read, mode),
    redis: mode === 'redis' ? readRedis(read) : undefined,
  };
}

function readLogLevel(read: EnvReader): LogLevel {
  const value = read.raw('HERALD_LOG_LEVEL') ?? 'info';
  if (!isLogLevel(value)) throw new ConfigError('HERALD_LOG_LEVEL', `must be debug, info, warn or error, got "${value}"`);
  return value;
}
