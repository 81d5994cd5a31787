/**
 * What only the DynamoDB `Owners` adapter has, beyond the shared contract: its
 * item layout and TTLs, records that expired but are still stored, two adapter
 * instances on one table, the requests each call costs, and SDK faults.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoDBClient, GetItemCommand, PutItemCommand, type BatchGetItemCommandInput, type BatchGetItemCommandOutput } from '@aws-sdk/client-dynamodb';
import { DynamoOwners } from '../../services/adapters/aws/dynamo-owners';
import type { ClaimPolicy, ConnectionRecord } from '../../services/ports/owners';
import { HeraldError } from '../../services/protocol/errors';
import { connectionRecord, manualClock, type ManualClock } from '../contract/fixtures';
import { startEmulators, unique, type Emulators } from './emulators';

const SINGLE: ClaimPolicy = { mode: 'single' };
const DAY_S = 24 * 3600;
const HOUR_MS = 3600 * 1000;

let emulators: Emulators;

beforeAll(async () => {
  emulators = await startEmulators();
});

afterAll(async () => {
  await emulators.stop();
});

/** A client of its own that records the name of every command it sends (SDK retries are not counted). */
function countingClient(): { client: DynamoDBClient; calls: string[] } {
  const client = new DynamoDBClient({ region: emulators.region, credentials: emulators.credentials, endpoint: emulators.dynamoEndpoint });
  const calls: string[] = [];
  client.middlewareStack.add(
    (next, context) => (args) => {
      calls.push(context.commandName ?? 'unknown');
      return next(args);
    },
    { step: 'initialize', name: 'countCalls' },
  );
  return { client, calls };
}

async function setUp(): Promise<{ tableName: string; clock: ManualClock; owners: DynamoOwners; record: (userId: string, nodeId: string, ttlMs?: number) => ConnectionRecord }> {
  const tableName = unique('owners');
  await emulators.createTable(tableName);
  const clock = manualClock();
  const owners = new DynamoOwners({ client: emulators.dynamo, tableName, clock: clock.now });
  return { tableName, clock, owners, record: (userId, nodeId, ttlMs) => connectionRecord(clock, userId, nodeId, ttlMs) };
}

async function rawItem(tableName: string, pk: string, sk: string): Promise<Record<string, unknown> | undefined> {
  const { Item } = await emulators.dynamo.send(new GetItemCommand({ TableName: tableName, Key: { pk: { S: pk }, sk: { S: sk } }, ConsistentRead: true }));
  return Item;
}

describe('DynamoOwners items', () => {
  it('stores one owner item per user with its tabs in a map, and a node item per node, each with a ttl', async () => {
    const { tableName, clock, owners, record } = await setUp();
    await owners.heartbeat('node-a', clock.now() + 30_000);
    const tab = record('alice', 'node-a', HOUR_MS);
    await owners.claim(tab, SINGLE);

    expect(await rawItem(tableName, 'user#alice', 'owner')).toEqual({
      pk: { S: 'user#alice' },
      sk: { S: 'owner' },
      conns: { M: { [tab.connectionId]: { M: { n: { S: 'node-a' }, c: { N: String(tab.connectedAtMs) }, e: { N: String(tab.expiresAtMs) } } } } },
      v: { S: expect.any(String) as string },
      // The last record's expiry plus a day, in epoch seconds.
      ttl: { N: String(Math.ceil(tab.expiresAtMs / 1000) + DAY_S) },
    });
    expect(await rawItem(tableName, 'nodes', 'node#node-a')).toEqual({
      pk: { S: 'nodes' },
      sk: { S: 'node#node-a' },
      e: { N: String(clock.now() + 30_000) },
      ttl: { N: String(Math.ceil((clock.now() + 30_000) / 1000) + DAY_S) },
    });
  });

  it('gives a node declared gone a ttl from now, not from its past expiry', async () => {
    const { tableName, clock, owners } = await setUp();
    await owners.heartbeat('node-a', 0);

    const item = await rawItem(tableName, 'nodes', 'node#node-a');
    expect(item?.ttl).toEqual({ N: String(Math.ceil(clock.now() / 1000) + DAY_S) });
  });

  it('creates no item when releasing a connection of a user who has none', async () => {
    const { tableName, owners } = await setUp();
    await owners.release('nobody', 'conn-1');

    expect(await rawItem(tableName, 'user#nobody', 'owner')).toBeUndefined();
  });

  it('ignores records that expired but are still stored, and a node item whose expiry passed', async () => {
    const { tableName, clock, owners } = await setUp();
    const now = clock.now();
    await owners.heartbeat('node-a', now + HOUR_MS);
    // Written directly: TTL deletion can lag by days, so these must be invisible by their own expiry.
    await emulators.dynamo.send(
      new PutItemCommand({
        TableName: tableName,
        Item: { pk: { S: 'nodes' }, sk: { S: 'node#node-dead' }, e: { N: String(now - 1) }, ttl: { N: String(Math.ceil(now / 1000) + DAY_S) } },
      }),
    );
    const conns = {
      expired: { M: { n: { S: 'node-a' }, c: { N: String(now - HOUR_MS) }, e: { N: String(now - 1) } } },
      onDeadNode: { M: { n: { S: 'node-dead' }, c: { N: String(now) }, e: { N: String(now + HOUR_MS) } } },
    };
    for (const user of ['alice', 'bob']) {
      await emulators.dynamo.send(
        new PutItemCommand({
          TableName: tableName,
          Item: { pk: { S: `user#${user}` }, sk: { S: 'owner' }, conns: { M: conns }, v: { S: 'v1' }, ttl: { N: String(Math.ceil(now / 1000) + DAY_S) } },
        }),
      );
    }

    expect((await owners.locate(['alice', 'bob'])).size).toBe(0);
    const tab = connectionRecord(clock, 'alice', 'node-a');
    expect(await owners.claim(tab, SINGLE)).toEqual({ ok: true, displaced: [] });
    expect(await owners.claim(connectionRecord(clock, 'bob', 'node-a'), { mode: 'multi', maxTabs: 1 })).toEqual({ ok: true, displaced: [] });
    expect(await owners.locate(['alice', 'bob'])).toEqual(new Map([['alice', ['node-a']], ['bob', ['node-a']]]));
  });

  it('refuses a malformed owner item with a message naming it, not as a transient fault', async () => {
    const { tableName, clock, owners } = await setUp();
    await owners.heartbeat('node-a', clock.now() + HOUR_MS);
    await emulators.dynamo.send(
      new PutItemCommand({ TableName: tableName, Item: { pk: { S: 'user#alice' }, sk: { S: 'owner' }, conns: { S: 'oops' }, v: { S: 'v1' } } }),
    );

    const error = await owners.locate(['alice']).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(HeraldError);
    expect((error as Error).message).toMatch(/malformed owner item.*conns/);
  });
});

describe('DynamoOwners across instances', () => {
  it("sees a claim written by another instance, even on a node that started after its cache was filled", async () => {
    const { tableName, clock, owners: first } = await setUp();
    const second = new DynamoOwners({ client: countingClient().client, tableName, clock: clock.now });
    await first.heartbeat('node-a', clock.now() + HOUR_MS);
    expect((await second.locate(['warm-up'])).size).toBe(0);
    await first.claim(connectionRecord(clock, 'bob', 'node-a'), SINGLE);
    expect(await second.locate(['bob'])).toEqual(new Map([['bob', ['node-a']]])); // fills second's node cache

    // A new node heartbeats and claims; the clock has not moved, so second's cache is still "fresh".
    await first.heartbeat('node-new', clock.now() + HOUR_MS);
    const tab = connectionRecord(clock, 'alice', 'node-new');
    await first.claim(tab, SINGLE);

    expect(await second.locate(['alice'])).toEqual(new Map([['alice', ['node-new']]]));
    expect(await second.claim(connectionRecord(clock, 'alice', 'node-a'), SINGLE)).toEqual({ ok: true, displaced: [tab] });
  });

  it("sees another instance's shutdown heartbeat once its node cache (nodeCacheMs) has run out", async () => {
    const { tableName, clock, owners: first } = await setUp();
    const second = new DynamoOwners({ client: emulators.dynamo, tableName, clock: clock.now, nodeCacheMs: 1_000 });
    await first.heartbeat('node-x', clock.now() + HOUR_MS);
    await first.claim(connectionRecord(clock, 'alice', 'node-x'), SINGLE);
    expect(await second.locate(['alice'])).toEqual(new Map([['alice', ['node-x']]]));

    await first.heartbeat('node-x', 0);

    // The writer sees it at once; another instance may route to the gone node for up to nodeCacheMs (harmless: it has no streams).
    expect((await first.locate(['alice'])).size).toBe(0);
    expect(await second.locate(['alice'])).toEqual(new Map([['alice', ['node-x']]]));
    clock.advance(1_000);
    expect((await second.locate(['alice'])).size).toBe(0);
  });

  it('does not bring back a tab released while a multi-tab claim was between its read and its write', async () => {
    const { tableName, clock, owners } = await setUp();
    await owners.heartbeat('node-a', clock.now() + HOUR_MS);
    const old = connectionRecord(clock, 'alice', 'node-a');
    await owners.claim(old, { mode: 'multi', maxTabs: 3 });
    // A client whose conditional owner write first runs the release, right after the claim's read.
    let armed = true;
    const client = new DynamoDBClient({ region: emulators.region, credentials: emulators.credentials, endpoint: emulators.dynamoEndpoint });
    client.middlewareStack.add(
      (next, context) => async (args) => {
        if (armed && context.commandName === 'PutItemCommand') {
          armed = false;
          await owners.release('alice', old.connectionId);
        }
        return next(args);
      },
      { step: 'initialize', name: 'releaseInBetween' },
    );
    const racing = new DynamoOwners({ client, tableName, clock: clock.now });
    const tab = connectionRecord(clock, 'alice', 'node-b');
    await owners.heartbeat('node-b', clock.now() + HOUR_MS);

    expect(await racing.claim(tab, { mode: 'multi', maxTabs: 3 })).toEqual({ ok: true, displaced: [] });
    expect(await owners.locate(['alice'])).toEqual(new Map([['alice', ['node-b']]]));
  });
});

describe('DynamoOwners requests', () => {
  it('claims a single tab with one PutItem, releases with one UpdateItem, heartbeats with one PutItem', async () => {
    const { tableName, clock } = await setUp();
    const { client, calls } = countingClient();
    const owners = new DynamoOwners({ client, tableName, clock: clock.now });

    await owners.heartbeat('node-a', clock.now() + HOUR_MS);
    expect(calls.splice(0)).toEqual(['PutItemCommand']);
    const tab = connectionRecord(clock, 'alice', 'node-a');
    await owners.claim(tab, SINGLE);
    expect(calls.splice(0)).toEqual(['PutItemCommand']);
    // Displacing a live tab reads the node table once (then it is cached).
    await owners.claim(connectionRecord(clock, 'alice', 'node-a'), SINGLE);
    expect(calls.splice(0)).toEqual(['PutItemCommand', 'QueryCommand']);
    await owners.release('alice', tab.connectionId);
    expect(calls.splice(0)).toEqual(['UpdateItemCommand']);
    await owners.claim(connectionRecord(clock, 'alice', 'node-a'), { mode: 'multi', maxTabs: 2 });
    expect(calls.splice(0)).toEqual(['GetItemCommand', 'PutItemCommand']);
  });

  it("reads the node table once, not per call, for users whose tab was on a crashed node", async () => {
    const { tableName, clock, owners } = await setUp();
    await owners.heartbeat('node-x', clock.now() + 10_000);
    await owners.claim(connectionRecord(clock, 'alice', 'node-x', HOUR_MS), SINGLE);
    const { client, calls } = countingClient();
    const publisher = new DynamoOwners({ client, tableName, clock: clock.now });
    clock.advance(10_001); // node-x stopped heartbeating; alice's record has not expired by itself

    for (let i = 0; i < 3; i++) expect((await publisher.locate(['alice'])).size).toBe(0);

    expect(calls.filter((c) => c === 'QueryCommand')).toHaveLength(1);
  });

  it('locates 250 users with three BatchGetItem requests of at most 100 keys, answering each once', async () => {
    const { tableName, clock, owners } = await setUp();
    const nodes = ['node-0', 'node-1', 'node-2'];
    for (const node of nodes) await owners.heartbeat(node, clock.now() + HOUR_MS);
    const users = Array.from({ length: 250 }, (_, i) => `user-${i}`);
    await Promise.all(users.filter((_, i) => i % 5 !== 0).map((u, i) => owners.claim(connectionRecord(clock, u, nodes[i % 3]!), SINGLE)));
    const { client, calls } = countingClient();
    const reader = new DynamoOwners({ client, tableName, clock: clock.now });

    // Duplicates in the input are asked for once.
    const found = await reader.locate([...users, ...users.slice(0, 50)]);

    expect(calls.filter((c) => c === 'BatchGetItemCommand')).toHaveLength(3);
    expect(calls.filter((c) => c === 'QueryCommand')).toHaveLength(1);
    expect(found.size).toBe(200);
    users.forEach((u, i) => expect(found.has(u), u).toBe(i % 5 !== 0));
  });

  it('asks again for keys DynamoDB left unprocessed', async () => {
    const { tableName, clock, owners } = await setUp();
    await owners.heartbeat('node-a', clock.now() + HOUR_MS);
    const users = Array.from({ length: 30 }, (_, i) => `user-${i}`);
    await Promise.all(users.map((u) => owners.claim(connectionRecord(clock, u, 'node-a'), SINGLE)));
    // The first answer withholds ten keys as unprocessed, as a throttled table does.
    const { client, calls } = countingClient();
    let throttle = true;
    client.middlewareStack.add(
      (next) => async (args) => {
        const result = await next(args);
        if (!throttle) return result;
        throttle = false;
        const input = args.input as BatchGetItemCommandInput;
        const output = result.output as BatchGetItemCommandOutput;
        const withheld = input.RequestItems![tableName]!.Keys!.slice(0, 10);
        const withheldPks = new Set(withheld.map((k) => k.pk!.S));
        output.Responses![tableName] = output.Responses![tableName]!.filter((item) => !withheldPks.has(item.pk!.S));
        output.UnprocessedKeys = { [tableName]: { Keys: withheld } };
        return result;
      },
      { step: 'initialize', name: 'withholdKeys' },
    );

    const found = await new DynamoOwners({ client, tableName, clock: clock.now }).locate(users);

    expect(calls.filter((c) => c === 'BatchGetItemCommand')).toHaveLength(2);
    expect(found.size).toBe(30);
  });
});

describe('DynamoOwners faults', () => {
  it('rejects every call with a transient unavailable HeraldError when DynamoDB cannot be reached', async () => {
    const client = new DynamoDBClient({ region: emulators.region, credentials: emulators.credentials, endpoint: 'http://127.0.0.1:1', maxAttempts: 1 });
    const clock = manualClock();
    const owners = new DynamoOwners({ client, tableName: 'unreachable', clock: clock.now });
    const calls: Array<[string, () => Promise<unknown>]> = [
      ['claim single', () => owners.claim(connectionRecord(clock, 'alice', 'node-a'), SINGLE)],
      ['claim multi', () => owners.claim(connectionRecord(clock, 'alice', 'node-a'), { mode: 'multi', maxTabs: 2 })],
      ['release', () => owners.release('alice', 'conn-1')],
      ['heartbeat', () => owners.heartbeat('node-a', clock.now() + HOUR_MS)],
      ['locate', () => owners.locate(['alice'])],
    ];
    try {
      for (const [name, call] of calls) {
        const error = await call().then(
          () => new Error(`${name} resolved`),
          (e: unknown) => e,
        );
        expect(error, name).toBeInstanceOf(HeraldError);
        expect((error as HeraldError).code, name).toBe('unavailable');
      }
    } finally {
      client.destroy();
    }
  });

  it('leaves the shared client open on close', async () => {
    const { owners } = await setUp();
    await owners.close();
    expect((await owners.locate(['alice'])).size).toBe(0);
  });
});
