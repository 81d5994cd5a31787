/**
 * The Redis adapters against the same port contracts as the memory and AWS
 * adapters, on a real redis-server started for this file; a fresh key prefix
 * per test. Then what only the Redis adapters do: resuming a stream after a
 * reconnect without a resync, `onMissed` when messages may be gone, faults.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { RedisBus, type RedisBusOptions } from '../../services/adapters/redis/redis-bus';
import { connectRedis, type RedisConnection } from '../../services/adapters/redis/redis-connection';
import { RedisHistory } from '../../services/adapters/redis/redis-history';
import { redisKeys } from '../../services/adapters/redis/redis-keys';
import { RedisOwners } from '../../services/adapters/redis/redis-owners';
import { RedisRateLimiter } from '../../services/adapters/redis/redis-rate-limiter';
import type { BusMessage } from '../../services/ports/bus';
import { HeraldError } from '../../services/protocol/errors';
import { createLogger, silentLogger, type Logger } from '../../services/shared/log';
import { describeBusContract } from '../contract/bus.contract';
import { DEADLINE_MS, EventBuilder, Inbox, connectionRecord, manualClock, messageKey } from '../contract/fixtures';
import { describeHistoryContract } from '../contract/history.contract';
import { describeOwnersContract } from '../contract/owners.contract';
import { describeRateLimiterContract } from '../contract/rate-limiter.contract';
import { eventually } from '../../scripts/fleet/deadline';
import { startRedisServer, type RedisServer } from '../../scripts/fleet/redis-server';
import { startTcpProxy } from '../support/tcp-proxy';

let server: RedisServer;
let redis: RedisConnection;

beforeAll(async () => {
  server = await startRedisServer();
  redis = await connectRedis({ url: server.url });
});

afterAll(async () => {
  await redis.close();
  await server.stop();
});

/** Every key of a test under its own prefix; the server (and its keys) goes when the file ends. */
const nothingToClean = (): Promise<void> => Promise.resolve();
const prefixOf = (context: { prefix: string }): string => `${context.prefix}:`;

describeBusContract('redis streams', {
  ordered: true,
  create: (context) =>
    Promise.resolve({
      bus: () => Promise.resolve(new RedisBus({ redis, log: silentLogger, keyPrefix: prefixOf(context) })),
      cleanup: nothingToClean,
    }),
});

describeOwnersContract('redis', (context) =>
  Promise.resolve({ owners: new RedisOwners({ redis, keyPrefix: prefixOf(context), clock: context.clock.now }), cleanup: nothingToClean }),
);

describeHistoryContract('redis', (context, options) =>
  Promise.resolve({
    history: new RedisHistory({ redis, keyPrefix: prefixOf(context), maxEventsPerStream: options.maxEventsPerStream, clock: context.clock.now }),
    cleanup: nothingToClean,
  }),
);

describeRateLimiterContract('redis', (context, budget) =>
  Promise.resolve({ limiter: new RedisRateLimiter({ redis, keyPrefix: prefixOf(context), budget, clock: context.clock.now }), cleanup: nothingToClean }),
);

interface LogLine {
  readonly event: string;
  readonly level: string;
  readonly [field: string]: unknown;
}

function captureLog(): { log: Logger; lines: LogLine[]; count: (event: string) => number } {
  const lines: LogLine[] = [];
  const log = createLogger({ level: 'debug', sink: (line) => lines.push(JSON.parse(line) as LogLine) });
  return { log, lines, count: (event) => lines.filter((l) => l.event === event).length };
}

let prefixes = 0;
const uniquePrefix = (): string => `t${process.pid.toString(36)}-${++prefixes}:`;

const deliver = (event: ReturnType<EventBuilder['to']>): BusMessage => ({ kind: 'deliver', events: [event] });

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => 'resolved',
    (error: unknown) => error,
  );
}

function expectUnavailable(error: unknown): void {
  expect(error).toBeInstanceOf(HeraldError);
  expect((error as HeraldError).code).toBe('unavailable');
}

/** Buses on `connection` under one prefix, closed when the test ends. */
function busMaker(connection: RedisConnection, options: Partial<RedisBusOptions> = {}): (extra?: Partial<RedisBusOptions>) => RedisBus {
  const keyPrefix = options.keyPrefix ?? uniquePrefix();
  const made: RedisBus[] = [];
  onTestFinished(async () => {
    await Promise.all(made.map((b) => b.close()));
  });
  return (extra = {}) => {
    const bus = new RedisBus({ redis: connection, log: silentLogger, keyPrefix, ...options, ...extra });
    made.push(bus);
    return bus;
  };
}

/** A connection of the test's own, closed when it ends. */
async function ownConnection(url: string, options: { commandTimeoutMs?: number; connectTimeoutMs?: number } = {}): Promise<RedisConnection> {
  const connection = await connectRedis({ url, ...options });
  onTestFinished(() => connection.close());
  return connection;
}

describe('RedisBus', () => {
  it('resumes from its last id after its connection was cut, without calling onMissed', async () => {
    const proxy = await startTcpProxy(server.url.replace('redis:', 'http:'));
    onTestFinished(() => proxy.close());
    const viaProxy = await ownConnection(proxy.url.replace('http:', 'redis:'));
    const bus = busMaker(redis, { backoff: { firstMs: 20, maxMs: 200 } });
    const events = new EventBuilder(manualClock());
    const inbox = new Inbox('node-a');
    let missed = 0;
    await bus({ redis: viaProxy }).start('node-a', inbox.handler, () => missed++);
    const publisher = bus();
    const before = deliver(events.to(['alice']));
    await publisher.send(before, { node: 'node-a' });
    await inbox.waitFor(before, 'a message before the cut');

    proxy.block();
    // Sent while the node cannot read: kept in its stream.
    const during = [deliver(events.to(['alice'])), deliver(events.toAll())];
    await publisher.send(during[0]!, { node: 'node-a' });
    await publisher.send(during[1]!, 'all');
    await new Promise((resolve) => setTimeout(resolve, 300));
    proxy.unblock();

    await inbox.waitForAll(during, 'a message sent during the cut');
    expect(missed).toBe(0);
  });

  it('calls onMissed when its stream was trimmed past the last id it read, and keeps reading', async () => {
    const { log, count } = captureLog();
    const keyPrefix = uniquePrefix();
    const bus = busMaker(redis, { log, keyPrefix });
    const events = new EventBuilder(manualClock());
    const first = deliver(events.to(['alice']));
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    const inbox = new Inbox('node-a', (message) => (messageKey(message) === messageKey(first) ? held : Promise.resolve()));
    let missed = 0;
    const node = bus();
    await node.start('node-a', inbox.handler, () => missed++);
    const publisher = bus();

    await publisher.send(first, { node: 'node-a' });
    await inbox.waitFor(first, 'the message the handler holds');
    const later = Array.from({ length: 5 }, () => deliver(events.to(['alice'])));
    for (const message of later) await publisher.send(message, { node: 'node-a' });
    // What MAXLEN would do to a reader that fell behind: only the newest entry is left.
    const { stream } = redisKeys(keyPrefix).busNode('node-a');
    await redis.command(stream, ['XTRIM', stream, 'MAXLEN', '1']);
    release();

    await inbox.waitFor(later.at(-1)!, 'the entry the trim left');
    expect(missed).toBe(1);
    expect(later.slice(0, -1).some((m) => inbox.has(m))).toBe(false);
    expect(count('bus.messages_missed')).toBe(1);
  });

  it('calls onMissed when Redis restarted empty, and receives what is sent after', async () => {
    const own = await startRedisServer();
    onTestFinished(() => own.stop());
    const connection = await ownConnection(own.url);
    const bus = busMaker(connection, { backoff: { firstMs: 20, maxMs: 200 } });
    const events = new EventBuilder(manualClock());
    const inbox = new Inbox('node-a');
    let missed = 0;
    await bus().start('node-a', inbox.handler, () => missed++);
    const publisher = bus();
    const before = [deliver(events.to(['alice'])), deliver(events.toAll())];
    await publisher.send(before[0]!, { node: 'node-a' });
    await publisher.send(before[1]!, 'all');
    await inbox.waitForAll(before, 'a message before the restart');

    await own.restart();

    // Both streams (its own and the shared one) lost what they held: each reader notices.
    await eventually(() => missed >= 2, DEADLINE_MS, 'onMissed after the restart');
    const after = deliver(events.to(['alice']));
    await eventually(() => publisher.send(after, { node: 'node-a' }).then(() => true, () => false), DEADLINE_MS, 'a send after the restart');
    await inbox.waitFor(after, 'a message sent after the restart');
    expect(missed).toBe(2);
  });

  it('logs and skips an entry that does not decode, without its body, and keeps reading', async () => {
    const { log, lines, count } = captureLog();
    const keyPrefix = uniquePrefix();
    const bus = busMaker(redis, { log, keyPrefix });
    const inbox = new Inbox('node-a');
    let missed = 0;
    await bus().start('node-a', inbox.handler, () => missed++);
    const keys = redisKeys(keyPrefix);
    const mine = keys.busNode('node-a').stream;
    const { busAll } = keys;
    await redis.command(mine, ['XADD', mine, '*', 'm', 'not json: secret-body-123']);
    await redis.command(busAll.stream, ['XADD', busAll.stream, '*', 'm', JSON.stringify({ v: 1, kind: 'deliver', secret: 'secret-body-123' })]);
    const sentinel = deliver(new EventBuilder(manualClock()).to(['alice']));
    await bus().send(sentinel, { node: 'node-a' });

    await inbox.waitFor(sentinel, 'the sentinel');
    await eventually(() => count('bus.message_malformed') === 2, DEADLINE_MS, 'two malformed-message logs');
    expect(inbox.messages.map(messageKey)).toEqual([messageKey(sentinel)]);
    expect(JSON.stringify(lines)).not.toContain('secret-body-123');
    expect(missed).toBe(0);
  });

  it("lets the stream of a node that stopped reading expire, while a live node's stays", async () => {
    const keyPrefix = uniquePrefix();
    const bus = busMaker(redis, { keyPrefix, streamTtlMs: 400, blockMs: 50 });
    const inbox = new Inbox('node-a');
    await bus().start('node-a', inbox.handler);
    const events = new EventBuilder(manualClock());
    const toLive = deliver(events.to(['alice']));
    const publisher = bus();
    await publisher.send(toLive, { node: 'node-a' });
    await publisher.send(deliver(events.to(['bob'])), { node: 'node-gone' });
    await inbox.waitFor(toLive, 'the message to the live node');
    const keys = redisKeys(keyPrefix);
    const exists = async (key: string): Promise<boolean> => (await redis.command(key, ['EXISTS', key])) === 1;
    expect(await exists(keys.busNode('node-gone').stream)).toBe(true);

    await eventually(async () => !(await exists(keys.busNode('node-gone').stream)) && !(await exists(keys.busNode('node-gone').seq)), DEADLINE_MS, 'the gone node’s stream to expire');
    expect(await exists(keys.busNode('node-a').stream)).toBe(true);
  });

  it('calls a handler that rejects again, then moves on', async () => {
    const { log, count } = captureLog();
    const bus = busMaker(redis, { log, handlerAttempts: 2, backoff: { firstMs: 10, maxMs: 50 } });
    const events = new EventBuilder(manualClock());
    const failing = deliver(events.to(['alice']));
    const inbox = new Inbox('node-a', (message) => (messageKey(message) === messageKey(failing) ? Promise.reject(new Error('on purpose')) : Promise.resolve()));
    await bus().start('node-a', inbox.handler);
    const publisher = bus();
    await publisher.send(failing, { node: 'node-a' });
    const next = deliver(events.to(['alice']));
    await publisher.send(next, { node: 'node-a' });

    await inbox.waitFor(next, 'the message after the failing one');
    expect(inbox.messages.map(messageKey)).toEqual([messageKey(failing), messageKey(failing), messageKey(next)]);
    expect(count('bus.handler_failed')).toBe(2);
  });

  it('refuses a node id that cannot name a stream, a second start, and a start once closed', async () => {
    const bus = busMaker(redis);
    const handler = (): Promise<void> => Promise.resolve();
    for (const bad of ['all', 'node{a}', 'x'.repeat(41)]) await expect(bus().start(bad, handler)).rejects.toThrow(/node id/);
    const node = bus();
    await node.start('node-a', handler);
    await expect(node.start('node-a', handler)).rejects.toThrow(/already started/);
    const closed = bus();
    await closed.close();
    expectUnavailable(await rejection(closed.start('node-b', handler)));
  });
});

describe('RedisHistory', () => {
  it('stores a long recipient list once, not in every user stream, and replays it whole', async () => {
    const keyPrefix = uniquePrefix();
    const clock = manualClock();
    const history = new RedisHistory({ redis, keyPrefix, maxEventsPerStream: 10, clock: clock.now });
    const events = new EventBuilder(clock);
    const users = Array.from({ length: 300 }, (_, i) => `user-${String(i).padStart(3, '0')}-with-a-long-name`);
    const fanOut = events.to(users);
    const short = events.to(['user-000-with-a-long-name', 'bob']);
    const origin = '0'.repeat(26);

    expect(await history.appendBatch([fanOut, short])).toEqual([
      { stored: true, duplicate: false },
      { stored: true, duplicate: false },
    ]);

    const keys = redisKeys(keyPrefix);
    const list = JSON.stringify(fanOut.to);
    expect(await redis.command(keys.recipients(fanOut.id), ['GET', keys.recipients(fanOut.id)])).toBe(list);
    const copy = (await redis.command(keys.history(users[7]!).events, ['HGET', keys.history(users[7]!).events, fanOut.id])) as string;
    expect(copy.length).toBeLessThan(list.length / 10);
    for (const user of [users[0]!, users[299]!]) {
      expect((await history.since(user, origin, 10)).events).toEqual(user === users[0] ? [fanOut, short] : [fanOut]);
    }
    expect(await history.append(fanOut)).toEqual({ stored: true, duplicate: true });
  });
});

describe('Redis faults', () => {
  it('rejects every adapter call with unavailable while Redis is unreachable, and works again once it is back', async () => {
    const proxy = await startTcpProxy(server.url.replace('redis:', 'http:'));
    onTestFinished(() => proxy.close());
    const connection = await ownConnection(proxy.url.replace('http:', 'redis:'), { commandTimeoutMs: 500 });
    const keyPrefix = uniquePrefix();
    const clock = manualClock();
    const owners = new RedisOwners({ redis: connection, keyPrefix, clock: clock.now });
    const history = new RedisHistory({ redis: connection, keyPrefix, maxEventsPerStream: 10, clock: clock.now });
    const limiter = new RedisRateLimiter({ redis: connection, keyPrefix, budget: { perSecond: 1, burst: 5 }, clock: clock.now });
    const bus = busMaker(connection, { keyPrefix })();
    const events = new EventBuilder(clock);

    proxy.block();
    const calls: Promise<unknown>[] = [
      owners.heartbeat('node-a', clock.now() + 60_000),
      owners.claim(connectionRecord(clock, 'alice', 'node-a'), { mode: 'single' }),
      owners.locate(['alice', 'bob']),
      owners.release('alice', 'conn-x'),
      history.append(events.to(['alice'])),
      history.since('alice', events.nextId(), 10),
      limiter.take('publisher-1'),
      bus.send(deliver(events.to(['alice'])), { node: 'node-a' }),
      bus.sendBatch([{ message: deliver(events.toAll()), target: 'all' }]),
    ];
    for (const error of await Promise.all(calls.map(rejection))) expectUnavailable(error);

    proxy.unblock();
    await eventually(() => owners.heartbeat('node-a', clock.now() + 60_000).then(() => true, () => false), DEADLINE_MS, 'Redis reachable again');
    expect(await owners.claim(connectionRecord(clock, 'alice', 'node-a'), { mode: 'single' })).toEqual({ ok: true, displaced: [] });
    expect(await limiter.take('publisher-1')).toEqual({ allowed: true });
  });

  it('rejects a command that gets no reply in time with unavailable', async () => {
    const connection = await ownConnection(server.url, { commandTimeoutMs: 100 });
    const admin = await ownConnection(server.url);
    const limiter = new RedisRateLimiter({ redis: connection, keyPrefix: uniquePrefix(), budget: { perSecond: 1, burst: 5 } });
    // The server stops answering its clients for a while, as a stalled or overloaded one would.
    await admin.command('pause', ['CLIENT', 'PAUSE', '500', 'ALL']);

    expectUnavailable(await rejection(limiter.take('publisher-1')));
  });

  it('rejects connecting to a server that is not there with unavailable', async () => {
    const gone = await startRedisServer();
    await gone.stop();

    const error = await rejection(connectRedis({ url: gone.url, connectTimeoutMs: 300 }));

    expectUnavailable(error);
  });

  it('closes a connection idempotently, and rejects commands after with unavailable', async () => {
    const connection = await connectRedis({ url: server.url });
    await connection.close();
    await expect(connection.close()).resolves.toBeUndefined();
    connection.destroy();

    expectUnavailable(await rejection(connection.command('k', ['GET', 'k'])));
    expectUnavailable(await rejection(connection.dedicated()));
  });
});

describe('Redis keys', () => {
  it("puts every key under the configured prefix, with the user's keys in one hash tag", async () => {
    const keyPrefix = uniquePrefix();
    const clock = manualClock();
    const owners = new RedisOwners({ redis, keyPrefix, clock: clock.now });
    const history = new RedisHistory({ redis, keyPrefix, maxEventsPerStream: 10, clock: clock.now });
    const limiter = new RedisRateLimiter({ redis, keyPrefix, budget: { perSecond: 1, burst: 5 }, clock: clock.now });
    const events = new EventBuilder(clock);
    await owners.heartbeat('node-a', clock.now() + 60_000);
    await owners.claim(connectionRecord(clock, 'alice', 'node-a'), { mode: 'single' });
    const stored = [events.to(['alice']), events.toAll()];
    await history.appendBatch(stored);
    // Herald mints most ids: those need no mark.
    await history.appendBatch([{ ...events.to(['alice']), minted: true }]);
    await limiter.take('publisher-1');
    await busMaker(redis, { keyPrefix })().send(deliver(events.to(['alice'])), { node: 'node-a' });

    const keys = (await redis.command('scan', ['KEYS', `${keyPrefix}*`])) as string[];
    expect([...keys].sort()).toEqual(
      [
        `${keyPrefix}{bus:node-a}:seq`,
        `${keyPrefix}{bus:node-a}:stream`,
        `${keyPrefix}{h:alice}:events`,
        `${keyPrefix}{h:alice}:order`,
        `${keyPrefix}{hist}:events`,
        `${keyPrefix}{hist}:order`,
        // Caller-chosen ids: their marks (first write wins).
        ...stored.map((e) => `${keyPrefix}{id:${e.id}}`),
        `${keyPrefix}{nodes}`,
        `${keyPrefix}{o:alice}`,
        `${keyPrefix}{rate:publisher-1}`,
      ].sort(),
    );
    // Each expires on its own (the node table aside, which the heartbeats prune).
    for (const key of keys.filter((k) => !k.endsWith('{nodes}'))) expect(await redis.command(key, ['PTTL', key]), key).toBeGreaterThan(0);
  });

  it("defaults to the prefix 'herald:' and refuses a prefix with a brace", () => {
    expect(redisKeys().owners('alice')).toBe('herald:{o:alice}');
    expect(() => redisKeys('my{app}:')).toThrow(/prefix/);
  });
});
