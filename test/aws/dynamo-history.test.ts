/**
 * What only the DynamoDB `History` adapter has, beyond the shared contract: its
 * items and TTLs (expiry plus the horizon), expired items still stored, the
 * horizon itself, healing a half-done append, a 1,000-recipient fan-out, two
 * instances on one table, unprocessed batch items, and SDK faults.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoDBClient, GetItemCommand, PutItemCommand, QueryCommand, type BatchWriteItemCommandInput, type BatchWriteItemCommandOutput, type WriteRequest } from '@aws-sdk/client-dynamodb';
import { DynamoHistory, HISTORY_HORIZON_MS } from '../../services/adapters/aws/dynamo-history';
import { eventIdFloor, newEventId } from '../../services/protocol/event-id';
import { HeraldError } from '../../services/protocol/errors';
import { contentFingerprint } from '../../services/shared/event-fingerprint';
import { EventBuilder, dataOfBytes, manualClock, type ManualClock } from '../contract/fixtures';
import type { HeraldEvent } from '../../services/protocol/envelope';
import { startEmulators, unique, type Emulators } from './emulators';

const ROOMY = 1_000;
const ALL = 10_000;

let emulators: Emulators;

beforeAll(async () => {
  emulators = await startEmulators();
});

afterAll(async () => {
  await emulators.stop();
});

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

async function setUp(client: DynamoDBClient = emulators.dynamo): Promise<{ tableName: string; clock: ManualClock; history: DynamoHistory; events: EventBuilder; origin: string }> {
  const tableName = unique('history');
  await emulators.createTable(tableName);
  const clock = manualClock();
  const history = new DynamoHistory({ client, tableName, maxEventsPerStream: ROOMY, clock: clock.now });
  return { tableName, clock, history, events: new EventBuilder(clock), origin: eventIdFloor(clock.now() - 1) };
}

async function rawItem(tableName: string, pk: string, sk: string): Promise<Record<string, { S?: string; N?: string }> | undefined> {
  const { Item } = await emulators.dynamo.send(new GetItemCommand({ TableName: tableName, Key: { pk: { S: pk }, sk: { S: sk } }, ConsistentRead: true }));
  return Item;
}

async function streamItems(tableName: string, pk: string): Promise<Array<Record<string, { S?: string; N?: string }>>> {
  const { Items } = await emulators.dynamo.send(
    new QueryCommand({ TableName: tableName, KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': { S: pk } }, ConsistentRead: true }),
  );
  return Items ?? [];
}

describe('DynamoHistory items', () => {
  it('writes an event item and one stream item per recipient, each with ttl = expiry + the horizon', async () => {
    const { tableName, clock, history, events } = await setUp();
    const event = events.to(['alice', 'bob'], { ttlSeconds: 60 });
    await history.append(event);
    const expiresAtMs = clock.now() + 60_000;
    const ttl = { N: String(Math.ceil((expiresAtMs + HISTORY_HORIZON_MS) / 1000)) };

    const eventItem = await rawItem(tableName, `event#${event.id}`, 'event');
    expect(eventItem).toEqual({ pk: { S: `event#${event.id}` }, sk: { S: 'event' }, a: { S: expect.any(String) as string }, x: { N: String(expiresAtMs) }, ttl, h: { S: contentFingerprint(event) } });
    for (const user of ['alice', 'bob']) {
      expect(await streamItems(tableName, `hist#u#${user}`)).toEqual([
        {
          pk: { S: `hist#u#${user}` },
          sk: eventItem!.a,
          id: { S: event.id },
          event: { S: event.event },
          data: { S: event.data },
          to: { S: JSON.stringify(event.to) },
          publishedAtMs: { N: String(event.publishedAtMs) },
          ttlSeconds: { N: '60' },
          x: { N: String(expiresAtMs) },
          ttl,
        },
      ]);
    }
  });

  it('puts a broadcast in the broadcast stream only', async () => {
    const { tableName, history, events } = await setUp();
    await history.append(events.toAll());

    expect(await streamItems(tableName, 'hist#all')).toHaveLength(1);
    expect(await streamItems(tableName, 'hist#u#all')).toHaveLength(0);
  });

  it('ignores expired items that storage has not deleted yet, and reports them as history_trimmed', async () => {
    const { tableName, clock, history, events, origin } = await setUp();
    const now = clock.now();
    const expired = events.to(['alice']);
    // Written directly, as an item whose expiry passed while TTL has not removed it (that takes up to days).
    await emulators.dynamo.send(
      new PutItemCommand({
        TableName: tableName,
        Item: {
          pk: { S: 'hist#u#alice' },
          sk: { S: newEventId(now) },
          id: { S: expired.id },
          event: { S: expired.event },
          data: { S: expired.data },
          to: { S: JSON.stringify(expired.to) },
          publishedAtMs: { N: String(now) },
          ttlSeconds: { N: '1' },
          x: { N: String(now - 1) },
          ttl: { N: String(Math.ceil((now + HISTORY_HORIZON_MS) / 1000)) },
        },
      }),
    );
    const kept = events.to(['alice']);
    await history.append(kept);

    expect(await history.since('alice', origin, ALL)).toEqual({ events: [kept], gap: 'history_trimmed' });
    expect(await history.since('alice', expired.id, ALL)).toEqual({ events: [kept], gap: null });
  });

  it('reports a position older than the horizon as history_trimmed: what followed it may be deleted', async () => {
    const { clock, history, events } = await setUp();
    const event = events.to(['alice']);
    await history.append(event);

    expect(await history.since('alice', eventIdFloor(clock.now() - HISTORY_HORIZON_MS - 20_000), ALL)).toEqual({ events: [event], gap: 'history_trimmed' });
    expect(await history.since('alice', eventIdFloor(clock.now() - HISTORY_HORIZON_MS + 20_000), ALL)).toEqual({ events: [event], gap: null });
  });

  it("finds, after a position it never stored, an event whose id is ahead of its append time (a publisher's fast clock)", async () => {
    const { clock, history, events } = await setUp();
    // Minted 5 s ahead (within the envelope's allowed skew), appended now.
    const ahead = events.to(['alice'], { id: eventIdFloor(clock.now() + 5_000) });
    await history.append(ahead);
    const position = eventIdFloor(clock.now() + 1_000); // a live-only event seen between the two

    expect(await history.since('alice', position, ALL)).toEqual({ events: [ahead], gap: null });
  });

  // An event item as a first attempt leaves it when it dies before its stream items: `h` absent, as before fingerprints were kept.
  async function halfDone(tableName: string, clock: ManualClock, event: HeraldEvent, h?: string): Promise<string> {
    const appendKey = newEventId(clock.now());
    const item = { pk: { S: `event#${event.id}` }, sk: { S: 'event' }, a: { S: appendKey }, x: { N: String(clock.now() + 3_600_000) }, ttl: { N: '1' } };
    await emulators.dynamo.send(new PutItemCommand({ TableName: tableName, Item: h === undefined ? item : { ...item, h: { S: h } } }));
    return appendKey;
  }

  it('heals an append that stored its event item but died before its stream items', async () => {
    const { tableName, clock, history, events, origin } = await setUp();
    const event = events.to(['alice']);
    const appendKey = await halfDone(tableName, clock, event, contentFingerprint(event));
    expect(await history.since('alice', origin, ALL)).toEqual({ events: [], gap: null });

    // The publisher's retry: the same id, the same content.
    expect(await history.append(event)).toEqual({ stored: true, duplicate: true });

    expect(await history.since('alice', origin, ALL)).toEqual({ events: [event], gap: null });
    expect((await streamItems(tableName, 'hist#u#alice')).map((i) => i.sk?.S)).toEqual([appendKey]);
  });

  it('heals the same way an event item written before fingerprints were kept', async () => {
    const { tableName, clock, history, events, origin } = await setUp();
    const event = events.to(['alice']);
    await halfDone(tableName, clock, event);

    expect(await history.append(event)).toEqual({ stored: true, duplicate: true });

    expect(await history.since('alice', origin, ALL)).toEqual({ events: [event], gap: null });
  });

  it('does not heal with other content: the id belongs to its first write, whose stream items never came', async () => {
    const { tableName, clock, history, events, origin } = await setUp();
    const first = events.to(['alice'], { data: { text: 'first' } });
    await halfDone(tableName, clock, first, contentFingerprint(first));

    expect(await history.append({ ...events.to(['alice'], { data: { text: 'other' } }), id: first.id })).toEqual({ stored: true, duplicate: true });

    expect(await history.since('alice', origin, ALL)).toEqual({ events: [], gap: null });
    expect(await streamItems(tableName, 'hist#u#alice')).toEqual([]);
  });

  it('refuses a malformed stream item with a message naming it, not as a transient fault', async () => {
    const { tableName, clock, history, origin } = await setUp();
    await emulators.dynamo.send(
      new PutItemCommand({ TableName: tableName, Item: { pk: { S: 'hist#u#alice' }, sk: { S: newEventId(clock.now()) }, id: { S: 'x' } } }),
    );

    const error = await history.since('alice', origin, ALL).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(HeraldError);
    expect((error as Error).message).toMatch(/malformed history item/);
  });
});

describe('DynamoHistory fan-out', () => {
  it('stores an event for 1,000 recipients in 40 BatchWriteItem requests, its recipient list once', async () => {
    const { client, calls } = countingClient();
    const { tableName, history, events, origin } = await setUp(client);
    const users = Array.from({ length: 1_000 }, (_, i) => `user-${i}`);
    const event = events.to(users);

    expect(await history.append(event)).toEqual({ stored: true, duplicate: false });

    expect(calls.filter((c) => c === 'BatchWriteItemCommand')).toHaveLength(40);
    expect(calls.filter((c) => c !== 'BatchWriteItemCommand')).toEqual(['PutItemCommand']);
    for (const user of ['user-0', 'user-499', 'user-999']) expect(await history.since(user, origin, ALL), user).toEqual({ events: [event], gap: null });
    // Stream items refer to the list on the event item instead of copying ~10 KB into each.
    const [item] = await streamItems(tableName, 'hist#u#user-7');
    expect(item?.to).toBeUndefined();
    expect((await rawItem(tableName, `event#${event.id}`, 'event'))?.r).toEqual({ S: JSON.stringify(event.to) });
  });

  it('writes again what BatchWriteItem left unprocessed', async () => {
    const { client, calls } = countingClient();
    let throttle = true;
    client.middlewareStack.add(
      (next, context) => async (args) => {
        const result = await next(args);
        if (!throttle || context.commandName !== 'BatchWriteItemCommand') return result;
        throttle = false;
        // Report five of the written puts as unprocessed, as a throttled table does (a repeated put is harmless).
        const [[tableName, requests]] = Object.entries((args.input as BatchWriteItemCommandInput).RequestItems!) as [[string, WriteRequest[]]];
        (result.output as BatchWriteItemCommandOutput).UnprocessedItems = { [tableName]: requests.slice(0, 5) };
        return result;
      },
      { step: 'initialize', name: 'leaveUnprocessed' },
    );
    const { history, events, origin } = await setUp(client);
    const event = events.to(Array.from({ length: 25 }, (_, i) => `user-${i}`));

    await history.append(event);

    expect(calls.filter((c) => c === 'BatchWriteItemCommand')).toHaveLength(2);
    expect(await history.since('user-3', origin, ALL)).toEqual({ events: [event], gap: null });
  });

  it('replays from another instance what this one appended', async () => {
    const { tableName, clock, history: writer, events, origin } = await setUp();
    const reader = new DynamoHistory({ client: countingClient().client, tableName, maxEventsPerStream: ROOMY, clock: clock.now });
    const stored = [events.to(['alice']), events.toAll(), events.to(['alice', 'bob'])];
    for (const event of stored) await writer.append(event);

    expect(await reader.since('alice', origin, ALL)).toEqual({ events: stored, gap: null });
    expect(await reader.since('alice', stored[0]!.id, ALL)).toEqual({ events: stored.slice(1), gap: null });
    expect(await reader.append(stored[2]!)).toEqual({ stored: true, duplicate: true });
  });
});

describe('DynamoHistory requests and faults', () => {
  it('replays from a stored position with one Query per stream and no lookup of the position', async () => {
    const { client, calls } = countingClient();
    const { history, events } = await setUp(client);
    const stored = [events.to(['alice']), events.toAll()];
    for (const event of stored) await history.append(event);
    calls.splice(0);

    await history.since('alice', stored[0]!.id, ALL);

    expect(calls.sort()).toEqual(['QueryCommand', 'QueryCommand']);
  });

  it('stores a batch of 100 notifications with minted ids in 4 BatchWriteItem requests, one item per recipient', async () => {
    const { client, calls } = countingClient();
    const { history, events } = await setUp(client);
    const batch = Array.from({ length: 100 }, (_, i): HeraldEvent => ({ ...events.to([`user-${i % 7}`], { data: dataOfBytes(600) }), minted: true }));
    calls.splice(0);

    await history.appendBatch(batch);

    expect(calls).toEqual(Array.from({ length: 4 }, () => 'BatchWriteItemCommand'));
  });

  it('checks each caller-chosen id of a batch with one conditional put, then writes the stream items in batches', async () => {
    const { client, calls } = countingClient();
    const { history, events } = await setUp(client);
    const batch = Array.from({ length: 30 }, (_, i) => events.to([`user-${i % 3}`]));
    calls.splice(0);

    await history.appendBatch(batch);

    expect(calls.filter((c) => c === 'PutItemCommand')).toHaveLength(30);
    expect(calls.filter((c) => c === 'BatchWriteItemCommand')).toHaveLength(2);
    expect(calls).toHaveLength(32);
  });

  it('rejects append and since with a transient unavailable HeraldError when DynamoDB cannot be reached', async () => {
    const client = new DynamoDBClient({ region: emulators.region, credentials: emulators.credentials, endpoint: 'http://127.0.0.1:1', maxAttempts: 1 });
    const clock = manualClock();
    const history = new DynamoHistory({ client, tableName: 'unreachable', maxEventsPerStream: ROOMY, clock: clock.now });
    const events = new EventBuilder(clock);
    try {
      for (const [name, call] of [
        ['append', () => history.append(events.to(['alice']))],
        ['since', () => history.since('alice', events.nextId(), ALL)],
      ] as const) {
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

  it('stores nothing for a live-only event, without a request', async () => {
    const { client, calls } = countingClient();
    const { history, events } = await setUp(client);
    expect(await history.append(events.to(['alice'], { ttlSeconds: 0 }))).toEqual({ stored: false, duplicate: false });
    expect(calls).toEqual([]);
  });
});

/** A client whose BatchWriteItem carrying `id` waits for `release()` before it goes on: a slow, throttled write. */
function gatedWrites(id: string): { client: DynamoDBClient; held: () => boolean; release: () => void } {
  const client = new DynamoDBClient({ region: emulators.region, credentials: emulators.credentials, endpoint: emulators.dynamoEndpoint });
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let held = false;
  client.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName === 'BatchWriteItemCommand' && JSON.stringify(args.input).includes(id)) {
        held = true;
        await gate;
      }
      return next(args);
    },
    { step: 'initialize', name: 'gateWrites' },
  );
  return { client, held: () => held, release };
}

describe('DynamoHistory: appends that land late', () => {
  it('replays, from a position appended after it, an event whose key was minted first but whose write landed last', async () => {
    const events = new EventBuilder(manualClock());
    const slow = events.to(['alice']);
    const gated = gatedWrites(slow.id);
    const { clock, history } = await setUp(gated.client);
    const appending = history.append(slow);
    await expect.poll(() => gated.held()).toBe(true);
    // Minted later, written at once, delivered live: the client reads it and then disconnects.
    clock.advance(1_000);
    const fast = events.to(['alice'], { id: newEventId(clock.now()) });
    await history.append(fast);
    gated.release();
    expect(await appending).toEqual({ stored: true, duplicate: false });

    const replay = await history.since('alice', fast.id, ALL);
    expect(replay.events.map((e) => e.id)).toEqual([slow.id]);
    expect(replay.gap).toBeNull();
    gated.client.destroy();
  });

  it('fails an append that outlives its deadline with unavailable, and sends nothing after it', async () => {
    const events = new EventBuilder(manualClock());
    const slow = events.to(['alice']);
    const gated = gatedWrites(slow.id);
    const tableName = unique('history');
    await emulators.createTable(tableName);
    const history = new DynamoHistory({ client: gated.client, tableName, maxEventsPerStream: ROOMY, appendDeadlineMs: 200 });
    const appending = history.append(slow);
    const outcome = appending.then(
      () => 'stored',
      (error: unknown) => (error instanceof HeraldError ? error.code : String(error)),
    );
    await expect.poll(() => gated.held()).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 400));
    gated.release();
    expect(await outcome).toBe('unavailable');
    // Nothing of it landed late, where a replay would not look.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await streamItems(tableName, 'hist#u#alice')).toEqual([]);
    gated.client.destroy();
  });

  it('refuses a deadline a replay could not look back past', () => {
    expect(() => new DynamoHistory({ client: emulators.dynamo, tableName: 't', maxEventsPerStream: 1, appendDeadlineMs: 60_000 })).toThrow(RangeError);
  });
});
