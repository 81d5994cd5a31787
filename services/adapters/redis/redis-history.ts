import { systemClock, type Clock } from '../../ports/clock';
import type { AppendResult, History, ReplayResult } from '../../ports/history';
import { encodeBusMessage, parseBusMessage } from '../../protocol/bus-message';
import type { HeraldEvent } from '../../protocol/envelope';
import { parseRecipients } from '../../protocol/notification-fields';
import { eventIdFloor, eventIdTimeMs, isEventId, newEventId } from '../../protocol/event-id';
import { MAX_ID_CLOCK_SKEW_MS } from '../../protocol/limits';
import { contentFingerprint } from '../../shared/event-fingerprint';
import { APPEND, MARK, READ } from './history-scripts';
import { readEpoch } from './redis-epoch';
import type { RedisCommands, RedisReply } from './redis-connection';
import { DEFAULT_KEY_PREFIX, redisKeys, type HistoryKeys, type RedisKeys } from './redis-keys';

export interface RedisHistoryOptions {
  /** Shared with the rest of the process: `close()` leaves it open. */
  readonly redis: RedisCommands;
  /** Events kept per user stream and for the broadcast stream; the oldest appended is evicted first. */
  readonly maxEventsPerStream: number;
  /** @default 'herald:' */
  readonly keyPrefix?: string;
  /** @default the system clock */
  readonly clock?: Clock;
  /**
   * Report `history_trimmed` from a position this store does not hold and
   * that may predate its epoch (redis-epoch.ts): when Redis lost its data
   * (restarted without persistence), what followed the position is gone
   * unseen. Off, such a position is valid and answered without a gap, as the
   * History contract has it for ids that were never stored; on, the cost is
   * one more command per replay, and a gap from the positions no event holds
   * (a stream's start, a live-only event) of the first seconds of an epoch.
   * @default false
   */
  readonly detectEmptied?: boolean;
}

/**
 * How long a stream's keys outlive its longest-lived event. A reader must SEE
 * that something after its position expired to report `history_trimmed`; the
 * keys (and their eviction markers) last this long past every expiry, and a
 * position older than this is reported as trimmed outright (as DynamoHistory).
 */
export const HISTORY_HORIZON_MS = 24 * 3600 * 1000;

/**
 * How long a caller-chosen id's mark outlives its event by Redis's clock. The
 * mark's expiry is judged by the adapter's clock; Redis's own only reclaims
 * the key, and must not do so before the event expires by a node's clock a
 * little behind Redis's.
 */
const MARK_MARGIN_MS = 60_000;

/**
 * Recipient lists up to this size ride in every stream's copy of the event;
 * longer ones are stored once (`{to:<id>}`) and each copy names only its own
 * user. Copying a 1,000-user list into 1,000 streams would make a fan-out's
 * memory grow with the square of its size (the same cut as DynamoHistory).
 */
const INLINE_RECIPIENTS_MAX_BYTES = 1024;

/** One stored entry as read back. */
interface Entry {
  readonly id: string;
  /** `<appendKey><id>`: the sort key of append order. */
  readonly member: string;
  readonly expiresAtMs: number;
  readonly body: string;
  /** Its recipient list is stored apart. */
  readonly apart: boolean;
}

interface StreamRead {
  /** The position's append key, when this stream holds the position's event. */
  readonly positionKey: string | undefined;
  /** Highest member and highest id evicted by the cap ('' for none). */
  readonly evictedMember: string;
  readonly evictedId: string;
  readonly entries: readonly Entry[];
}

/**
 * `History` on Redis: per user (`{h:<user>}`) and for broadcasts (`{hist}`),
 * a sorted set in append order and a hash of the events (history-scripts.ts),
 * two keys in one slot so that one script appends, checks for a duplicate and
 * evicts past the cap atomically.
 *
 * The append key is a ULID minted when the event is appended (as in
 * DynamoHistory), so user and broadcast streams — on different shards of a
 * cluster — still merge in one append order: the port's replay order from a
 * stored position. From a position that is not stored, ids decide, and only
 * entries appended since the position's time (less the clock skew a
 * publisher may have) can have a greater id, so a replay never reads a whole
 * stream. Retention is the injected clock's: each entry's expiry is checked
 * by every read; Redis's own TTL only reclaims the keys of idle streams.
 *
 * A recipient list longer than 1 KiB is stored once beside the streams
 * (`{to:<id>}`), before them, and fetched for the events a replay returns.
 *
 * Duplicates, first write wins: a caller-chosen id is first claimed for its
 * content with a mark of its own (`{id:<id>}`, one key for all its streams,
 * which may sit on different shards). When the id was claimed before with
 * other content, nothing is written; with the same content (a retry), the
 * streams that lack it (a first attempt that died part-way) store it. Within
 * a stream the script that stores also checks: an event's first stream (its
 * first user's, or the broadcast one) tells whether it was stored there
 * before. A `minted` event needs no mark (no earlier publish can have used
 * its id) and takes the stream check alone, so appending it twice still
 * stores it once.
 */
export class RedisHistory implements History {
  private readonly redis: RedisCommands;
  private readonly keys: RedisKeys;
  private readonly clock: Clock;
  private readonly maxEventsPerStream: number;
  private readonly detectEmptied: boolean;

  constructor(options: RedisHistoryOptions) {
    if (!(Number.isInteger(options.maxEventsPerStream) && options.maxEventsPerStream >= 1)) {
      throw new Error('maxEventsPerStream must be a positive integer');
    }
    this.redis = options.redis;
    this.keys = redisKeys(options.keyPrefix ?? DEFAULT_KEY_PREFIX);
    this.clock = options.clock ?? systemClock;
    this.maxEventsPerStream = options.maxEventsPerStream;
    this.detectEmptied = options.detectEmptied ?? false;
  }

  append(event: HeraldEvent): Promise<AppendResult> {
    return this.appendBatch([event]).then(([result]) => result!);
  }

  /**
   * Append keys are minted in batch order, and each stream gets its events
   * in one script call, in that order; the calls for all streams are issued
   * together, which the client pipelines.
   */
  async appendBatch(events: readonly HeraldEvent[]): Promise<AppendResult[]> {
    const now = this.clock();
    const marks = await this.mark(events, now);
    const results: AppendResult[] = events.map(() => ({ stored: false, duplicate: false }));
    const streams = new Map<string, { keys: HistoryKeys; args: string[]; decides: (number | undefined)[] }>();
    const lists: { key: string; value: string; ttlMs: number }[] = [];
    const add = (keys: HistoryKeys, args: string[], decides: number | undefined): void => {
      const stream = streams.get(keys.order) ?? { keys, args: [], decides: [] };
      stream.args.push(...args);
      stream.decides.push(decides);
      streams.set(keys.order, stream);
    };
    events.forEach((event, index) => {
      if (event.ttlSeconds === 0) return;
      const mark = marks[index];
      results[index] = { stored: true, duplicate: mark !== 'new' };
      if (mark === 'other') return;
      const appendKey = newEventId(now);
      const expiresAtMs = String(now + event.ttlSeconds * 1000);
      if ('all' in event.to) {
        add(this.keys.broadcastHistory, [event.id, appendKey, expiresAtMs, ' ' + encodeEvent(event)], index);
        return;
      }
      const list = JSON.stringify(event.to);
      if (Buffer.byteLength(list) <= INLINE_RECIPIENTS_MAX_BYTES) {
        const stored = ' ' + encodeEvent(event);
        event.to.users.forEach((user, i) => add(this.keys.history(user), [event.id, appendKey, expiresAtMs, stored], i === 0 ? index : undefined));
        return;
      }
      lists.push({ key: this.keys.recipients(event.id), value: list, ttlMs: event.ttlSeconds * 1000 + HISTORY_HORIZON_MS });
      event.to.users.forEach((user, i) => {
        const own = '+' + encodeEvent({ ...event, to: { users: [user] } });
        add(this.keys.history(user), [event.id, appendKey, expiresAtMs, own], i === 0 ? index : undefined);
      });
    });
    // The lists first: a replay that meets an entry must find its list.
    await Promise.all(lists.map(({ key, value, ttlMs }) => this.redis.command(key, ['SET', key, value, 'PX', String(ttlMs)])));
    const common = [String(now), String(this.maxEventsPerStream), String(HISTORY_HORIZON_MS)];
    await Promise.all(
      [...streams.values()].map(async ({ keys, args, decides }) => {
        const reply = await this.redis.script(APPEND, [keys.order, keys.events], [...common, ...args]);
        if (!Array.isArray(reply) || reply.length !== decides.length) throw new Error(`history-append answered ${JSON.stringify(reply)}`);
        decides.forEach((index, i) => {
          if (index !== undefined && reply[i] === 1) results[index] = { stored: true, duplicate: true };
        });
      }),
    );
    return results;
  }

  async since(userId: string, lastEventId: string, limit: number): Promise<ReplayResult> {
    const now = this.clock();
    const position = isEventId(lastEventId) ? lastEventId : '';
    // Appended no earlier than its id's time less the skew a publisher may have: the earliest a greater id can be.
    const bound = position === '' ? '' : eventIdFloor(Math.max(0, eventIdTimeMs(position) - MAX_ID_CLOCK_SKEW_MS));
    const streams = await Promise.all([this.read(this.keys.history(userId), position, bound), this.read(this.keys.broadcastHistory, position, bound)]);
    const positionKey = streams.find((s) => s.positionKey !== undefined)?.positionKey;
    // A stored position: what was appended after it. Otherwise greater ids.
    const positionMember = positionKey === undefined ? undefined : positionKey + lastEventId;
    const after = positionMember === undefined ? (e: Entry) => e.id > lastEventId : (e: Entry) => e.member > positionMember;

    // Older than the horizon, entries after the position may be gone unseen.
    let trimmed = eventIdTimeMs(positionKey ?? bound) < now - HISTORY_HORIZON_MS;
    const kept: Entry[] = [];
    for (const stream of streams) {
      const evictedAfter = positionMember === undefined ? stream.evictedId > lastEventId : stream.evictedMember > positionMember;
      if (evictedAfter) trimmed = true;
      for (const entry of stream.entries.filter(after)) {
        if (entry.expiresAtMs > now) kept.push(entry);
        else trimmed = true; // expired: the client missed it for good
      }
    }
    if (this.detectEmptied && positionKey === undefined && position !== '' && !trimmed) trimmed = await this.beforeEpoch(position, now);
    kept.sort(positionMember === undefined ? byIdThenMember : byMember);
    const gap = trimmed ? 'history_trimmed' : kept.length > limit ? 'replay_limit' : null;
    return { events: await this.restore(kept.slice(0, limit)), gap };
  }

  /** The connection belongs to the composition root; this adapter holds nothing else. */
  close(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * Claims each caller-chosen id of the batch for its content, all at once:
   * `new` when it was free (and for minted and live-only events, which need
   * no mark), `same` when claimed before with this content, `other` with
   * other content.
   */
  private mark(events: readonly HeraldEvent[], now: number): Promise<Array<'new' | 'same' | 'other'>> {
    return Promise.all(
      events.map(async (event) => {
        if (event.ttlSeconds === 0 || event.minted === true) return 'new';
        const key = this.keys.eventMark(event.id);
        const ttlMs = event.ttlSeconds * 1000;
        const fingerprint = contentFingerprint(event);
        const reply = await this.redis.script(MARK, [key], [String(now), String(now + ttlMs), fingerprint, String(ttlMs + MARK_MARGIN_MS)]);
        if (reply === null) return 'new';
        if (typeof reply !== 'string') throw new Error(`history-mark answered ${JSON.stringify(reply)}`);
        return reply === fingerprint ? 'same' : 'other';
      }),
    );
  }

  /**
   * Whether an unknown position may be older than the data this store kept.
   * Read after the streams: if they were read from an emptied store, this
   * sees its new epoch (or makes it). An id may have been minted by a
   * publisher whose clock is ahead by up to the skew the envelope allows.
   */
  private async beforeEpoch(position: string, now: number): Promise<boolean> {
    const epoch = await readEpoch(this.redis, this.keys.epoch, now);
    return eventIdTimeMs(position) < epoch.startedAtMs + MAX_ID_CLOCK_SKEW_MS;
  }

  /** The replayed events, with the lists stored apart fetched (all together) and put back. */
  private async restore(entries: readonly Entry[]): Promise<HeraldEvent[]> {
    const apart = [...new Set(entries.filter((e) => e.apart).map((e) => e.id))];
    const lists = await Promise.all(apart.map((id) => this.redis.command(this.keys.recipients(id), ['GET', this.keys.recipients(id)])));
    const listOf = new Map(apart.map((id, i) => [id, lists[i]]));
    return entries.map((entry) => {
      const event = decode(entry);
      if (!entry.apart) return event;
      const list = listOf.get(entry.id);
      if (typeof list !== 'string') throw new Error(`history: the recipient list of event ${entry.id} is gone`);
      return { ...event, to: parseRecipients(JSON.parse(list)) };
    });
  }

  private async read(keys: HistoryKeys, position: string, bound: string): Promise<StreamRead> {
    const reply = await this.redis.script(READ, [keys.order, keys.events], [position, bound]);
    const [positionKey, evictedMember, evictedId, members, values] = Array.isArray(reply) ? (reply as RedisReply[]) : [];
    if (typeof positionKey !== 'string' || typeof evictedMember !== 'string' || typeof evictedId !== 'string' || !Array.isArray(members) || !Array.isArray(values)) {
      throw new Error('history-read answered something else than its five parts');
    }
    const entries: Entry[] = [];
    members.forEach((member: RedisReply, i) => {
      const value = values[i] as RedisReply;
      // Evicted between the range and the lookup cannot happen inside one script; a lone member is skipped all the same.
      if (typeof member !== 'string' || typeof value !== 'string') return;
      const stored = STORED.exec(value);
      if (!stored) throw new Error(`history entry ${member.slice(26)} is malformed`);
      const [whole, expiresAtMs, mark] = stored as unknown as [string, string, string];
      entries.push({ id: member.slice(26), member, expiresAtMs: Number(expiresAtMs), body: value.slice(whole.length), apart: mark === '+' });
    });
    return { positionKey: positionKey === '' ? undefined : positionKey, evictedMember, evictedId, entries };
  }
}

/** `<appendKey><expiresAtMs><mark>`, before the body. */
const STORED = /^[0-9A-Z]{26}(\d+)([ +])/;

/** `minted` is left behind by the codec: only the publishing process knows it. */
function encodeEvent(event: HeraldEvent): string {
  return encodeBusMessage({ kind: 'deliver', events: [event] });
}

const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const byMember = (a: Entry, b: Entry): number => compare(a.member, b.member);
const byIdThenMember = (a: Entry, b: Entry): number => compare(a.id, b.id) || byMember(a, b);

/** Stored with the bus codec, so it is read back through the same checks as a bus message. */
function decode(entry: Entry): HeraldEvent {
  const message = parseBusMessage(entry.body, {});
  const [event] = message.kind === 'deliver' ? message.events : [];
  if (event?.id !== entry.id) throw new Error(`history entry ${entry.id} does not hold its event`);
  return event;
}
