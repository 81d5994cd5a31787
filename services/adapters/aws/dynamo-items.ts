import {
  BatchGetItemCommand,
  BatchWriteItemCommand,
  ConditionalCheckFailedException,
  type AttributeValue,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import type { HeraldEvent, Recipients } from '../../protocol/envelope';
import { unavailable } from '../../protocol/faults';
import { backoff, mapLimit } from './pacing';
import { wrapSdkError } from './sdk-errors';
import { TABLE } from './table';

/**
 * What the three DynamoDB adapters share: key builders for the single table
 * (layout in table.ts), readers that refuse a malformed item instead of
 * passing `undefined` on, the SDK call wrappers, and the batch loops.
 */

/** An item as the low-level client reads and writes it. */
export type Item = Record<string, AttributeValue>;

export { backoff, mapLimit } from './pacing';

export const DAY_MS = 24 * 3600 * 1000;

const NODE_SK_PREFIX = 'node#';

/**
 * Each key is a fixed prefix followed by the whole id, so `user#u#1` can only
 * be user `u#1`: ids that contain the separator cannot collide.
 */
export const keys = {
  ownerPk: (userId: string): string => `user#${userId}`,
  owner: (userId: string): Item => key(`user#${userId}`, 'owner'),
  nodesPk: 'nodes',
  node: (nodeId: string): Item => key('nodes', `${NODE_SK_PREFIX}${nodeId}`),
  event: (eventId: string): Item => key(`event#${eventId}`, 'event'),
  /** A user's history stream; the broadcast stream is `hist#all`, which no user's can be. */
  userStream: (userId: string): string => `hist#u#${userId}`,
  broadcastStream: 'hist#all',
  rate: (rateKey: string): Item => key(`rate#${rateKey}`, 'bucket'),
};

function key(pk: string, sk: string): Item {
  return { [TABLE.partitionKey]: { S: pk }, [TABLE.sortKey]: { S: sk } };
}

/** The `ttl` attribute: epoch seconds, rounded up so storage never drops an item early. */
export function ttlAt(ms: number): AttributeValue {
  return { N: String(Math.ceil(ms / 1000)) };
}

export const n = (value: number): AttributeValue => ({ N: String(value) });
export const s = (value: string): AttributeValue => ({ S: value });

/** A fault, not an outcome: something else wrote this item, or a bug did. Never transient. */
export function malformed(what: string, detail: string): Error {
  return new Error(`malformed ${what} in the table: ${detail}`);
}

export function readString(item: Item, name: string, what: string): string {
  const value = item[name]?.S;
  if (value === undefined) throw malformed(what, `attribute ${name} is not a string`);
  return value;
}

export function readNumber(item: Item, name: string, what: string): number {
  const raw = item[name]?.N;
  const value = raw === undefined ? Number.NaN : Number(raw);
  if (!Number.isFinite(value)) throw malformed(what, `attribute ${name} is not a number`);
  return value;
}

export function readMap(item: Item, name: string, what: string): Item {
  const value = item[name]?.M;
  if (value === undefined) throw malformed(what, `attribute ${name} is not a map`);
  return value;
}

/** A node item (pk `nodes`, sk `node#<id>`) as `DynamoOwners.heartbeat` writes it: `e` is the heartbeat expiry, ms. */
export interface NodeItem {
  readonly nodeId: string;
  readonly expiresAtMs: number;
}

export function readNodeItem(item: Item): NodeItem {
  const what = 'node item';
  const sk = readString(item, TABLE.sortKey, what);
  if (!sk.startsWith(NODE_SK_PREFIX)) throw malformed(what, `sort key ${sk} under pk ${keys.nodesPk}`);
  return { nodeId: sk.slice(NODE_SK_PREFIX.length), expiresAtMs: readNumber(item, 'e', what) };
}

/** One SDK call; every failure leaves as what the ports promise (`unavailable` when transient). */
export async function call<T>(operation: string, send: () => Promise<T>): Promise<T> {
  try {
    return await send();
  } catch (error) {
    throw wrapSdkError(error, operation);
  }
}

export const CONDITION_FAILED = Symbol('condition failed');

/** A conditional write: a failed condition is an outcome the caller decides on, not a fault. */
export async function conditional<T>(operation: string, send: () => Promise<T>): Promise<T | typeof CONDITION_FAILED> {
  try {
    return await send();
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException || (error instanceof Error && error.name === 'ConditionalCheckFailedException')) {
      return CONDITION_FAILED;
    }
    throw wrapSdkError(error, operation);
  }
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** DynamoDB's per-request limits: 100 keys per BatchGetItem, 25 puts per BatchWriteItem. */
const BATCH_GET_KEYS = 100;
const BATCH_WRITE_ITEMS = 25;
/** Batch requests of one call in flight together: fast for 1,000 recipients, gentle on the table. */
const BATCH_CONCURRENCY = 8;
/**
 * How long a batch keeps retrying what DynamoDB left unprocessed (throttling).
 * Wall time, not the injected clock: this is about the service recovering.
 */
const UNPROCESSED_DEADLINE_MS = 10_000;

export interface BatchOptions {
  /** Projection for BatchGetItem, attribute names only (e.g. `['pk', 'conns']`). */
  readonly attributes?: readonly string[];
}

/**
 * Reads every key, consistently (a read here decides routing or replay),
 * retrying `UnprocessedKeys` with backoff until the deadline, then `unavailable`.
 * Missing items are simply absent from the answer, in no particular order.
 */
export async function batchGetAll(client: DynamoDBClient, tableName: string, itemKeys: readonly Item[], options: BatchOptions = {}): Promise<Item[]> {
  const names = options.attributes?.map((_, i) => `#a${i}`);
  const projection =
    names === undefined
      ? {}
      : { ProjectionExpression: names.join(', '), ExpressionAttributeNames: Object.fromEntries(options.attributes!.map((a, i) => [`#a${i}`, a])) };
  const pages = await mapLimit(chunks(itemKeys, BATCH_GET_KEYS), BATCH_CONCURRENCY, async (chunk) => {
    const found: Item[] = [];
    const deadline = Date.now() + UNPROCESSED_DEADLINE_MS;
    let pending: Item[] = chunk;
    for (let attempt = 0; pending.length > 0; attempt++) {
      if (attempt > 0) await waitOrGiveUp(attempt, deadline, 'dynamodb.batchGetItem', pending.length);
      const out = await call('dynamodb.batchGetItem', () =>
        client.send(new BatchGetItemCommand({ RequestItems: { [tableName]: { Keys: pending, ConsistentRead: true, ...projection } } })),
      );
      found.push(...(out.Responses?.[tableName] ?? []));
      pending = out.UnprocessedKeys?.[tableName]?.Keys ?? [];
    }
    return found;
  });
  return pages.flat();
}

/**
 * Puts every item (overwriting: each put here is idempotent), 25 per request,
 * a few requests at once, retrying `UnprocessedItems` until the deadline.
 */
export interface WriteOptions {
  /**
   * No request is sent once it fires, and one in flight is abandoned; the
   * call then fails `unavailable`. The SDK's own retries stop with it.
   */
  readonly signal?: AbortSignal;
}

export async function batchWriteAll(client: DynamoDBClient, tableName: string, items: readonly Item[], options: WriteOptions = {}): Promise<void> {
  await mapLimit(chunks(items, BATCH_WRITE_ITEMS), BATCH_CONCURRENCY, async (chunk) => {
    const deadline = Date.now() + UNPROCESSED_DEADLINE_MS;
    let pending = chunk.map((Item) => ({ PutRequest: { Item } }));
    for (let attempt = 0; pending.length > 0; attempt++) {
      if (attempt > 0) await waitOrGiveUp(attempt, deadline, 'dynamodb.batchWriteItem', pending.length);
      const out = await call('dynamodb.batchWriteItem', () =>
        client.send(new BatchWriteItemCommand({ RequestItems: { [tableName]: pending } }), options.signal ? { abortSignal: options.signal } : {}),
      );
      pending = (out.UnprocessedItems?.[tableName] ?? []).flatMap((request) => (request.PutRequest?.Item ? [{ PutRequest: { Item: request.PutRequest.Item } }] : []));
    }
  });
}

async function waitOrGiveUp(attempt: number, deadline: number, operation: string, left: number): Promise<void> {
  if (Date.now() >= deadline) throw unavailable(`${operation} left ${left} requests unprocessed until the deadline`);
  await backoff(attempt, 25, 1_000);
}

// History items (layout in dynamo-history.ts).

/**
 * The stream items of an event: one per recipient, or one in the broadcast
 * stream, sorted under its append key. `recipients` (the JSON of `to`) is left
 * out when it is stored once on the event item (`r`) instead.
 */
export function streamItems(event: HeraldEvent, appendKey: string, expiresAtMs: number, ttl: AttributeValue, recipients: string | undefined): Item[] {
  const pks = 'all' in event.to ? [keys.broadcastStream] : [...new Set(event.to.users)].map(keys.userStream);
  return pks.map((pk) => ({
    [TABLE.partitionKey]: s(pk),
    [TABLE.sortKey]: s(appendKey),
    id: s(event.id),
    event: s(event.event),
    data: s(event.data),
    publishedAtMs: n(event.publishedAtMs),
    ttlSeconds: n(event.ttlSeconds),
    x: n(expiresAtMs),
    ttl,
    // Absent: the list is on the event item (`r`).
    ...(recipients === undefined ? {} : { to: s(recipients) }),
  }));
}

/** A stream item as read: the event, less its recipients when they are on the event item. */
export interface StreamEntry extends Omit<HeraldEvent, 'to'> {
  readonly to: Recipients | undefined;
  readonly appendKey: string;
  readonly expiresAtMs: number;
}

export function readStreamItem(item: Item): StreamEntry {
  const what = 'history item';
  const to = item.to === undefined ? undefined : parseRecipients(readString(item, 'to', what), what);
  return {
    appendKey: readString(item, TABLE.sortKey, what),
    id: readString(item, 'id', what),
    event: readString(item, 'event', what),
    data: readString(item, 'data', what),
    to,
    ttlSeconds: readNumber(item, 'ttlSeconds', what),
    publishedAtMs: readNumber(item, 'publishedAtMs', what),
    expiresAtMs: readNumber(item, 'x', what),
  };
}

/** The JSON of an event's `to`, checked: a stored list is read back as exactly what was written. */
export function parseRecipients(json: string, what: string): Recipients {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw malformed(what, 'recipients are not JSON');
  }
  if (typeof value === 'object' && value !== null) {
    if ('all' in value && value.all === true) return { all: true };
    if ('users' in value && Array.isArray(value.users)) {
      const users: unknown[] = value.users;
      if (users.every((u): u is string => typeof u === 'string')) return { users };
    }
  }
  throw malformed(what, 'recipients are neither {"all":true} nor {"users":[...]}');
}
