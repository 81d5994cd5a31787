import { GetItemCommand, PutItemCommand, QueryCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { systemClock, type Clock } from '../../ports/clock';
import type { AppendResult, History, ReplayResult } from '../../ports/history';
import type { HeraldEvent, Recipients } from '../../protocol/envelope';
import { eventIdFloor, eventIdTimeMs, isEventId, newEventId } from '../../protocol/event-id';
import { unavailable } from '../../protocol/faults';
import { MAX_ID_CLOCK_SKEW_MS } from '../../protocol/limits';
import {
  CONDITION_FAILED,
  DAY_MS,
  batchGetAll,
  batchWriteAll,
  call,
  conditional,
  keys,
  malformed,
  n,
  parseRecipients,
  readNumber,
  readStreamItem,
  readString,
  s,
  streamItems,
  ttlAt,
  type Item,
  type StreamEntry,
} from './dynamo-items';
import { TABLE } from './table';

export interface DynamoHistoryOptions {
  /** Shared with the rest of the process: `close()` leaves it open. */
  readonly client: DynamoDBClient;
  readonly tableName: string;
  /** Events replayable per user stream and for the broadcast stream (older ones count as evicted). */
  readonly maxEventsPerStream: number;
  /** @default the system clock */
  readonly clock?: Clock;
}

/**
 * How long an expired history item stays in the table (its `ttl` is expiry +
 * this). A reader must SEE that something after its position expired to report
 * `history_trimmed`; DynamoDB deletes an item only after its `ttl`, so within
 * this horizon nothing a reader needs has vanished, and a position older than it
 * is reported as trimmed outright.
 */
export const HISTORY_HORIZON_MS = DAY_MS;

/**
 * Recipient lists up to this size ride on every stream item; longer ones are
 * stored once on the event item. Copying a 1,000-user list into 1,000 items
 * would make a fan-out's write cost grow with the square of its size.
 */
const INLINE_RECIPIENTS_MAX_BYTES = 1024;
/** The event item vanishing between a failed put and the read that follows (its TTL ran out) is retried. */
const MAX_PLACE_ATTEMPTS = 3;
const EVENT = 'event item';

/**
 * `History` on the single table (table.ts):
 *
 * | item        | pk                            | sk           | attributes                                          |
 * |-------------|-------------------------------|--------------|-----------------------------------------------------|
 * | event       | `event#<id>`                  | `event`      | a (append key), x (expires at, ms), ttl, [r]        |
 * | stream item | `hist#u#<user>` / `hist#all`  | append key   | id, event, data, publishedAtMs, ttlSeconds, x, ttl, [to] |
 *
 * The append key is a fresh ULID minted when the event is first stored, so a
 * stream's sort order is append order (the port's replay order from a stored
 * position). `to` rides on each stream item when short, else once on the event
 * item as `r`. Retention is `x`, checked by every reader; `ttl` (x + the
 * horizon) only reclaims space. Eviction past `maxEventsPerStream` is decided
 * at read time (`readStream`), by append order, so appends never delete anything.
 *
 * Append order is the order in which append keys were minted, which can differ
 * from the order in which the stream items became visible by the time a
 * BatchWriteItem takes (and across publishers, by their clock skew).
 */
export class DynamoHistory implements History {
  private readonly client: DynamoDBClient;
  private readonly tableName: string;
  private readonly clock: Clock;
  private readonly maxEventsPerStream: number;

  constructor(options: DynamoHistoryOptions) {
    if (!(Number.isInteger(options.maxEventsPerStream) && options.maxEventsPerStream >= 1)) {
      throw new Error('maxEventsPerStream must be a positive integer');
    }
    this.client = options.client;
    this.tableName = options.tableName;
    this.clock = options.clock ?? systemClock;
    this.maxEventsPerStream = options.maxEventsPerStream;
  }

  /**
   * The event item first, conditionally: it is the idempotency check. A
   * duplicate still (re)writes the stream items with the stored append key, so
   * a first attempt that died between the two writes is healed by the retry.
   */
  async append(event: HeraldEvent): Promise<AppendResult> {
    if (event.ttlSeconds === 0) return { stored: false, duplicate: false };
    const recipients = JSON.stringify(event.to);
    const inline = Buffer.byteLength(recipients) <= INLINE_RECIPIENTS_MAX_BYTES;
    const placed = await this.place(event, inline ? undefined : recipients);
    // Written by a first attempt that referenced its list, a duplicate must do the same (and vice versa).
    const ttl = ttlAt(placed.expiresAtMs + HISTORY_HORIZON_MS);
    const items = streamItems(event, placed.appendKey, placed.expiresAtMs, ttl, placed.referenced ? undefined : recipients);
    await batchWriteAll(this.client, this.tableName, items);
    return { stored: true, duplicate: placed.duplicate };
  }

  async since(userId: string, lastEventId: string, limit: number): Promise<ReplayResult> {
    const now = this.clock();
    const position = await this.appendKeyOf(lastEventId);
    // A stored position: what was appended after it. Otherwise greater ids, which
    // were appended no earlier than the id's time less the skew a publisher may have.
    const bound = position ?? (isEventId(lastEventId) ? eventIdFloor(Math.max(0, eventIdTimeMs(lastEventId) - MAX_ID_CLOCK_SKEW_MS)) : lastEventId);
    const after = position === undefined ? (e: StreamEntry) => e.id > lastEventId : () => true;
    const read = { client: this.client, tableName: this.tableName, bound, after, now, cap: this.maxEventsPerStream };
    const streams = await Promise.all([readStream({ ...read, pk: keys.userStream(userId) }), readStream({ ...read, pk: keys.broadcastStream })]);

    // Older than the horizon, items after the position may already be deleted unseen.
    const trimmed = eventIdTimeMs(bound) < now - HISTORY_HORIZON_MS || streams.some((st) => st.trimmed);
    const byId = new Map(streams.flatMap((st) => st.entries).map((e) => [e.id, e]));
    const merged = [...byId.values()].sort(position === undefined ? byIdThenAppendKey : byAppendKey);
    const gap = trimmed ? 'history_trimmed' : merged.length > limit ? 'replay_limit' : null;
    const events = await resolveRecipients(this.client, this.tableName, merged.slice(0, limit));
    return { events, gap };
  }

  /** The shared client belongs to the composition root; this adapter holds nothing else. */
  close(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * Stores the event item, or finds the one stored before (a duplicate). An
   * expired event item counts as absent, as the memory adapter re-stores an id
   * whose event expired.
   */
  private async place(event: HeraldEvent, referenced: string | undefined): Promise<{ appendKey: string; expiresAtMs: number; duplicate: boolean; referenced: boolean }> {
    for (let attempt = 0; attempt < MAX_PLACE_ATTEMPTS; attempt++) {
      const now = this.clock();
      const appendKey = newEventId(now);
      const expiresAtMs = now + event.ttlSeconds * 1000;
      const item: Item = { ...keys.event(event.id), a: s(appendKey), x: n(expiresAtMs), ttl: ttlAt(expiresAtMs + HISTORY_HORIZON_MS) };
      if (referenced !== undefined) item.r = s(referenced);
      const put = await conditional('dynamodb.putItem', () =>
        this.client.send(
          new PutItemCommand({
            TableName: this.tableName,
            Item: item,
            ConditionExpression: 'attribute_not_exists(#pk) OR #x <= :now',
            ExpressionAttributeNames: { '#pk': TABLE.partitionKey, '#x': 'x' },
            ExpressionAttributeValues: { ':now': n(now) },
          }),
        ),
      );
      if (put !== CONDITION_FAILED) return { appendKey, expiresAtMs, duplicate: false, referenced: referenced !== undefined };
      const { Item } = await call('dynamodb.getItem', () =>
        this.client.send(new GetItemCommand({ TableName: this.tableName, Key: keys.event(event.id), ConsistentRead: true })),
      );
      if (Item) {
        return { appendKey: readString(Item, 'a', EVENT), expiresAtMs: readNumber(Item, 'x', EVENT), duplicate: true, referenced: Item.r !== undefined };
      }
    }
    throw unavailable(`append of ${event.id} kept racing the deletion of its expired copy`);
  }

  /** The append key of a stored event, read consistently (it was perhaps stored a moment ago). */
  private async appendKeyOf(eventId: string): Promise<string | undefined> {
    // Only ids can have been stored, and anything else might not even fit in a key.
    if (!isEventId(eventId)) return undefined;
    const { Item } = await call('dynamodb.getItem', () =>
      this.client.send(
        new GetItemCommand({
          TableName: this.tableName,
          Key: keys.event(eventId),
          ConsistentRead: true,
          ProjectionExpression: '#a',
          ExpressionAttributeNames: { '#a': 'a' },
        }),
      ),
    );
    return Item ? readString(Item, 'a', EVENT) : undefined;
  }
}

const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const byAppendKey = (a: StreamEntry, b: StreamEntry): number => compare(a.appendKey, b.appendKey);
const byIdThenAppendKey = (a: StreamEntry, b: StreamEntry): number => compare(a.id, b.id) || byAppendKey(a, b);

interface StreamRead {
  readonly client: DynamoDBClient;
  readonly tableName: string;
  readonly pk: string;
  /** Exclusive lower bound on the append key. */
  readonly bound: string;
  /** Whether an item in range is after the position (for id positions, the id decides). */
  readonly after: (entry: StreamEntry) => boolean;
  readonly now: number;
  readonly cap: number;
}

/**
 * The newest `cap` events of one stream after the position, newest first, and
 * whether it lost any. Reads at most `cap + 1` of them: one beyond the cap means
 * older ones count as evicted — the memory adapter's per-stream cap, decided
 * when reading instead of by deleting. Expired items (not yet deleted by TTL)
 * are left out and reported, never trusted to have vanished.
 */
async function readStream(read: StreamRead): Promise<{ entries: StreamEntry[]; trimmed: boolean }> {
  const want = read.cap + 1;
  const taken: StreamEntry[] = [];
  let start: Item | undefined;
  do {
    const page = await call('dynamodb.query', () =>
      read.client.send(
        new QueryCommand({
          TableName: read.tableName,
          // An empty bound (only a malformed position) cannot be a key value: then the whole stream.
          KeyConditionExpression: read.bound === '' ? '#pk = :pk' : '#pk = :pk AND #sk > :bound',
          ExpressionAttributeNames: { '#pk': TABLE.partitionKey, ...(read.bound === '' ? {} : { '#sk': TABLE.sortKey }) },
          ExpressionAttributeValues: { ':pk': s(read.pk), ...(read.bound === '' ? {} : { ':bound': s(read.bound) }) },
          ConsistentRead: true,
          ScanIndexForward: false,
          Limit: want - taken.length,
          ExclusiveStartKey: start,
        }),
      ),
    );
    for (const item of page.Items ?? []) {
      const entry = readStreamItem(item);
      if (read.after(entry)) taken.push(entry);
    }
    start = page.LastEvaluatedKey;
  } while (start && taken.length < want);

  let trimmed = taken.length > read.cap;
  const entries: StreamEntry[] = [];
  for (const entry of taken.slice(0, read.cap)) {
    if (entry.expiresAtMs > read.now) entries.push(entry);
    else trimmed = true; // expired: the client missed it for good
  }
  return { entries, trimmed };
}

/** The replayed events, with the long recipient lists fetched from their event items. */
async function resolveRecipients(client: DynamoDBClient, tableName: string, entries: readonly StreamEntry[]): Promise<HeraldEvent[]> {
  const missing = [...new Set(entries.filter((e) => e.to === undefined).map((e) => e.id))];
  const lists = new Map<string, Recipients>();
  if (missing.length > 0) {
    const items = await batchGetAll(client, tableName, missing.map(keys.event), { attributes: [TABLE.partitionKey, 'r'] });
    for (const item of items) {
      const id = readString(item, TABLE.partitionKey, EVENT).slice('event#'.length);
      if (item.r !== undefined) lists.set(id, parseRecipients(readString(item, 'r', EVENT), EVENT));
    }
  }
  return entries.map(({ appendKey: _a, expiresAtMs: _x, to, ...event }) => {
    const recipients = to ?? lists.get(event.id);
    if (recipients === undefined) throw malformed('history item', `event ${event.id} has its recipients neither inline nor on its event item`);
    return { ...event, to: recipients };
  });
}
