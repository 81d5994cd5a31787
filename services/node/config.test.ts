import { describe, expect, it } from 'vitest';
import { ConfigError, MAX_DRAIN_MS, MAX_JWT_CLOCK_TOLERANCE_S, MAX_STREAM_S, loadConfig, type Config } from './config';

const SECRET = 'test-secret-that-is-at-least-32-bytes-long';
const AWS = {
  HERALD_MODE: 'aws',
  HERALD_JWT_SECRET: SECRET,
  HERALD_QUEUE_PREFIX: 'herald-test',
  HERALD_TOPIC_ARN: 'arn:aws:sns:eu-west-1:123456789012:herald',
  HERALD_TABLE_NAME: 'herald-table',
};

type Env = Record<string, string | undefined>;

/** Config for a local node with a secret (not dev mode), plus `env`. */
function load(env: Env = {}): Config {
  return loadConfig({ HERALD_JWT_SECRET: SECRET, ...env });
}

/** Loads `env`, which must be refused, and returns the ConfigError. */
function configError(env: Env): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError, but the config loaded');
}

/** The refusal names the variable, in its `variable` and at the start of its message. */
function expectRefused(env: Env, variable: string, messageContains?: string): ConfigError {
  const error = configError(env);
  expect(error.variable).toBe(variable);
  expect(error.message.startsWith(`${variable}: `)).toBe(true);
  expect(error.name).toBe('ConfigError');
  if (messageContains !== undefined) expect(error.message).toContain(messageContains);
  return error;
}

describe('loadConfig defaults', () => {
  it('gives a local node with a secret these defaults', () => {
    expect(load()).toEqual({
      mode: 'local',
      dev: false,
      host: '127.0.0.1',
      port: 8080,
      nodeId: undefined,
      auth: { kind: 'hs256', secret: new TextEncoder().encode(SECRET), clockToleranceSeconds: 5 },
      authCookie: 'herald_token',
      publishToken: undefined,
      tabPolicy: 'single',
      maxTabs: 5,
      heartbeatMs: 15_000,
      retryMs: 2_000,
      maxQueuedBytes: 1024 * 1024,
      stallTimeoutMs: 10_000,
      maxConnections: 16_000,
      maxSockets: 17_000,
      requestTimeoutMs: 30_000,
      maxConnectionsPerAddress: 2_000,
      connectRatePerAddress: { perSecond: 20, burst: 100 },
      trustProxy: false,
      maxDataBytes: 64 * 1024,
      defaultTtlSeconds: 3_600,
      historyPerUser: 100,
      historyMaxBytes: 256 * 1024 * 1024,
      replayLimit: 1_000,
      publishRate: { perSecond: 1_000, burst: 2_000 },
      drainMs: 30_000,
      maxStreamMs: 0,
      logLevel: 'info',
      aws: undefined,
      redis: undefined,
    } satisfies Config);
  });

  it('listens on all interfaces, trusts the proxy and reads the AWS resources in aws mode', () => {
    const config = loadConfig(AWS);
    expect([config.mode, config.dev, config.host, config.trustProxy]).toEqual(['aws', false, '0.0.0.0', true]);
    expect(config.aws).toEqual({
      topicArn: 'arn:aws:sns:eu-west-1:123456789012:herald',
      tableName: 'herald-table',
      queuePrefix: 'herald-test',
    });
  });

  it('treats blank and padded values as unset and trimmed', () => {
    const config = load({ HERALD_PORT: '   ', HERALD_TAB_POLICY: ' multi ', HERALD_MAX_TABS: ' 7' });
    expect([config.port, config.tabPolicy, config.maxTabs]).toEqual([8080, 'multi', 7]);
  });

  it('reads every documented variable', () => {
    const config = load({
      HERALD_HOST: '0.0.0.0',
      HERALD_PORT: '9000',
      HERALD_NODE_ID: 'node_A-1',
      HERALD_AUTH_COOKIE: 'sid',
      HERALD_PUBLISH_TOKEN: 'p'.repeat(16),
      HERALD_TAB_POLICY: 'multi',
      HERALD_MAX_TABS: '3',
      HERALD_HEARTBEAT_MS: '5000',
      HERALD_RETRY_MS: '500',
      HERALD_MAX_QUEUED_BYTES: '65536',
      HERALD_STALL_TIMEOUT_MS: '2500',
      HERALD_MAX_CONNECTIONS: '10',
      HERALD_MAX_SOCKETS: '50',
      HERALD_REQUEST_TIMEOUT_MS: '5000',
      HERALD_MAX_CONNECTIONS_PER_IP: '4',
      HERALD_CONNECT_RATE_PER_IP: '200',
      HERALD_CONNECT_BURST_PER_IP: '300',
      HERALD_TRUST_PROXY: 'true',
      HERALD_MAX_DATA_BYTES: '1024',
      HERALD_HISTORY_TTL_SECONDS: '0',
      HERALD_HISTORY_SIZE: '50',
      HERALD_HISTORY_MAX_BYTES: '1048576',
      HERALD_REPLAY_LIMIT: '20',
      HERALD_PUBLISH_RATE: '30',
      HERALD_PUBLISH_BURST: '150',
      HERALD_DRAIN_MS: '0',
      HERALD_LOG_LEVEL: 'debug',
      HERALD_JWT_ISSUER: 'https://id.example.com',
      HERALD_JWT_AUDIENCE: 'herald',
    });
    expect(config).toMatchObject({
      host: '0.0.0.0',
      port: 9000,
      nodeId: 'node_A-1',
      authCookie: 'sid',
      publishToken: 'p'.repeat(16),
      tabPolicy: 'multi',
      maxTabs: 3,
      heartbeatMs: 5000,
      retryMs: 500,
      maxQueuedBytes: 65536,
      stallTimeoutMs: 2500,
      maxConnections: 10,
      maxSockets: 50,
      requestTimeoutMs: 5000,
      maxConnectionsPerAddress: 4,
      connectRatePerAddress: { perSecond: 200, burst: 300 },
      trustProxy: true,
      maxDataBytes: 1024,
      defaultTtlSeconds: 0,
      historyPerUser: 50,
      historyMaxBytes: 1048576,
      replayLimit: 20,
      publishRate: { perSecond: 30, burst: 150 },
      drainMs: 0,
      logLevel: 'debug',
      auth: { kind: 'hs256', issuer: 'https://id.example.com', audience: 'herald' },
    });
  });

  it('keeps the socket cap above the stream cap, so a refused stream still gets its status', () => {
    expect(load({ HERALD_MAX_CONNECTIONS: '100' }).maxSockets).toBe(1_100);
    expect(() => load({ HERALD_MAX_CONNECTIONS: '100', HERALD_MAX_SOCKETS: '100' })).toThrow(/HERALD_MAX_SOCKETS.*above HERALD_MAX_CONNECTIONS/);
  });

  it('raises the default connect burst with the connect rate', () => {
    expect(load({ HERALD_CONNECT_RATE_PER_IP: '500' }).connectRatePerAddress).toEqual({ perSecond: 500, burst: 500 });
  });

  it('defaults the publish burst to twice the rate, but never below a full batch', () => {
    expect(load({ HERALD_PUBLISH_RATE: '10' }).publishRate).toEqual({ perSecond: 10, burst: 100 });
    expect(load({ HERALD_PUBLISH_RATE: '60' }).publishRate).toEqual({ perSecond: 60, burst: 120 });
  });
});

describe('loadConfig dev mode', () => {
  it('generates a 32-byte secret and a publish token when local mode has no secret', () => {
    const config = loadConfig({});
    expect(config.dev).toBe(true);
    expect(config.auth.kind).toBe('hs256');
    const secret = config.auth.kind === 'hs256' ? config.auth.secret : undefined;
    expect(secret).toBeInstanceOf(Uint8Array);
    expect(secret?.byteLength).toBe(32);
    expect(config.publishToken).toMatch(/^[A-Za-z0-9_-]{32}$/);
  });

  it('generates a different secret and publish token in each process', () => {
    const a = loadConfig({});
    const b = loadConfig({});
    expect(a.auth).not.toEqual(b.auth);
    expect(a.publishToken).not.toBe(b.publishToken);
  });

  it('keeps a configured publish token in dev mode', () => {
    expect(loadConfig({ HERALD_PUBLISH_TOKEN: 'p'.repeat(20) }).publishToken).toBe('p'.repeat(20));
  });

  it.each(['127.0.0.1', '127.0.0.2', 'localhost', '::1'])('listens on the loopback host %s', (host) => {
    expect(loadConfig({ HERALD_HOST: host }).host).toBe(host);
  });

  it.each(['0.0.0.0', '10.0.0.5', '::'])('refuses the non-loopback HERALD_HOST %s', (host) => {
    expectRefused({ HERALD_HOST: host }, 'HERALD_HOST', 'dev mode');
  });

  // Bug: the same isLoopbackHost prefix test lets dev mode, with its generated
  // secret, listen on a DNS name that merely starts with "127.".
  it('refuses a HERALD_HOST that is a DNS name starting with "127."', () => {
    expectRefused({ HERALD_HOST: '127.attacker.example' }, 'HERALD_HOST', 'dev mode');
  });

  it('is impossible in aws mode: no secret is refused', () => {
    expectRefused({ ...AWS, HERALD_JWT_SECRET: undefined }, 'HERALD_JWT_SECRET', 'aws mode');
  });
});

describe('loadConfig refusals', () => {
  describe('port', () => {
    it.each(['abc', '-1', '80.5', '0x50', '1e3'])('refuses HERALD_PORT=%s as not a whole number', (value) => {
      expectRefused({ HERALD_JWT_SECRET: SECRET, HERALD_PORT: value }, 'HERALD_PORT', `"${value}"`);
    });

    it('accepts HERALD_PORT 0 (any free port) and 65535', () => {
      expect(load({ HERALD_PORT: '0' }).port).toBe(0);
      expect(load({ HERALD_PORT: '65535' }).port).toBe(65535);
    });

    it('refuses HERALD_PORT 65536', () => {
      expectRefused({ HERALD_JWT_SECRET: SECRET, HERALD_PORT: '65536' }, 'HERALD_PORT', 'between 0 and 65535');
    });

    it('falls back to PORT, and names PORT when it is bad', () => {
      expect(load({ PORT: '3000' }).port).toBe(3000);
      expectRefused({ HERALD_JWT_SECRET: SECRET, PORT: '70000' }, 'PORT');
      expectRefused({ HERALD_JWT_SECRET: SECRET, PORT: 'http' }, 'PORT');
    });

    it('prefers HERALD_PORT over PORT', () => {
      expect(load({ HERALD_PORT: '4000', PORT: '3000' }).port).toBe(4000);
      expect(load({ HERALD_PORT: '4000', PORT: 'not-used' }).port).toBe(4000);
    });
  });

  it('refuses an unknown HERALD_MODE', () => {
    expectRefused({ HERALD_MODE: 'production' }, 'HERALD_MODE', '"production"');
  });

  it('refuses an unknown HERALD_TAB_POLICY', () => {
    expectRefused({ HERALD_JWT_SECRET: SECRET, HERALD_TAB_POLICY: 'many' }, 'HERALD_TAB_POLICY', 'single, multi');
  });

  describe('HERALD_HEARTBEAT_MS', () => {
    it('accepts 1000 and 300000', () => {
      expect(load({ HERALD_HEARTBEAT_MS: '1000' }).heartbeatMs).toBe(1000);
      expect(load({ HERALD_HEARTBEAT_MS: '300000' }).heartbeatMs).toBe(300000);
    });

    it.each(['999', '300001', '0'])('refuses %s', (value) => {
      expectRefused({ HERALD_JWT_SECRET: SECRET, HERALD_HEARTBEAT_MS: value }, 'HERALD_HEARTBEAT_MS', 'between 1000 and 300000');
    });
  });

  describe('HERALD_STALL_TIMEOUT_MS', () => {
    it('accepts 100 and 600000', () => {
      expect(load({ HERALD_STALL_TIMEOUT_MS: '100' }).stallTimeoutMs).toBe(100);
      expect(load({ HERALD_STALL_TIMEOUT_MS: '600000' }).stallTimeoutMs).toBe(600_000);
    });

    it.each(['99', '600001', '0'])('refuses %s, naming the variable and its bounds', (value) => {
      expectRefused({ HERALD_JWT_SECRET: SECRET, HERALD_STALL_TIMEOUT_MS: value }, 'HERALD_STALL_TIMEOUT_MS', 'between 100 and 600000');
    });

    it.each(['10s', '1.5', '-1', 'ten'])('refuses %s as not a whole number of milliseconds, naming the variable', (value) => {
      expectRefused({ HERALD_JWT_SECRET: SECRET, HERALD_STALL_TIMEOUT_MS: value }, 'HERALD_STALL_TIMEOUT_MS', `"${value}"`);
    });
  });

  describe('HERALD_DRAIN_MS', () => {
    it(`accepts ${MAX_DRAIN_MS}, the most that fits before Fargate's SIGKILL`, () => {
      expect(MAX_DRAIN_MS).toBe(110_000);
      expect(load({ HERALD_DRAIN_MS: '110000' }).drainMs).toBe(110_000);
    });

    it('refuses 110001', () => {
      expectRefused({ HERALD_JWT_SECRET: SECRET, HERALD_DRAIN_MS: '110001' }, 'HERALD_DRAIN_MS', 'between 0 and 110000');
    });
  });

  describe('HERALD_MAX_STREAM_S', () => {
    it(`accepts 0 (no cap), 1 and ${MAX_STREAM_S} (7 days), in ms`, () => {
      expect(load({ HERALD_MAX_STREAM_S: '0' }).maxStreamMs).toBe(0);
      expect(load({ HERALD_MAX_STREAM_S: '1' }).maxStreamMs).toBe(1000);
      expect(load({ HERALD_MAX_STREAM_S: String(MAX_STREAM_S) }).maxStreamMs).toBe(MAX_STREAM_S * 1000);
    });

    it.each([String(MAX_STREAM_S + 1), '-1', '1.5', '1h'])('refuses %s, naming the variable', (value) => {
      expectRefused({ HERALD_JWT_SECRET: SECRET, HERALD_MAX_STREAM_S: value }, 'HERALD_MAX_STREAM_S');
    });
  });

  describe('HERALD_JWT_CLOCK_TOLERANCE_S', () => {
    it(`accepts 0 and ${MAX_JWT_CLOCK_TOLERANCE_S}, for a secret and a JWKS alike`, () => {
      expect(load({ HERALD_JWT_CLOCK_TOLERANCE_S: '0' }).auth.clockToleranceSeconds).toBe(0);
      expect(load({ HERALD_JWT_CLOCK_TOLERANCE_S: '60' }).auth.clockToleranceSeconds).toBe(60);
      const jwks = { HERALD_JWKS_URL: 'https://id.example.com/jwks', HERALD_JWT_ISSUER: 'i', HERALD_JWT_AUDIENCE: 'a', HERALD_JWT_CLOCK_TOLERANCE_S: '30' };
      expect(loadConfig(jwks).auth.clockToleranceSeconds).toBe(30);
    });

    it.each(['61', '3600'])('refuses %s, naming the variable and its bounds', (value) => {
      expectRefused({ HERALD_JWT_SECRET: SECRET, HERALD_JWT_CLOCK_TOLERANCE_S: value }, 'HERALD_JWT_CLOCK_TOLERANCE_S', 'between 0 and 60');
    });

    it.each(['-1', '1.5', '5s'])('refuses %s as not a whole number of seconds, naming the variable', (value) => {
      expectRefused({ HERALD_JWT_SECRET: SECRET, HERALD_JWT_CLOCK_TOLERANCE_S: value }, 'HERALD_JWT_CLOCK_TOLERANCE_S', `"${value}"`);
    });
  });

  describe('HERALD_JWT_SECRET', () => {
    it('accepts 32 bytes', () => {
      expect(loadConfig({ HERALD_JWT_SECRET: 's'.repeat(32) }).dev).toBe(false);
    });

    it('refuses 31 bytes', () => {
      expectRefused({ HERALD_JWT_SECRET: 's'.repeat(31) }, 'HERALD_JWT_SECRET', 'at least 32 bytes');
    });

    it('counts bytes, not characters', () => {
      expect(loadConfig({ HERALD_JWT_SECRET: 'é'.repeat(16) }).dev).toBe(false);
      expectRefused({ HERALD_JWT_SECRET: 'é'.repeat(15) + 'e' }, 'HERALD_JWT_SECRET');
    });

    it('refuses a secret and a JWKS URL together', () => {
      expectRefused(
        { HERALD_JWT_SECRET: SECRET, HERALD_JWKS_URL: 'https://id.example.com/jwks', HERALD_JWT_ISSUER: 'i', HERALD_JWT_AUDIENCE: 'a' },
        'HERALD_JWKS_URL',
        'not both',
      );
    });
  });

  describe('HERALD_JWKS_URL', () => {
    const jwks = { HERALD_JWT_ISSUER: 'https://id.example.com', HERALD_JWT_AUDIENCE: 'herald' };

    it('configures JWKS verification with issuer and audience, outside dev mode', () => {
      const config = loadConfig({ ...jwks, HERALD_JWKS_URL: 'https://id.example.com/.well-known/jwks.json' });
      expect(config.dev).toBe(false);
      expect(config.publishToken).toBeUndefined();
      expect(config.auth).toEqual({
        kind: 'jwks',
        jwksUrl: new URL('https://id.example.com/.well-known/jwks.json'),
        issuer: 'https://id.example.com',
        audience: 'herald',
        clockToleranceSeconds: 5,
      });
    });

    it('refuses JWKS without an issuer', () => {
      expectRefused({ HERALD_JWKS_URL: 'https://id.example.com/jwks', HERALD_JWT_AUDIENCE: 'herald' }, 'HERALD_JWT_ISSUER', 'is required');
    });

    it('refuses JWKS without an audience', () => {
      expectRefused({ HERALD_JWKS_URL: 'https://id.example.com/jwks', HERALD_JWT_ISSUER: 'i' }, 'HERALD_JWT_AUDIENCE', 'is required');
    });

    it('refuses a value that is not a URL', () => {
      expectRefused({ ...jwks, HERALD_JWKS_URL: 'id.example.com/jwks' }, 'HERALD_JWKS_URL', 'not a URL');
    });

    it.each(['http://id.example.com/jwks', 'http://10.0.0.8/jwks', 'ftp://localhost/jwks', 'http://0.0.0.0/jwks'])(
      'refuses %s: plain http only on loopback',
      (url) => {
        expectRefused({ ...jwks, HERALD_JWKS_URL: url }, 'HERALD_JWKS_URL', 'must be https');
      },
    );

    it.each(['http://localhost:9000/jwks', 'http://127.0.0.1:9000/jwks', 'http://[::1]:9000/jwks'])('accepts plain http on loopback: %s', (url) => {
      expect(loadConfig({ ...jwks, HERALD_JWKS_URL: url }).auth.kind).toBe('jwks');
    });

    // Bug: isLoopbackHost (config.ts) treats any host name starting with "127." as
    // loopback, so a DNS name such as 127.attacker.example is fetched over plain http.
    it('refuses plain http on a DNS name that merely starts with "127."', () => {
      expectRefused({ ...jwks, HERALD_JWKS_URL: 'http://127.attacker.example/jwks' }, 'HERALD_JWKS_URL', 'must be https');
    });
  });

  describe('aws mode', () => {
    it('accepts a JWKS URL instead of a secret', () => {
      const config = loadConfig({
        ...AWS,
        HERALD_JWT_SECRET: undefined,
        HERALD_JWKS_URL: 'https://id.example.com/jwks',
        HERALD_JWT_ISSUER: 'i',
        HERALD_JWT_AUDIENCE: 'a',
      });
      expect([config.dev, config.auth.kind]).toEqual([false, 'jwks']);
    });

    it.each(['HERALD_QUEUE_PREFIX', 'HERALD_TOPIC_ARN', 'HERALD_TABLE_NAME'])('requires %s', (variable) => {
      expectRefused({ ...AWS, [variable]: undefined }, variable, 'is required in aws mode');
    });

    it('accepts a queue prefix of 39 characters', () => {
      expect(loadConfig({ ...AWS, HERALD_QUEUE_PREFIX: 'q'.repeat(39) }).aws?.queuePrefix).toBe('q'.repeat(39));
    });

    it.each([
      ['40 characters', 'q'.repeat(40)],
      ['a dot', 'herald.test'],
      ['a slash', 'herald/test'],
      ['an underscore, which separates it from the node id', 'herald_test'],
    ])('refuses a queue prefix with %s', (_label, prefix) => {
      expectRefused({ ...AWS, HERALD_QUEUE_PREFIX: prefix }, 'HERALD_QUEUE_PREFIX', '1-39 characters');
    });

    it('ignores the AWS variables in local mode', () => {
      expect(load({ HERALD_QUEUE_PREFIX: 'not valid!' }).aws).toBeUndefined();
    });
  });

  describe('redis mode', () => {
    const REDIS = { HERALD_MODE: 'redis', HERALD_JWT_SECRET: SECRET, HERALD_REDIS_URL: 'redis://redis.internal:6379' };
    const PASSWORD = 's3cr3t-p4ss';

    it('reads one server, listens on all interfaces and leaves X-Forwarded-For untrusted', () => {
      const config = loadConfig(REDIS);
      expect([config.mode, config.dev, config.host, config.trustProxy, config.aws]).toEqual(['redis', false, '0.0.0.0', false, undefined]);
      expect(config.redis).toEqual({ target: { kind: 'server', url: 'redis://redis.internal:6379' }, keyPrefix: 'herald:' });
    });

    it('trusts X-Forwarded-For when told to, behind a proxy that sets it', () => {
      expect(loadConfig({ ...REDIS, HERALD_TRUST_PROXY: 'true' }).trustProxy).toBe(true);
    });

    it.each([
      'redis://localhost',
      'rediss://redis.example.com:6380',
      `redis://:${PASSWORD}@10.0.0.5:6379`,
      `rediss://herald:${PASSWORD}@redis.example.com:6380/3`,
      'redis://[::1]:6379/0',
      'redis://h/',
    ])('accepts HERALD_REDIS_URL %s', (url) => {
      expect(loadConfig({ ...REDIS, HERALD_REDIS_URL: url }).redis?.target).toEqual({ kind: 'server', url });
    });

    it('reads the seeds of a cluster, trimmed, and a key prefix', () => {
      const config = loadConfig({
        ...REDIS,
        HERALD_REDIS_URL: undefined,
        HERALD_REDIS_CLUSTER_NODES: ` rediss://:${PASSWORD}@r1:6379 , rediss://:${PASSWORD}@r2:6379`,
        HERALD_REDIS_PREFIX: 'chat-prod:',
      });
      expect(config.redis).toEqual({
        target: { kind: 'cluster', seeds: [`rediss://:${PASSWORD}@r1:6379`, `rediss://:${PASSWORD}@r2:6379`] },
        keyPrefix: 'chat-prod:',
      });
    });

    it('needs a secret or a JWKS: every process of the fleet must accept the same tokens', () => {
      expectRefused({ ...REDIS, HERALD_JWT_SECRET: undefined }, 'HERALD_JWT_SECRET', 'redis mode');
      const jwks = { HERALD_JWKS_URL: 'https://id.example.com/jwks', HERALD_JWT_ISSUER: 'i', HERALD_JWT_AUDIENCE: 'a' };
      expect(loadConfig({ ...REDIS, HERALD_JWT_SECRET: undefined, ...jwks }).auth.kind).toBe('jwks');
    });

    it('needs exactly one of HERALD_REDIS_URL and HERALD_REDIS_CLUSTER_NODES', () => {
      expectRefused({ ...REDIS, HERALD_REDIS_URL: undefined }, 'HERALD_REDIS_URL', 'is required in redis mode');
      expectRefused({ ...REDIS, HERALD_REDIS_CLUSTER_NODES: 'redis://r1:6379' }, 'HERALD_REDIS_CLUSTER_NODES', 'not both');
    });

    it.each([
      ['not a URL', `:${PASSWORD}@redis:6379`, 'is not a URL'],
      ['another scheme', `http://:${PASSWORD}@redis:6379`, 'redis:// or rediss://'],
      ['the password where the scheme goes', `${PASSWORD}:6379`, 'redis:// or rediss://'],
      ['a host name missing', `redis://:${PASSWORD}@:6379`, 'is not a URL'],
      ['a database that is not a number', `redis://:${PASSWORD}@redis:6379/zero`, 'database number'],
      ['a path below the database', `redis://:${PASSWORD}@redis:6379/0/1`, 'database number'],
      ['a query', `redis://:${PASSWORD}@redis:6379?db=1`, 'no query'],
      ['a port out of range', `redis://:${PASSWORD}@redis:70000`, 'is not a URL'],
    ])('refuses a HERALD_REDIS_URL with %s, never printing the password', (_label, url, message) => {
      const error = expectRefused({ ...REDIS, HERALD_REDIS_URL: url }, 'HERALD_REDIS_URL', message);
      expect(error.message).not.toContain(PASSWORD);
    });

    it.each([
      ['a database number', `redis://:${PASSWORD}@r1:6379,redis://:${PASSWORD}@r2:6379/2`, 'entry 2 names a database'],
      ['an empty entry', `redis://:${PASSWORD}@r1:6379,,redis://:${PASSWORD}@r2:6379`, 'entry 2 is empty'],
      ['a bad entry', `redis://:${PASSWORD}@r1:6379,ftp://:${PASSWORD}@r2`, 'entry 2 must start with'],
      ['seeds with different passwords', `redis://:${PASSWORD}@r1:6379,redis://:other-pass@r2:6379`, 'entry 2 differs'],
      ['seeds with and without TLS', `rediss://:${PASSWORD}@r1:6379,redis://:${PASSWORD}@r2:6379`, 'entry 2 differs'],
    ])('refuses HERALD_REDIS_CLUSTER_NODES with %s, never printing the password', (_label, seeds, message) => {
      const error = expectRefused({ ...REDIS, HERALD_REDIS_URL: undefined, HERALD_REDIS_CLUSTER_NODES: seeds }, 'HERALD_REDIS_CLUSTER_NODES', message);
      expect(error.message).not.toContain(PASSWORD);
      expect(error.message).not.toContain('other-pass');
    });

    it.each(['app{1}:', 'has space', 'p'.repeat(65), 'tab\tprefix'])('refuses the key prefix %j', (prefix) => {
      expectRefused({ ...REDIS, HERALD_REDIS_PREFIX: prefix }, 'HERALD_REDIS_PREFIX', '1-64 printable ASCII');
    });

    it('ignores the redis variables in the other modes, and the AWS ones in redis mode', () => {
      expect(load({ HERALD_REDIS_URL: 'not a url' }).redis).toBeUndefined();
      expect(loadConfig({ ...AWS, HERALD_REDIS_URL: 'not a url' }).redis).toBeUndefined();
      expect(loadConfig({ ...REDIS, HERALD_QUEUE_PREFIX: 'not valid!' }).aws).toBeUndefined();
    });
  });

  describe('HERALD_LOG_LEVEL', () => {
    it.each(['debug', 'info', 'warn', 'error'])('accepts %s', (level) => {
      expect(load({ HERALD_LOG_LEVEL: level }).logLevel).toBe(level);
    });

    it.each(['verbose', 'INFO', 'trace'])('refuses %s', (level) => {
      expectRefused({ HERALD_JWT_SECRET: SECRET, HERALD_LOG_LEVEL: level }, 'HERALD_LOG_LEVEL', `"${level}"`);
    });

    // Bug: isLogLevel (shared/log.ts) uses `value in RANK`, which is true for
    // Object.prototype members, so these load as a log level.
    it.each(['constructor', 'toString', '__proto__'])('refuses the Object.prototype name %s', (level) => {
      expectRefused({ HERALD_JWT_SECRET: SECRET, HERALD_LOG_LEVEL: level }, 'HERALD_LOG_LEVEL');
    });
  });

  describe('HERALD_PUBLISH_BURST', () => {
    it('accepts 100, a full batch', () => {
      expect(load({ HERALD_PUBLISH_BURST: '100' }).publishRate.burst).toBe(100);
    });

    it('refuses 99, which could never admit a full batch', () => {
      expectRefused({ HERALD_JWT_SECRET: SECRET, HERALD_PUBLISH_BURST: '99' }, 'HERALD_PUBLISH_BURST', 'between 100 and');
    });
  });

  it.each([
    ['HERALD_NODE_ID', 'node.1', 'is 1-40 characters'],
    ['HERALD_NODE_ID', 'n'.repeat(41), 'is 1-40 characters'],
    ['HERALD_PUBLISH_TOKEN', 'p'.repeat(15), 'at least 16 characters'],
    ['HERALD_TRUST_PROXY', 'yes', 'true or false'],
    ['HERALD_MAX_TABS', '101', 'between 1 and 100'],
    ['HERALD_MAX_TABS', '0', 'between 1 and 100'],
    ['HERALD_RETRY_MS', '99', 'between 100 and 600000'],
    ['HERALD_MAX_QUEUED_BYTES', '16383', 'between 16384 and'],
    ['HERALD_MAX_DATA_BYTES', '204801', 'between 1 and 204800'],
    ['HERALD_HISTORY_TTL_SECONDS', '604801', 'between 0 and 604800'],
    ['HERALD_MAX_CONNECTIONS', '0', 'between 1 and'],
    ['HERALD_MAX_CONNECTIONS_PER_IP', '0', 'between 1 and'],
  ])('refuses %s=%s', (variable, value, message) => {
    expectRefused({ HERALD_JWT_SECRET: SECRET, [variable]: value }, variable, message);
  });

  it.each([
    ['HERALD_NODE_ID', 'n'.repeat(40), 'nodeId'],
    ['HERALD_PUBLISH_TOKEN', 'p'.repeat(16), 'publishToken'],
    ['HERALD_MAX_DATA_BYTES', '204800', 'maxDataBytes'],
    ['HERALD_HISTORY_TTL_SECONDS', '604800', 'defaultTtlSeconds'],
    ['HERALD_MAX_QUEUED_BYTES', '16384', 'maxQueuedBytes'],
  ] as const)('accepts %s=%s at its limit', (variable, value, key) => {
    expect(String(load({ [variable]: value })[key])).toBe(value);
  });

  it.each([
    ['true', true],
    ['1', true],
    ['false', false],
    ['0', false],
  ])('reads HERALD_TRUST_PROXY=%s as %s', (value, expected) => {
    expect(load({ HERALD_TRUST_PROXY: value }).trustProxy).toBe(expected);
  });
});
