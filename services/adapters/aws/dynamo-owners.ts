import { randomUUID } from 'node:crypto';
import { GetItemCommand, PutItemCommand, QueryCommand, UpdateItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { systemClock, type Clock } from '../../ports/clock';
import type { ClaimPolicy, ClaimResult, ConnectionRecord, Owners } from '../../ports/owners';
import { unavailable } from '../../protocol/faults';
import {
  CONDITION_FAILED,
  DAY_MS,
  backoff,
  batchGetAll,
  call,
  conditional,
  keys,
  malformed,
  n,
  readMap,
  readNumber,
  readString,
  s,
  ttlAt,
  type Item,
} from './dynamo-items';
import { NodeDirectory, nodesByUser, type NodeTable } from '../../shared/node-directory';
import { TABLE } from './table';

export interface DynamoOwnersOptions {
  /** Shared with the rest of the process: `close()` leaves it open. */
  readonly client: DynamoDBClient;
  readonly tableName: string;
  /** @default the system clock */
  readonly clock?: Clock;
  /** How long node heartbeat expiries read from the table are trusted. @default 1000 */
  readonly nodeCacheMs?: number;
}

/** Optimistic multi-tab claims retry this often before reporting `unavailable`. */
const MAX_CLAIM_ATTEMPTS = 12;
const OWNER = 'owner item';

/**
 * `Owners` on the single table (table.ts). One item per user, pk `user#<id>`,
 * whose `conns` map holds every tab (connectionId → n: node, c: connected at,
 * e: expires at), so a claim is one atomic write to one item — DynamoDB has no
 * multi-item atomicity we could use here (and dynalite no transactions). `v` is
 * a random version token rewritten by every write, for the conditional writes.
 * One item per node (pk `nodes`) holds its heartbeat expiry `e`.
 *
 * A record is live iff its own `e` and its node's heartbeat are both ahead of
 * the clock; expired records are ignored, never relied on TTL to vanish.
 * Reads that decide something are consistent: the delivery-ordering rule
 * (docs/architecture.md) needs a publisher's `locate` to see a claim that completed before it.
 */
export class DynamoOwners implements Owners {
  private readonly client: DynamoDBClient;
  private readonly tableName: string;
  private readonly clock: Clock;
  private readonly nodes: NodeDirectory;

  constructor(options: DynamoOwnersOptions) {
    this.client = options.client;
    this.tableName = options.tableName;
    this.clock = options.clock ?? systemClock;
    this.nodes = new NodeDirectory(() => readNodeTable(options.client, options.tableName), this.clock, options.nodeCacheMs ?? 1_000);
  }

  async claim(record: ConnectionRecord, policy: ClaimPolicy): Promise<ClaimResult> {
    if (policy.mode === 'multi') return this.claimMulti(record, policy.maxTabs);
    // One unconditional put is atomic last-writer-wins: of concurrent claims each
    // sees the item it overwrote, so every loser is named by exactly one winner.
    const { Attributes } = await call('dynamodb.putItem', () =>
      this.client.send(new PutItemCommand({ TableName: this.tableName, Item: ownerItem(record.userId, [record]), ReturnValues: 'ALL_OLD' })),
    );
    const before = Attributes ? readConns(record.userId, Attributes) : [];
    // A retried claim of this very connection (an SDK retry after a timeout) is not another tab.
    return { ok: true, displaced: await this.nodes.live(before.filter((r) => r.connectionId !== record.connectionId)) };
  }

  /** Read, count live tabs, write back only if nobody wrote in between (`v`); retry on a collision. */
  private async claimMulti(record: ConnectionRecord, maxTabs: number): Promise<ClaimResult> {
    for (let attempt = 0; attempt < MAX_CLAIM_ATTEMPTS; attempt++) {
      if (attempt > 0) await backoff(attempt);
      const { Item } = await call('dynamodb.getItem', () =>
        this.client.send(new GetItemCommand({ TableName: this.tableName, Key: keys.owner(record.userId), ConsistentRead: true })),
      );
      const stored = Item ? readConns(record.userId, Item) : [];
      const live = await this.nodes.live(stored.filter((r) => r.connectionId !== record.connectionId));
      if (live.length >= maxTabs) return { ok: false, reason: 'too_many_tabs', active: live.length };
      // Dead records are dropped on the way: the item only grows with live tabs.
      const written = await conditional('dynamodb.putItem', () =>
        this.client.send(
          new PutItemCommand({
            TableName: this.tableName,
            Item: ownerItem(record.userId, [...live, record]),
            ...(Item
              ? { ConditionExpression: '#v = :v', ExpressionAttributeNames: { '#v': 'v' }, ExpressionAttributeValues: { ':v': s(readString(Item, 'v', OWNER)) } }
              : { ConditionExpression: 'attribute_not_exists(#pk)', ExpressionAttributeNames: { '#pk': TABLE.partitionKey } }),
          }),
        ),
      );
      if (written !== CONDITION_FAILED) return { ok: true, displaced: [] };
    }
    throw unavailable(`claim for a user kept colliding with other claims (${MAX_CLAIM_ATTEMPTS} attempts)`);
  }

  /**
   * No read: removes the one map entry if it is there. It rewrites `v` so that a
   * multi-tab claim that read the record before cannot write it back; when the
   * entry is absent (released twice, displaced) the condition fails and nothing changes.
   */
  async release(userId: string, connectionId: string): Promise<void> {
    await conditional('dynamodb.updateItem', () =>
      this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: keys.owner(userId),
          UpdateExpression: 'REMOVE #conns.#c SET #v = :v',
          ConditionExpression: 'attribute_exists(#conns.#c)',
          ExpressionAttributeNames: { '#conns': 'conns', '#c': connectionId, '#v': 'v' },
          ExpressionAttributeValues: { ':v': s(randomUUID()) },
        }),
      ),
    );
  }

  async heartbeat(nodeId: string, expiresAtMs: number): Promise<void> {
    const item = { ...keys.node(nodeId), e: n(expiresAtMs), ttl: ttlAt(Math.max(expiresAtMs, this.clock()) + DAY_MS) };
    await call('dynamodb.putItem', () => this.client.send(new PutItemCommand({ TableName: this.tableName, Item: item })));
    // This instance sees its own heartbeat at once: a node declared gone (expiry in the past)
    // is gone for its next read. Other instances see it within `nodeCacheMs`.
    this.nodes.invalidate();
  }

  async locate(userIds: readonly string[]): Promise<ReadonlyMap<string, readonly string[]>> {
    const users = [...new Set(userIds)];
    if (users.length === 0) return new Map();
    const userOf = new Map(users.map((u) => [keys.ownerPk(u), u]));
    const items = await batchGetAll(this.client, this.tableName, users.map(keys.owner), { attributes: [TABLE.partitionKey, 'conns'] });
    const records = items.flatMap((item) => {
      const userId = userOf.get(readString(item, TABLE.partitionKey, OWNER));
      if (userId === undefined) throw malformed(OWNER, 'BatchGetItem answered a key it was not asked for');
      return readConns(userId, item);
    });
    return nodesByUser(await this.nodes.live(records));
  }

  /** The shared client belongs to the composition root; only the cache is dropped. */
  close(): Promise<void> {
    this.nodes.clear();
    return Promise.resolve();
  }
}

function ownerItem(userId: string, records: readonly ConnectionRecord[]): Item {
  const conns = Object.fromEntries(
    records.map((r) => [r.connectionId, { M: { n: s(r.nodeId), c: n(r.connectedAtMs), e: n(r.expiresAtMs) } }]),
  );
  const lastExpiry = Math.max(...records.map((r) => r.expiresAtMs));
  return { ...keys.owner(userId), conns: { M: conns }, v: s(randomUUID()), ttl: ttlAt(lastExpiry + DAY_MS) };
}

function readConns(userId: string, item: Item): ConnectionRecord[] {
  return Object.entries(readMap(item, 'conns', OWNER)).map(([connectionId, value]) => {
    const entry = value.M;
    if (entry === undefined) throw malformed(OWNER, `conns entry ${connectionId} is not a map`);
    return {
      userId,
      connectionId,
      nodeId: readString(entry, 'n', OWNER),
      connectedAtMs: readNumber(entry, 'c', OWNER),
      expiresAtMs: readNumber(entry, 'e', OWNER),
    };
  });
}

/** The node items, read with one consistent Query on pk `nodes` (a few dozen small items). */
async function readNodeTable(client: DynamoDBClient, tableName: string): Promise<NodeTable> {
  const table = new Map<string, number>();
  let start: Item | undefined;
  do {
    const page = await call('dynamodb.query', () =>
      client.send(
        new QueryCommand({
          TableName: tableName,
          KeyConditionExpression: '#pk = :pk',
          ExpressionAttributeNames: { '#pk': TABLE.partitionKey },
          ExpressionAttributeValues: { ':pk': s(keys.nodesPk) },
          ConsistentRead: true,
          ExclusiveStartKey: start,
        }),
      ),
    );
    for (const item of page.Items ?? []) {
      const sk = readString(item, TABLE.sortKey, 'node item');
      if (!sk.startsWith('node#')) throw malformed('node item', `sort key ${sk} under pk ${keys.nodesPk}`);
      table.set(sk.slice('node#'.length), readNumber(item, 'e', 'node item'));
    }
    start = page.LastEvaluatedKey;
  } while (start);
  return table;
}
