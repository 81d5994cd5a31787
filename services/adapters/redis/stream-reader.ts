import { backoffCeiling, equalJitter } from '../../shared/backoff';
import type { Logger } from '../../shared/log';
import { luaScript, type RedisConnection, type RedisReply } from './redis-connection';
import type { StreamKeys } from './redis-keys';

/**
 * Where a stream stands: its last entry id (`0-0` when it has none) and how
 * many messages were ever added to it (its `seq` counter, 0 when absent). A
 * live reader calls this every `blockMs` or so, which also keeps the stream
 * and its counter from expiring under it: only the streams of nodes that
 * stopped reading expire.
 */
const OBSERVE = luaScript(
  'bus-observe',
  `local seq = tonumber(redis.call('GET', KEYS[2]) or '0')
if seq > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
end
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if last[1] then return {last[1][1], seq} end
return {'0-0', seq}`,
);

/** Entries per XREAD: a handful of bodies of at most MAX_BODY_BYTES each. */
const READ_COUNT = 100;

export type MissReason = 'trimmed' | 'reset';

export interface StreamReaderOptions {
  readonly keys: StreamKeys;
  /** What a message on this stream says about its target, for the codec: a node id, or `all`. */
  readonly target: string;
  readonly streamTtlMs: number;
  readonly blockMs: number;
  readonly log: Logger;
  readonly backoff: { readonly firstMs: number; readonly maxMs: number };
  /** One message body, in stream order. Never rejects: the bus handles its own failures. */
  readonly onBody: (body: string, entryId: string) => Promise<void>;
  /** Messages between the last one read and the next may be gone. */
  readonly onMissed: (reason: MissReason) => void;
}

interface Entry {
  readonly id: string;
  readonly body: string | undefined;
  readonly seq: number | undefined;
}

/**
 * Reads one stream on a connection of its own with XREAD BLOCK, from the
 * last id it read, so a reconnect resumes where it stopped. Every message a
 * sender adds carries the stream's next `seq`; a jump past the next number
 * means entries were trimmed (MAXLEN) or expired before this reader got to
 * them, and a number going back means the stream was made again (Redis
 * restarted empty, failed over, or the reader was away longer than the
 * stream's ttl). Either way `onMissed` is called, and reading goes on.
 */
export class StreamReader {
  private lastId = '0-0';
  private lastSeq = 0;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly connection: RedisConnection,
    private readonly options: StreamReaderOptions,
  ) {}

  /** Positions the reader at the stream's end (what was sent before is not for this start) and starts reading. */
  async start(): Promise<void> {
    const { lastId, seq } = await this.observe();
    this.lastId = lastId;
    this.lastSeq = seq;
    this.loop = this.run();
  }

  /** Ends the blocked read at once (by closing its connection) and waits for the loop, handler included. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.connection.destroy();
    this.wake?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    const { log, keys, blockMs } = this.options;
    let failures = 0;
    let observedAt = Date.now();
    while (!this.isStopped()) {
      try {
        // After a failure (the reconnect may have found an empty server) and at least every block.
        if (failures > 0 || Date.now() - observedAt >= blockMs) {
          const { seq } = await this.observe();
          observedAt = Date.now();
          if (seq < this.lastSeq) this.missed('reset', 0);
        }
        const reply = await this.connection.command(keys.stream, ['XREAD', 'COUNT', String(READ_COUNT), 'BLOCK', String(blockMs), 'STREAMS', keys.stream, this.lastId]);
        if (failures > 0) log.info('bus.recovered', { stream: keys.stream, failures });
        failures = 0;
        for (const entry of entriesOf(reply)) {
          if (this.isStopped()) return;
          this.check(entry);
          this.lastId = entry.id;
          if (entry.body !== undefined) await this.options.onBody(entry.body, entry.id);
        }
      } catch (error) {
        // Closed by stop(): not an outage.
        if (this.isStopped()) return;
        failures++;
        log.warn('bus.receive_failed', { stream: keys.stream, failures, error });
        await this.pause(failures);
      }
    }
  }

  /** A call, not the field: the loop's `await`s let stop() change it, which narrowing would not see. */
  private isStopped(): boolean {
    return this.stopped;
  }

  private check(entry: Entry): void {
    if (entry.seq === undefined) return; // not added by a Herald sender: nothing to count
    if (entry.seq > this.lastSeq + 1) this.missed('trimmed', entry.seq);
    else if (entry.seq <= this.lastSeq) this.missed('reset', entry.seq);
    else this.lastSeq = entry.seq;
  }

  private missed(reason: MissReason, seq: number): void {
    this.options.log.warn('bus.messages_missed', { stream: this.options.keys.stream, reason, lastSeq: this.lastSeq, seq });
    this.lastSeq = seq;
    if (!this.stopped) this.options.onMissed(reason);
  }

  private async observe(): Promise<{ lastId: string; seq: number }> {
    const { keys, streamTtlMs } = this.options;
    const reply = await this.connection.script(OBSERVE, [keys.stream, keys.seq], [String(streamTtlMs)]);
    if (!Array.isArray(reply) || typeof reply[0] !== 'string' || typeof reply[1] !== 'number') {
      throw new Error(`bus-observe answered ${JSON.stringify(reply)}`);
    }
    return { lastId: reply[0], seq: reply[1] };
  }

  /** Capped exponential backoff, half fixed and half random, cut short by stop(). */
  private pause(failures: number): Promise<void> {
    const ms = equalJitter(backoffCeiling(failures - 1, this.options.backoff));
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      this.wake = done;
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
    });
  }
}

/** The entries of an XREAD reply for one stream: `[[key, [[id, [field, value, …]], …]]]`, or nil after BLOCK. */
function entriesOf(reply: RedisReply): Entry[] {
  if (reply === null) return [];
  const stream = Array.isArray(reply) ? (reply[0] as RedisReply) : undefined;
  const items = Array.isArray(stream) ? (stream[1] as RedisReply) : undefined;
  if (!Array.isArray(items)) throw new Error('XREAD answered something other than one stream');
  return items.map((item: RedisReply): Entry => {
    const [id, fields] = Array.isArray(item) ? (item as RedisReply[]) : [];
    if (typeof id !== 'string' || !Array.isArray(fields)) throw new Error('XREAD answered an entry without id or fields');
    let body: string | undefined;
    let seq: number | undefined;
    for (let i = 0; i + 1 < fields.length; i += 2) {
      const [name, value] = [fields[i] as RedisReply, fields[i + 1] as RedisReply];
      if (name === 'm' && typeof value === 'string') body = value;
      if (name === 's' && typeof value === 'string' && /^\d+$/.test(value)) seq = Number(value);
    }
    return { id, body, seq };
  });
}
