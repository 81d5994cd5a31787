import { systemClock, type Clock } from '../../ports/clock';
import type { ClaimPolicy, ClaimResult, ConnectionRecord, Owners } from '../../ports/owners';
import { unavailable } from '../../protocol/faults';
import { NodeDirectory, nodesByUser, type NodeTable } from '../../shared/node-directory';
import { luaScript, type RedisCommands, type RedisReply } from './redis-connection';
import { DEFAULT_KEY_PREFIX, redisKeys, type RedisKeys } from './redis-keys';

/**
 * Single tab: the user's records are swapped for the new one in one step,
 * and the old ones answered. KEYS: the user's hash. ARGV: connection id, record, ttl ms.
 */
const CLAIM_SINGLE = luaScript(
  'owners-claim-single',
  `local before = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return before`,
);

/**
 * Multi tab: counts the live tabs (own expiry and node heartbeat ahead of
 * `now`), refuses at `maxTabs`, else drops the dead ones and adds the new
 * one. The node table rides along as arguments (on a cluster it lives on
 * another shard); a record of a node it does not list is answered with
 * `unknown`, unless `strict`, so the caller can fetch a newer table first.
 * KEYS: the user's hash. ARGV: now, maxTabs, connection id, record, strict,
 * ttl margin ms, then node id / heartbeat expiry pairs.
 */
const CLAIM_MULTI = luaScript(
  'owners-claim-multi',
  `local now, maxTabs = tonumber(ARGV[1]), tonumber(ARGV[2])
local nodes = {}
for i = 7, #ARGV, 2 do nodes[ARGV[i]] = tonumber(ARGV[i + 1]) end
local fields = redis.call('HGETALL', KEYS[1])
local live, dead = 0, {}
local lastExpiry = cjson.decode(ARGV[4]).e
for i = 1, #fields, 2 do
  if fields[i] ~= ARGV[3] then
    local r = cjson.decode(fields[i + 1])
    local beat = nodes[r.n]
    if beat == nil and r.e > now and ARGV[5] ~= '1' then return {'unknown'} end
    if r.e > now and beat ~= nil and beat > now then
      live = live + 1
      if r.e > lastExpiry then lastExpiry = r.e end
    else
      dead[#dead + 1] = fields[i]
    end
  end
end
if live >= maxTabs then return {'full', live} end
if #dead > 0 then redis.call('HDEL', KEYS[1], unpack(dead)) end
redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.max(1000, lastExpiry - now + tonumber(ARGV[6])))
return {'ok'}`,
);

/**
 * Sets one node's heartbeat and forgets nodes dead for longer than the
 * horizon. KEYS: the node hash. ARGV: node id, expiry, now, horizon ms.
 */
const HEARTBEAT = luaScript(
  'owners-heartbeat',
  `redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local oldest = tonumber(ARGV[3]) - tonumber(ARGV[4])
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if tonumber(all[i + 1]) < oldest then redis.call('HDEL', KEYS[1], all[i]) end
end
return 1`,
);

/** A user's hash outlives its last record by this much: only memory, liveness is decided by the clock. */
const TTL_MARGIN_MS = 60_000;
/** A dead node stays listed (as dead) this long, so its leftover records cost no re-read of the table. */
const NODE_HORIZON_MS = 24 * 3600 * 1000;
const CLAIM_ATTEMPTS = 3;

export interface RedisOwnersOptions {
  /** Shared with the rest of the process: `close()` leaves it open. */
  readonly redis: RedisCommands;
  /** @default 'herald:' */
  readonly keyPrefix?: string;
  /** @default the system clock */
  readonly clock?: Clock;
  /** How long node heartbeats read from Redis are trusted. @default 1000 */
  readonly nodeCacheMs?: number;
}

/**
 * `Owners` on Redis. One hash per user, `{o:<user>}`, maps each connection
 * id to its record (JSON: n node, c connected at, e expires at), so every
 * claim is one script on one key (one slot): atomic without locks. One hash
 * `{nodes}` holds each node's heartbeat expiry.
 *
 * A record is live iff its own `e` and its node's heartbeat are both ahead of
 * the injected clock, never Redis's: the hash's own TTL only reclaims memory.
 * Heartbeats live on another key (another shard, on a cluster), so they are
 * checked beside the script, from a short cache, as the DynamoDB adapter does.
 */
export class RedisOwners implements Owners {
  private readonly redis: RedisCommands;
  private readonly keys: RedisKeys;
  private readonly clock: Clock;
  private readonly nodes: NodeDirectory;

  constructor(options: RedisOwnersOptions) {
    this.redis = options.redis;
    this.keys = redisKeys(options.keyPrefix ?? DEFAULT_KEY_PREFIX);
    this.clock = options.clock ?? systemClock;
    this.nodes = new NodeDirectory(() => this.readNodes(), this.clock, options.nodeCacheMs ?? 1_000);
  }

  async claim(record: ConnectionRecord, policy: ClaimPolicy): Promise<ClaimResult> {
    if (policy.mode === 'multi') return this.claimMulti(record, policy.maxTabs);
    const ttl = Math.max(1_000, record.expiresAtMs - this.clock() + TTL_MARGIN_MS);
    const reply = await this.redis.script(CLAIM_SINGLE, [this.keys.owners(record.userId)], [record.connectionId, encodeRecord(record), String(ttl)]);
    // A retried claim of this very connection is not another tab.
    const before = readRecords(record.userId, reply).filter((r) => r.connectionId !== record.connectionId);
    return { ok: true, displaced: await this.nodes.live(before) };
  }

  async release(userId: string, connectionId: string): Promise<void> {
    await this.redis.command(this.keys.owners(userId), ['HDEL', this.keys.owners(userId), connectionId]);
  }

  async heartbeat(nodeId: string, expiresAtMs: number): Promise<void> {
    await this.redis.script(HEARTBEAT, [this.keys.nodes], [nodeId, String(expiresAtMs), String(this.clock()), String(NODE_HORIZON_MS)]);
    // This instance sees its own heartbeat at once; others within `nodeCacheMs`.
    this.nodes.invalidate();
  }

  /** One HGETALL per user, all issued together: the client pipelines them (per shard, on a cluster). */
  async locate(userIds: readonly string[]): Promise<ReadonlyMap<string, readonly string[]>> {
    const users = [...new Set(userIds)];
    if (users.length === 0) return new Map();
    const replies = await Promise.all(users.map((u) => this.redis.command(this.keys.owners(u), ['HGETALL', this.keys.owners(u)])));
    const records = users.flatMap((userId, i) => readRecords(userId, replies[i]!));
    return nodesByUser(await this.nodes.live(records));
  }

  /** The connection belongs to the composition root; only the cache is dropped. */
  close(): Promise<void> {
    this.nodes.clear();
    return Promise.resolve();
  }

  private async claimMulti(record: ConnectionRecord, maxTabs: number): Promise<ClaimResult> {
    const key = this.keys.owners(record.userId);
    let table = await this.nodes.cached();
    for (let attempt = 1; attempt <= CLAIM_ATTEMPTS; attempt++) {
      const mark = this.nodes.mark();
      const strict = attempt === CLAIM_ATTEMPTS ? '1' : '0';
      const pairs = [...table].flatMap(([nodeId, expiresAtMs]) => [nodeId, String(expiresAtMs)]);
      const args = [String(this.clock()), String(maxTabs), record.connectionId, encodeRecord(record), strict, String(TTL_MARGIN_MS), ...pairs];
      const reply = await this.redis.script(CLAIM_MULTI, [key], args);
      const [outcome, active] = Array.isArray(reply) ? (reply as RedisReply[]) : [];
      if (outcome === 'ok') return { ok: true, displaced: [] };
      if (outcome === 'full' && typeof active === 'number') return { ok: false, reason: 'too_many_tabs', active };
      if (outcome !== 'unknown') throw new Error(`owners-claim-multi answered ${JSON.stringify(reply)}`);
      // A node heartbeats before it claims: a table read after this script saw the claim lists it.
      table = await this.nodes.fetchedAfter(mark);
    }
    throw unavailable('a multi-tab claim kept meeting nodes missing from the heartbeat table');
  }


  private async readNodes(): Promise<NodeTable> {
    const reply = await this.redis.command(this.keys.nodes, ['HGETALL', this.keys.nodes]);
    const table = new Map<string, number>();
    for (const [nodeId, value] of pairsOf(reply, 'node table')) {
      const expiresAtMs = Number(value);
      if (!Number.isFinite(expiresAtMs)) throw new Error(`node ${nodeId} has a heartbeat that is not a number`);
      table.set(nodeId, expiresAtMs);
    }
    return table;
  }
}

function encodeRecord(r: ConnectionRecord): string {
  return JSON.stringify({ n: r.nodeId, c: r.connectedAtMs, e: r.expiresAtMs });
}

function readRecords(userId: string, reply: RedisReply): ConnectionRecord[] {
  return pairsOf(reply, 'owner hash').map(([connectionId, value]) => {
    const stored = JSON.parse(value) as { n?: unknown; c?: unknown; e?: unknown };
    const { n: nodeId, c: connectedAtMs, e: expiresAtMs } = stored;
    if (typeof nodeId !== 'string' || typeof connectedAtMs !== 'number' || typeof expiresAtMs !== 'number') {
      throw new Error(`the owner record of ${connectionId} is malformed`);
    }
    return { userId, connectionId, nodeId, connectedAtMs, expiresAtMs };
  });
}

/** An HGETALL reply (RESP2: field, value, field, value…) as pairs. */
function pairsOf(reply: RedisReply, what: string): [string, string][] {
  if (!Array.isArray(reply)) throw new Error(`${what}: expected a flat array of fields and values`);
  const pairs: [string, string][] = [];
  for (let i = 0; i + 1 < reply.length; i += 2) {
    const [field, value] = [reply[i] as RedisReply, reply[i + 1] as RedisReply];
    if (typeof field !== 'string' || typeof value !== 'string') throw new Error(`${what}: expected string fields and values`);
    pairs.push([field, value]);
  }
  return pairs;
}
