import { GetItemCommand, PutItemCommand, QueryCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { systemClock, type Clock } from '../../ports/clock';
import type { AppendResult, History, ReplayResult } from '../../ports/history';
import type { HeraldEvent, Recipients } from '../../protocol/envelope';
import { eventIdFloor, eventIdTimeMs, isEventId, newEventId } from '../../protocol/event-id';
import { unavailable } from '../../protocol/faults';
import { MAX_ID_CLOCK_SKEW_MS } from '../../protocol/limits';
import { contentFingerprint } from '../../shared/event-fingerprint';
import {
  CONDITION_FAILED,
  DAY_MS,
  batchGetAll,
  batchWriteAll,
  call,
  mapLimit,
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
  /** @default APPEND_DEADLINE_MS; at most REPLAY_LOOKBACK_MS less LOOKBACK_SLACK_MS */
  readonly appendDeadlineMs?: number;
}

/**
 * An append completes within this of minting its append keys, or fails
 * `unavailable` (the publisher retries, with the same ids): its requests carry
 * an abort signal that fires then, and none is sent after it.
 */
export const APPEND_DEADLINE_MS = 10_000;
/** For a request already sent when the deadline fired: DynamoDB applies it within this. */
const LOOKBACK_SLACK_MS = 10_000;
/**
 * How far before a stored position a replay looks. A stream's order is the
 * order append keys were minted, not the order its items became visible or
 * their events went out live: an event whose write was slow (throttling,
 * retries), or whose bus message was overtaken, reaches a client after one
 * minted later. Reconnecting from that later one, the client must still get
 * it. Nothing can land later than the deadline (plus a request in flight)
 * after its key, so looking back that far finds every such event. The
 * overlap, events the client most likely has already, is sent again: the
 * browser client drops ids it has seen, and docs/protocol.md tells other
 * clients to do the same.
 */
export const REPLAY_LOOKBACK_MS = APPEND_DEADLINE_MS + LOOKBACK_SLACK_MS;

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
/** Conditional puts of caller-chosen ids in flight together, within one batch. */
const PLACE_CONCURRENCY = 8;
/** The event item vanishing between a failed put and the read that follows (its TTL ran out) is retried. */
const MAX_PLACE_ATTEMPTS = 3;
const EVENT = 'event item';

/**
 * `History` on the single table (table.ts):
 *
 * | item        | pk                            | sk           | attributes                                          |
 * |-------------|-------------------------------|--------------|-----------------------------------------------------|
 * | event       | `event#<id>`                  | `event`      | a (append key), x (expires at, ms), ttl, [r], [h]   |
 * | stream item | `hist#u#<user>` / `hist#all`  | append key   | id, event, data, publishedAtMs, ttlSeconds, x, ttl, [to] |
 *
 * The append key is a fresh ULID minted when the event is first stored, so a
 * stream's sort order is append order (the port's replay order from a stored
 * position). `to` rides on each stream item when short, else once on the event
 * item as `r`; `h`, on the event item of a caller-chosen id, is its content's
 * fingerprint (event-fingerprint.ts). Retention is `x`, checked by every
 * reader; `ttl` (x + the horizon) only reclaims space. Eviction past
 * `maxEventsPerStream` is decided at read time (`readStream`), by append
 * order, so appends never delete anything.
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
  private readonly appendDeadlineMs: number;

  constructor(options: DynamoHistoryOptions) {
    if (!(Number.isInteger(options.maxEventsPerStream) && options.maxEventsPerStream >= 1)) {
      throw new Error('maxEventsPerStream must be a positive integer');
    }
    this.client = options.client;
    this.tableName = options.tableName;
    this.clock = options.clock ?? systemClock;
    this.maxEventsPerStream = options.maxEventsPerStream;
    this.appendDeadlineMs = options.appendDeadlineMs ?? APPEND_DEADLINE_MS;
    if (!(this.appendDeadlineMs > 0 && this.appendDeadlineMs <= REPLAY_LOOKBACK_MS - LOOKBACK_SLACK_MS)) {
      throw new RangeError(`appendDeadlineMs must be above 0 and at most ${REPLAY_LOOKBACK_MS - LOOKBACK_SLACK_MS}`);
    }
  }

  append(event: HeraldEvent): Promise<AppendResult> {
    return this.appendBatch([event]).then(([result]) => result!);
  }

  /**
   * Append keys are minted first, in batch order, so a user's events keep the
   * order given. An event whose id the caller chose is placed with a
   * conditional put of its event item (the idempotency check), all such
   * events concurrently; a Herald-minted id needs no check, so it costs its
   * stream items alone: one item per recipient, one write unit for a typical
   * notification. Then every stream item of the batch goes out in
   * BatchWriteItem requests of 25. First write wins: a duplicate with the
   * same content (re)writes its stream items with the stored append key, so a
   * first attempt that died between the two writes is healed by the retry; a
   * duplicate with other content writes nothing, where a put would overwrite
   * what the first one stored.
   */
  async appendBatch(events: readonly HeraldEvent[]): Promise<AppendResult[]> {
    const signal = AbortSignal.timeout(this.appendDeadlineMs);
    try {
      return await this.appendWithin(events, signal);
    } catch (error) {
      // Given up, not landed late: a replay looks back only so far (REPLAY_LOOKBACK_MS).
      if (signal.aborted) throw unavailable(`the append did not complete within ${this.appendDeadlineMs} ms; retry with the same ids`, error);
      throw error;
    }
  }

  private async appendWithin(events: readonly HeraldEvent[], signal: AbortSignal): Promise<AppendResult[]> {
    const now = this.clock();
    const planned = events.map((event) => {
      if (event.ttlSeconds === 0) return undefined;
      const recipients = JSON.stringify(event.to);
      const inline = Buffer.byteLength(recipients) <= INLINE_RECIPIENTS_MAX_BYTES;
      return { event, recipients, inline, appendKey: newEventId(now), expiresAtMs: now + event.ttlSeconds * 1000 };
    });
    const checked = planned.filter((p): p is NonNullable<typeof p> => p !== undefined && p.event.minted !== true);
    const placedById = new Map<(typeof checked)[number], Placed>();
    await mapLimit(checked, PLACE_CONCURRENCY, async (p) => {
      placedById.set(p, await this.place(p.event, p.appendKey, p.inline ? undefined : p.recipients, signal));
    });

    const items: Item[] = [];
    const results = planned.map((p): AppendResult => {
      if (p === undefined) return { stored: false, duplicate: false };
      const placed = placedById.get(p) ?? { appendKey: p.appendKey, expiresAtMs: p.expiresAtMs, duplicate: false, referenced: !p.inline, sameContent: true };
      if (!placed.sameContent) return { stored: true, duplicate: true };
      if (placed.referenced && !placedById.has(p)) {
        // A fresh id with a long list: its event item holds the list, written with the stream items.
        items.push({ ...keys.event(p.event.id), a: s(placed.appendKey), x: n(placed.expiresAtMs), ttl: ttlAt(placed.expiresAtMs + HISTORY_HORIZON_MS), r: s(p.recipients) });
      }
      // Written by a first attempt that referenced its list, a duplicate must do the same (and vice versa).
      const ttl = ttlAt(placed.expiresAtMs + HISTORY_HORIZON_MS);
      // A first attempt older than the deadline: its key is too far back for a replay to look, so the
      // items it may not have written go under a fresh one (a replay returns an id once, whatever its items).
      const appendKey = now - eventIdTimeMs(placed.appendKey) > this.appendDeadlineMs ? p.appendKey : placed.appendKey;
      items.push(...streamItems(p.event, appendKey, placed.expiresAtMs, ttl, placed.referenced ? undefined : p.recipients));
      return { stored: true, duplicate: placed.duplicate };
    });
    await batchWriteAll(this.client, this.tableName, items, { signal });
    return results;
  }

  /**
   * Reads each stream from the earliest append key the position's event can
   * have (its id's time less the clock skew a publisher may have, and the
   * look-back) downwards from the newest, until it is past the look-back
   * below the position's own item: no lookup of an event item, which a
   * Herald-minted id does not have.
   *
   * A stored position answers everything appended after it and, again, what
   * was appended within REPLAY_LOOKBACK_MS before it (see there). The cap on
   * a stream counts only what came after the position.
   */
  async since(userId: string, lastEventId: string, limit: number): Promise<ReplayResult> {
    const now = this.clock();
    // The earliest append key an event after the position can have; the read goes the look-back further down.
    const earliest = isEventId(lastEventId) ? eventIdFloor(Math.max(0, eventIdTimeMs(lastEventId) - MAX_ID_CLOCK_SKEW_MS)) : lastEventId;
    const bound = isEventId(lastEventId) ? eventIdFloor(Math.max(0, eventIdTimeMs(lastEventId) - MAX_ID_CLOCK_SKEW_MS - REPLAY_LOOKBACK_MS)) : lastEventId;
    const read = { client: this.client, tableName: this.tableName, bound, lastEventId, cap: this.maxEventsPerStream };
    const streams = await Promise.all([readStream({ ...read, pk: keys.userStream(userId) }), readStream({ ...read, pk: keys.broadcastStream })]);
    // A stored position: what was appended after it, and within the look-back before it. Otherwise
    // greater ids, which were appended no earlier than the id's time less the skew a publisher may have.
    const position = streams.find((st) => st.position !== undefined)?.position;
    const floor = position === undefined ? undefined : lookbackFloor(position);
    const after = floor === undefined ? (e: StreamEntry) => e.id > lastEventId : (e: StreamEntry) => e.appendKey > floor && e.id !== lastEventId;
    const counted = position === undefined ? after : (e: StreamEntry) => e.appendKey > position.appendKey;

    // Older than the horizon, items after the position may already be deleted unseen.
    let trimmed = eventIdTimeMs(position?.appendKey ?? earliest) < now - HISTORY_HORIZON_MS;
    const kept: StreamEntry[] = [];
    for (const stream of streams) {
      // Newest first, as read.
      const newer = stream.taken.filter(after);
      const beyond = newer.filter(counted);
      // More than the cap after the position: the older ones count as evicted (and the look-back is moot).
      if (beyond.length > this.maxEventsPerStream) trimmed = true;
      for (const entry of trimmed ? beyond.slice(0, this.maxEventsPerStream) : newer) {
        if (entry.expiresAtMs > now) kept.push(entry);
        // Expired after the position: the client missed it for good. In the look-back, it most likely had it.
        else if (counted(entry)) trimmed = true;
      }
    }
    const byId = new Map(kept.map((e) => [e.id, e]));
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
   * Stores the event item of a caller-chosen id, or finds the one stored before
   * (a duplicate). An expired event item counts as absent, as the memory
   * adapter re-stores an id whose event expired.
   */
  private async place(event: HeraldEvent, firstKey: string, referenced: string | undefined, signal: AbortSignal): Promise<Placed> {
    const fingerprint = contentFingerprint(event);
    for (let attempt = 0; attempt < MAX_PLACE_ATTEMPTS; attempt++) {
      const now = this.clock();
      const appendKey = attempt === 0 ? firstKey : newEventId(now);
      const expiresAtMs = now + event.ttlSeconds * 1000;
      const item: Item = { ...keys.event(event.id), a: s(appendKey), x: n(expiresAtMs), ttl: ttlAt(expiresAtMs + HISTORY_HORIZON_MS), h: s(fingerprint) };
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
          { abortSignal: signal },
        ),
      );
      if (put !== CONDITION_FAILED) return { appendKey, expiresAtMs, duplicate: false, referenced: referenced !== undefined, sameContent: true };
      const { Item } = await call('dynamodb.getItem', () =>
        this.client.send(new GetItemCommand({ TableName: this.tableName, Key: keys.event(event.id), ConsistentRead: true }), { abortSignal: signal }),
      );
      if (Item) {
        // An item written before fingerprints were kept cannot tell: it is healed, as it was then.
        const sameContent = Item.h === undefined || readString(Item, 'h', EVENT) === fingerprint;
        return { appendKey: readString(Item, 'a', EVENT), expiresAtMs: readNumber(Item, 'x', EVENT), duplicate: true, referenced: Item.r !== undefined, sameContent };
      }
    }
    throw unavailable(`append of ${event.id} kept racing the deletion of its expired copy`);
  }
}

/** Where an event's stream items go: its append key and expiry, and whether its list is on its event item. */
interface Placed {
  readonly appendKey: string;
  readonly expiresAtMs: number;
  readonly duplicate: boolean;
  readonly referenced: boolean;
  /** False for a duplicate whose content differs from the stored one's: nothing of it is written. */
  readonly sameContent: boolean;
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
  /** The position: its own item, if this stream holds it, ends the read. */
  readonly lastEventId: string;
  readonly cap: number;
}

/** The append key REPLAY_LOOKBACK_MS before a stored position's: a replay returns what was appended after it. */
function lookbackFloor(position: StreamEntry): string {
  return eventIdFloor(Math.max(0, eventIdTimeMs(position.appendKey) - REPLAY_LOOKBACK_MS));
}

/**
 * One stream read newest first, down to the bound: every entry appended after
 * the position's own item (`position`, if this stream holds it) and within
 * the look-back below it or, when the position is not met, until more than
 * `cap` entries with greater ids were read — one beyond the cap means older
 * ones count as evicted (the memory adapter's per-stream cap, decided when
 * reading instead of by deleting). Expired items (not yet deleted by TTL) are
 * returned, for the caller to report, never trusted to have vanished.
 */
async function readStream(read: StreamRead): Promise<{ taken: StreamEntry[]; position: StreamEntry | undefined }> {
  const want = read.cap + 1;
  const taken: StreamEntry[] = [];
  let greater = 0;
  let position: StreamEntry | undefined;
  let floor: string | undefined;
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
          // Past the position, the look-back is read in pages of the same size.
          Limit: position === undefined ? want - greater : want,
          ExclusiveStartKey: start,
        }),
      ),
    );
    for (const item of page.Items ?? []) {
      const entry = readStreamItem(item);
      // Below the position, only what the cap still keeps: the newest `cap` entries, the position's own among them.
      if (floor !== undefined && (entry.appendKey <= floor || taken.length + 1 >= read.cap)) return { taken, position };
      if (position === undefined && entry.id === read.lastEventId) {
        position = entry;
        floor = lookbackFloor(entry);
        continue;
      }
      taken.push(entry);
      if (entry.id > read.lastEventId) greater++;
    }
    start = page.LastEvaluatedKey;
  } while (start && (position !== undefined || greater < want));
  return { taken, position };
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
