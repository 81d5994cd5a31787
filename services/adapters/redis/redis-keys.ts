/**
 * Every key the Redis adapters use, in one place. Each starts with the
 * configured prefix, then a hash tag `{…}`: Redis Cluster hashes only what is
 * inside the first `{…}`, so the keys one script or command touches together
 * share a tag, and so a slot. Separate users get separate tags, which spreads
 * them over the shards.
 *
 * | key                        | type   | what                                                  |
 * |----------------------------|--------|-------------------------------------------------------|
 * | `{bus:<node>}:stream`, `:seq` | stream, counter | messages to one node, numbered        |
 * | `{bus}:all`, `{bus}:all:seq`  | stream, counter | messages to every node                |
 * | `{o:<user>}`               | hash   | connection id → record, the user's open streams       |
 * | `{nodes}`                  | hash   | node id → heartbeat expiry (ms)                        |
 * | `{h:<user>}:order`, `:events` | zset, hash | the user's history (redis-history.ts)         |
 * | `{hist}:order`, `:events`  | zset, hash | the broadcast history                              |
 * | `{to:<event id>}`          | string | a long recipient list, stored once (redis-history.ts) |
 * | `{id:<event id>}`          | string | a caller-chosen id's expiry and content fingerprint (redis-history.ts) |
 * | `{rate:<key>}`             | string | GCRA theoretical arrival time (ms)                    |
 * | `{epoch}`                  | string | when this Redis was first seen empty (redis-epoch.ts) |
 *
 * A user id may hold `{` or `}`: the tag then ends early, which moves the
 * user's keys to another slot but keeps them together (their text up to the
 * first `}` is the same) and keeps them apart from other users' (the full key
 * differs). Node ids cannot hold braces (NODE_ID_PATTERN).
 */
export const DEFAULT_KEY_PREFIX = 'herald:';

export interface StreamKeys {
  readonly stream: string;
  readonly seq: string;
}

export interface HistoryKeys {
  /** Sorted set: `<appendKey><eventId>` members, all score 0, so in append order. */
  readonly order: string;
  /** Hash: event id → stored event, and the eviction markers. */
  readonly events: string;
}

export interface RedisKeys {
  busNode(nodeId: string): StreamKeys;
  readonly busAll: StreamKeys;
  owners(userId: string): string;
  readonly nodes: string;
  history(userId: string): HistoryKeys;
  readonly broadcastHistory: HistoryKeys;
  recipients(eventId: string): string;
  eventMark(eventId: string): string;
  rate(key: string): string;
  readonly epoch: string;
}

/** A prefix with a brace would put the hash tag inside it: every key of a deployment in one slot. */
export function redisKeys(prefix: string = DEFAULT_KEY_PREFIX): RedisKeys {
  if (/[{}]/.test(prefix)) throw new Error(`a Redis key prefix cannot contain { or }: "${prefix}"`);
  const history = (tag: string): HistoryKeys => ({ order: `${prefix}{${tag}}:order`, events: `${prefix}{${tag}}:events` });
  return {
    busNode: (nodeId) => ({ stream: `${prefix}{bus:${nodeId}}:stream`, seq: `${prefix}{bus:${nodeId}}:seq` }),
    busAll: { stream: `${prefix}{bus}:all`, seq: `${prefix}{bus}:all:seq` },
    owners: (userId) => `${prefix}{o:${userId}}`,
    nodes: `${prefix}{nodes}`,
    history: (userId) => history(`h:${userId}`),
    broadcastHistory: history('hist'),
    recipients: (eventId) => `${prefix}{to:${eventId}}`,
    eventMark: (eventId) => `${prefix}{id:${eventId}}`,
    rate: (key) => `${prefix}{rate:${key}}`,
    epoch: `${prefix}{epoch}`,
  };
}
