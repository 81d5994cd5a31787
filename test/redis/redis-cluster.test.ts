/**
 * The Redis adapters on a Redis Cluster of three masters: the same port
 * contracts, unchanged, through a cluster client. A script whose keys were in
 * different slots would fail with CROSSSLOT here; the tests below also check
 * the slots directly, that users spread over the shards, and that work across
 * users is issued together rather than one round trip at a time.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { RedisBus } from '../../services/adapters/redis/redis-bus';
import { connectRedis, type LuaScript, type RedisConnection, type RedisReply } from '../../services/adapters/redis/redis-connection';
import { RedisHistory } from '../../services/adapters/redis/redis-history';
import { redisKeys } from '../../services/adapters/redis/redis-keys';
import { RedisOwners } from '../../services/adapters/redis/redis-owners';
import { RedisRateLimiter } from '../../services/adapters/redis/redis-rate-limiter';
import type { BusMessage } from '../../services/ports/bus';
import type { HeraldEvent } from '../../services/protocol/envelope';
import { silentLogger } from '../../services/shared/log';
import { describeBusContract } from '../contract/bus.contract';
import { EventBuilder, Inbox, connectionRecord, manualClock } from '../contract/fixtures';
import { describeHistoryContract } from '../contract/history.contract';
import { describeOwnersContract } from '../contract/owners.contract';
import { describeRateLimiterContract } from '../contract/rate-limiter.contract';
import { startRedisCluster, type RedisClusterServers } from '../../scripts/fleet/redis-server';

let cluster: RedisClusterServers;
let redis: RedisConnection;

beforeAll(async () => {
  cluster = await startRedisCluster();
  redis = await connectRedis({ url: cluster.urls });
});

afterAll(async () => {
  await redis.close();
  await cluster.stop();
});

const nothingToClean = (): Promise<void> => Promise.resolve();
const prefixOf = (context: { prefix: string }): string => `${context.prefix}:`;

describeBusContract('redis streams on a cluster', {
  ordered: true,
  create: (context) =>
    Promise.resolve({
      bus: () => Promise.resolve(new RedisBus({ redis, log: silentLogger, keyPrefix: prefixOf(context) })),
      cleanup: nothingToClean,
    }),
});

describeOwnersContract('redis cluster', (context) =>
  Promise.resolve({ owners: new RedisOwners({ redis, keyPrefix: prefixOf(context), clock: context.clock.now }), cleanup: nothingToClean }),
);

describeHistoryContract('redis cluster', (context, options) =>
  Promise.resolve({
    history: new RedisHistory({ redis, keyPrefix: prefixOf(context), maxEventsPerStream: options.maxEventsPerStream, clock: context.clock.now }),
    cleanup: nothingToClean,
  }),
);

describeRateLimiterContract('redis cluster', (context, budget) =>
  Promise.resolve({ limiter: new RedisRateLimiter({ redis, keyPrefix: prefixOf(context), budget, clock: context.clock.now }), cleanup: nothingToClean }),
);

interface Call {
  readonly name: string;
  readonly keys: readonly string[];
}

/** The connection, with every command and script call it carries written down, and the most ever in flight at once. */
function recording(inner: RedisConnection, calls: Call[] = [], load = { inFlight: 0, most: 0 }): { redis: RedisConnection; calls: Call[]; load: typeof load } {
  const track = async (call: Call, run: () => Promise<RedisReply>): Promise<RedisReply> => {
    calls.push(call);
    load.most = Math.max(load.most, ++load.inFlight);
    try {
      return await run();
    } finally {
      load.inFlight--;
    }
  };
  const wrapped: RedisConnection = {
    command: (key, args) => track({ name: args[0] ?? '', keys: [key] }, () => inner.command(key, args)),
    script: (script: LuaScript, keys, args) => track({ name: script.name, keys }, () => inner.script(script, keys, args)),
    dedicated: async () => recording(await inner.dedicated(), calls, load).redis,
    close: () => inner.close(),
    destroy: () => inner.destroy(),
  };
  return { redis: wrapped, calls, load };
}

const slotOf = async (key: string): Promise<number> => (await redis.command(key, ['CLUSTER', 'KEYSLOT', key])) as number;

/** The port of the master that serves each slot, from CLUSTER SLOTS. */
async function masterOfSlot(): Promise<(slot: number) => number> {
  const ranges = (await redis.command('any', ['CLUSTER', 'SLOTS'])) as [number, number, [string, number, ...unknown[]]][];
  return (slot) => {
    const range = ranges.find(([from, to]) => slot >= from && slot <= to);
    if (!range) throw new Error(`slot ${slot} is served by no master`);
    return range[2][1];
  };
}

let prefixes = 0;
const uniquePrefix = (): string => `c${process.pid.toString(36)}-${++prefixes}:`;
const deliver = (event: ReturnType<EventBuilder['to']>): BusMessage => ({ kind: 'deliver', events: [event] });

describe('on a Redis Cluster', () => {
  it('keeps the keys of every multi-key script in one hash slot, across every adapter', async () => {
    const { redis: recorded, calls } = recording(redis);
    const keyPrefix = uniquePrefix();
    const clock = manualClock();
    const events = new EventBuilder(clock);
    const owners = new RedisOwners({ redis: recorded, keyPrefix, clock: clock.now });
    const history = new RedisHistory({ redis: recorded, keyPrefix, maxEventsPerStream: 2, clock: clock.now });
    const limiter = new RedisRateLimiter({ redis: recorded, keyPrefix, budget: { perSecond: 1, burst: 2 }, clock: clock.now });
    const users = ['alice', 'bob 👋', 'u{1}', 'u}2{', 'x'.repeat(128)];
    const node = new RedisBus({ redis: recorded, log: silentLogger, keyPrefix });
    const publisher = new RedisBus({ redis: recorded, log: silentLogger, keyPrefix });
    onTestFinished(async () => {
      await Promise.all([node.close(), publisher.close()]);
    });
    const inbox = new Inbox('node-a');
    await node.start('node-a', inbox.handler);

    await owners.heartbeat('node-a', clock.now() + 60_000);
    for (const user of users) {
      await owners.claim(connectionRecord(clock, user, 'node-a'), { mode: 'multi', maxTabs: 3 });
      await owners.claim(connectionRecord(clock, user, 'node-a'), { mode: 'single' });
    }
    await owners.locate(users);
    await history.appendBatch([...users.map((u) => events.to([u])), events.to(users), events.toAll(), events.toAll(), events.toAll()]);
    for (const user of users) await history.since(user, events.nextId(), 10);
    for (const user of users) await limiter.take(user, 3);
    const sent = [deliver(events.to(['alice'])), deliver(events.toAll())];
    await publisher.sendBatch([
      { message: sent[0]!, target: { node: 'node-a' } },
      { message: sent[1]!, target: 'all' },
    ]);
    await inbox.waitForAll(sent, 'a message sent through the recorded connection');

    const multiKey = calls.filter((c) => c.keys.length > 1);
    expect(new Set(multiKey.map((c) => c.name))).toEqual(new Set(['bus-observe', 'bus-send', 'history-append', 'history-read']));
    for (const call of multiKey) {
      const slots = new Set(await Promise.all(call.keys.map(slotOf)));
      expect(slots.size, `${call.name}: ${call.keys.join(' ')}`).toBe(1);
    }
  });

  it("spreads users' keys over the shards, and keeps each user's keys together", async () => {
    const keys = redisKeys(uniquePrefix());
    const users = Array.from({ length: 30 }, (_, i) => `user-${i}`);
    const masterOf = await masterOfSlot();

    const masters = new Set(await Promise.all(users.map(async (u) => masterOf(await slotOf(keys.owners(u))))));
    expect(masters.size).toBe(cluster.servers.length);
    for (const user of users.slice(0, 5)) {
      const { order, events } = keys.history(user);
      expect(await slotOf(order)).toBe(await slotOf(events));
    }
  });

  it('issues the reads of a locate and the writes of an appendBatch across users together, not one round trip at a time', async () => {
    const { redis: recorded, calls, load } = recording(redis);
    const keyPrefix = uniquePrefix();
    const clock = manualClock();
    const owners = new RedisOwners({ redis: recorded, keyPrefix, clock: clock.now });
    const history = new RedisHistory({ redis: recorded, keyPrefix, maxEventsPerStream: 10, clock: clock.now });
    const users = Array.from({ length: 40 }, (_, i) => `user-${i}`);
    await owners.heartbeat('node-a', clock.now() + 60_000);

    load.most = 0;
    await owners.locate(users);
    expect(calls.filter((c) => c.name === 'HGETALL').length).toBeGreaterThanOrEqual(users.length);
    expect(load.most).toBeGreaterThanOrEqual(users.length);

    load.most = 0;
    const events = new EventBuilder(clock);
    const batch = (): HeraldEvent[] => [events.to(users), ...users.map((u) => events.to([u]))];
    // Ids Herald minted: the stream scripts alone.
    await history.appendBatch(batch().map((e) => ({ ...e, minted: true as const })));
    expect(calls.filter((c) => c.name === 'history-mark')).toEqual([]);
    expect(calls.filter((c) => c.name === 'history-append')).toHaveLength(users.length);
    expect(load.most).toBe(users.length);

    // Caller-chosen ids: one mark per event first, all together, then the stream scripts.
    load.most = 0;
    calls.length = 0;
    await history.appendBatch(batch());
    expect(calls.filter((c) => c.name === 'history-mark')).toHaveLength(users.length + 1);
    expect(calls.filter((c) => c.name === 'history-append')).toHaveLength(users.length);
    expect(load.most).toBe(users.length + 1);
  });

  it('reads the shared stream and a node stream that live on different shards', async () => {
    const keyPrefix = uniquePrefix();
    const keys = redisKeys(keyPrefix);
    const masterOf = await masterOfSlot();
    const allMaster = masterOf(await slotOf(keys.busAll.stream));
    const nodes = ['node-a', 'node-b', 'node-c', 'node-d', 'node-e'];
    const elsewhere: string[] = [];
    for (const nodeId of nodes) if (masterOf(await slotOf(keys.busNode(nodeId).stream)) !== allMaster) elsewhere.push(nodeId);
    const nodeId = elsewhere[0];
    if (nodeId === undefined) throw new Error('every candidate node stream is on the shard of the shared stream');

    const bus = new RedisBus({ redis, log: silentLogger, keyPrefix });
    const publisher = new RedisBus({ redis, log: silentLogger, keyPrefix });
    onTestFinished(async () => {
      await Promise.all([bus.close(), publisher.close()]);
    });
    const inbox = new Inbox(nodeId);
    await bus.start(nodeId, inbox.handler);
    const events = new EventBuilder(manualClock());
    const sent = [deliver(events.to(['alice'])), deliver(events.toAll())];
    await publisher.send(sent[0]!, { node: nodeId });
    await publisher.send(sent[1]!, 'all');

    await inbox.waitForAll(sent, 'a message on either shard');
  });

  it('finds the whole cluster from a single seed', async () => {
    const fromOne = await connectRedis({ url: [cluster.urls[0]!], cluster: true });
    onTestFinished(() => fromOne.close());
    const keys = redisKeys(uniquePrefix());
    const users = Array.from({ length: 12 }, (_, i) => `user-${i}`);

    await Promise.all(users.map((u) => fromOne.command(keys.owners(u), ['HSET', keys.owners(u), 'c', '1'])));

    expect(await Promise.all(users.map((u) => redis.command(keys.owners(u), ['HGET', keys.owners(u), 'c'])))).toEqual(users.map(() => '1'));
  });
});
