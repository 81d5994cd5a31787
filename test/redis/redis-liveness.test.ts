/**
 * What lets a node live through a Redis that goes away or comes back empty:
 * the epoch key, the liveness watch (reachability for `/healthz`, and the
 * emptying it reports), and the history's gap for positions an emptied Redis
 * cannot vouch for. Real redis-server processes, restarted without
 * persistence; a TCP proxy for an outage that loses nothing.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { connectRedis, type RedisConnection } from '../../services/adapters/redis/redis-connection';
import { readEpoch } from '../../services/adapters/redis/redis-epoch';
import { RedisHistory } from '../../services/adapters/redis/redis-history';
import { redisKeys } from '../../services/adapters/redis/redis-keys';
import { RedisLiveness } from '../../services/adapters/redis/redis-liveness';
import { HeraldError } from '../../services/protocol/errors';
import { MAX_ID_CLOCK_SKEW_MS } from '../../services/protocol/limits';
import { createLogger, type Logger } from '../../services/shared/log';
import { DEADLINE_MS, EventBuilder, manualClock } from '../contract/fixtures';
import { eventually } from '../../scripts/fleet/deadline';
import { startRedisServer, type RedisServer } from '../../scripts/fleet/redis-server';
import { startTcpProxy } from '../support/tcp-proxy';

let shared: RedisServer;

beforeAll(async () => {
  shared = await startRedisServer();
});

afterAll(async () => {
  await shared.stop();
});

let prefixes = 0;
const uniquePrefix = (): string => `l${process.pid.toString(36)}-${++prefixes}:`;

/** A server of the test's own, which it may kill and start again empty. */
async function ownServer(): Promise<RedisServer> {
  const server = await startRedisServer();
  onTestFinished(() => server.stop());
  return server;
}

async function connection(url: string): Promise<RedisConnection> {
  // Short timeouts: a command to a server that is gone fails at once anyway, and a connect must not outlast the test.
  const redis = await connectRedis({ url, commandTimeoutMs: 500, connectTimeoutMs: 1_000 });
  onTestFinished(() => redis.close());
  return redis;
}

function captureLog(): { log: Logger; events: () => string[] } {
  const lines: Array<{ event: string }> = [];
  const log = createLogger({ level: 'debug', sink: (line) => lines.push(JSON.parse(line) as { event: string }) });
  return { log, events: () => lines.map((l) => l.event) };
}

function watch(redis: RedisConnection, log: Logger, keyPrefix = uniquePrefix()): RedisLiveness {
  const liveness = new RedisLiveness({ redis, log, keyPrefix, intervalMs: 50 });
  onTestFinished(() => liveness.stop());
  return liveness;
}

describe('the Redis epoch', () => {
  it('is made once by whoever reads it first, and read as is by every other reader', async () => {
    const [a, b] = [await connection(shared.url), await connection(shared.url)];
    const key = redisKeys(uniquePrefix()).epoch;

    const first = await readEpoch(a, key, 1_000);
    const second = await readEpoch(b, key, 5_000);

    expect(first.startedAtMs).toBe(1_000);
    expect(second).toEqual(first);
  });

  it('is made again, later, when Redis comes back empty', async () => {
    const server = await ownServer();
    const redis = await connection(server.url);
    const key = redisKeys().epoch;
    const before = await readEpoch(redis, key, Date.now());

    await server.restart();

    const after = await (async () => {
      for (;;) {
        const read = await readEpoch(redis, key, Date.now()).catch(() => undefined);
        if (read) return read;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    expect(after.value).not.toBe(before.value);
    expect(after.startedAtMs).toBeGreaterThanOrEqual(before.startedAtMs);
  });
});

describe('RedisLiveness', () => {
  it('refuses to start, unavailable, when Redis does not answer', async () => {
    const server = await ownServer();
    const redis = await connection(server.url);
    await server.kill();

    const error = await new RedisLiveness({ redis, log: captureLog().log }).start().then(
      () => 'started',
      (failure: unknown) => failure,
    );

    expect(error).toBeInstanceOf(HeraldError);
    expect((error as HeraldError).code).toBe('unavailable');
  });

  it('is unreachable while Redis is down, and ok once it is back empty, after its emptied listeners ran', async () => {
    const server = await ownServer();
    const redis = await connection(server.url);
    const { log, events } = captureLog();
    const liveness = watch(redis, log);
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    let emptied = 0;
    liveness.onEmptied(async () => {
      emptied++;
      await held;
    });
    await liveness.start();
    expect(liveness.state()).toBe('ok');

    await server.kill();
    await eventually(() => liveness.state() === 'unreachable', DEADLINE_MS, 'the state to be unreachable');
    await server.start();
    await eventually(() => emptied === 1, DEADLINE_MS, 'the emptied listener');
    // Reachable, but what the process had there is not back until the listener returns.
    expect(liveness.state()).toBe('unreachable');
    release();
    await eventually(() => liveness.state() === 'ok', DEADLINE_MS, 'the state to be ok again');

    expect(emptied).toBe(1);
    expect(events().filter((e) => e.startsWith('redis.'))).toEqual(['redis.unreachable', 'redis.emptied', 'redis.reachable']);
  });

  it('reports no emptying after an outage that lost nothing', async () => {
    const proxy = await startTcpProxy(shared.url.replace('redis:', 'http:'));
    onTestFinished(() => proxy.close());
    const redis = await connection(proxy.url.replace('http:', 'redis:'));
    const { log, events } = captureLog();
    const liveness = watch(redis, log);
    let emptied = 0;
    liveness.onEmptied(() => {
      emptied++;
    });
    await liveness.start();

    proxy.block();
    await eventually(() => liveness.state() === 'unreachable', DEADLINE_MS, 'the state to be unreachable');
    proxy.unblock();
    await eventually(() => liveness.state() === 'ok', DEADLINE_MS, 'the state to be ok again');

    expect(emptied).toBe(0);
    expect(events().filter((e) => e.startsWith('redis.'))).toEqual(['redis.unreachable', 'redis.reachable']);
  });
});

describe('RedisHistory with detectEmptied', () => {
  it('answers history_trimmed from a position Redis lost when it came back empty, with what was stored since', async () => {
    const server = await ownServer();
    const redis = await connection(server.url);
    const clock = manualClock();
    const events = new EventBuilder(clock);
    const history = new RedisHistory({ redis, maxEventsPerStream: 100, clock: clock.now, detectEmptied: true });
    const plain = new RedisHistory({ redis, maxEventsPerStream: 100, clock: clock.now });
    const [seen, lost] = [events.to(['alice']), events.to(['alice'])];
    await history.appendBatch([seen, lost]);
    expect(await history.since('alice', seen.id, 10)).toEqual({ events: [lost], gap: null });

    await server.restart();
    await eventually(() => redis.command('k', ['PING']).then(() => true, () => false), DEADLINE_MS, 'Redis to answer again');
    clock.advance(1_000);
    const after = events.to(['alice']);
    await history.appendBatch([after]);

    // `lost` went with the old data: the position says so, in band.
    expect(await history.since('alice', seen.id, 10)).toEqual({ events: [after], gap: 'history_trimmed' });
    // As the History contract has it without the option: an unknown id is a valid position.
    expect(await plain.since('alice', seen.id, 10)).toEqual({ events: [after], gap: null });
    // A position stored since the emptying vouches for what follows it.
    const later = events.to(['alice']);
    await history.appendBatch([later]);
    expect(await history.since('alice', after.id, 10)).toEqual({ events: [later], gap: null });
  });

  it('takes an unknown position as valid once it is clearly newer than the epoch, and not before', async () => {
    const redis = await connection(shared.url);
    const clock = manualClock();
    const events = new EventBuilder(clock);
    const history = new RedisHistory({ redis, keyPrefix: uniquePrefix(), maxEventsPerStream: 100, clock: clock.now, detectEmptied: true });
    // The epoch begins at the first read: now.
    expect(await history.since('alice', events.nextId(), 10)).toEqual({ events: [], gap: 'history_trimmed' });

    // A publisher's clock may run ahead by the allowed skew: an id from just after the epoch may predate it.
    clock.advance(MAX_ID_CLOCK_SKEW_MS - 1);
    expect((await history.since('alice', events.nextId(), 10)).gap).toBe('history_trimmed');
    clock.advance(2);
    expect(await history.since('alice', events.nextId(), 10)).toEqual({ events: [], gap: null });
  });
});
