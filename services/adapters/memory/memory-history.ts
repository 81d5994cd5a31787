import type { HeraldEvent } from '../../protocol/envelope';
import { eventIdTimeMs } from '../../protocol/event-id';
import { MAX_TTL_SECONDS } from '../../protocol/limits';
import type { AppendResult, History, ReplayResult } from '../../ports/history';
import { systemClock, type Clock } from '../../ports/clock';

export interface MemoryHistoryOptions {
  /** Events kept per user (and for broadcasts); older ones are evicted first. */
  readonly maxEventsPerStream: number;
  /** Bound on the data held in all streams together, so a busy node cannot grow without limit. */
  readonly maxBytes: number;
  readonly clock?: Clock;
}

interface Stored {
  readonly event: HeraldEvent;
  /** Append order across the whole history. */
  readonly seq: number;
  readonly expiresAtMs: number;
  readonly bytes: number;
  /** How many streams still hold it; at 0 it is forgotten and its bytes returned. */
  refs: number;
}

interface Stream {
  /** The user whose stream it is; undefined for the broadcast stream. */
  readonly userId: string | undefined;
  /** Ascending by id. Publishers may supply ids, so an append can land before the tail. */
  readonly entries: Stored[];
  /** Highest id this stream lost before its time: positions below it have a hole. */
  trimmedUpTo: string;
  /** The same in append order, for positions found in history. */
  trimmedSeq: number;
}

const SWEEP_INTERVAL_MS = 60_000;
/** Beyond the longest ttl nothing can be replayed anyway, so such old positions always report a gap. */
const HORIZON_MS = MAX_TTL_SECONDS * 1000;
/**
 * What the heap really holds, estimated generously (strings at two bytes a
 * character, as V8 stores any string with a character above U+00FF), so that
 * `maxBytes` bounds the memory and not only the data: an event's objects and
 * its entry in the id map; per recipient its id in the list and its slot in
 * the user's stream; per user stream the stream itself and its map entry,
 * which outlive the events while the stream remembers what it lost. Measured
 * with 300 events to 1,000 new users each: about 350 bytes per recipient.
 */
const EVENT_OVERHEAD_BYTES = 320;
const RECIPIENT_OVERHEAD_BYTES = 40;
const STREAM_OVERHEAD_BYTES = 260;
const stringBytes = (value: string): number => 2 * value.length;
const streamBytes = (userId: string): number => STREAM_OVERHEAD_BYTES + stringBytes(userId);

function eventBytes(event: HeraldEvent): number {
  let bytes = EVENT_OVERHEAD_BYTES + stringBytes(event.data) + stringBytes(event.id) + stringBytes(event.event);
  if (!('all' in event.to)) for (const userId of event.to.users) bytes += RECIPIENT_OVERHEAD_BYTES + stringBytes(userId);
  return bytes;
}

/**
 * History in the node's memory, bounded by `maxBytes` over everything it
 * holds. Past the bound the user streams left empty, which only remember what
 * they lost, go first, oldest emptied first; then the oldest events. A forgotten
 * stream's marks are folded into `forgotten`, which stands in for every user
 * without a stream (and seeds a new one), so a position such a stream could
 * have answered for gets `history_trimmed`, never silence: at worst a user
 * who lost nothing is told to refetch.
 */
export class MemoryHistory implements History {
  /** One stream per user, and one for broadcasts. */
  private readonly streams = new Map<string, Stream>();
  private broadcast: Stream = newStream(undefined);
  /** User streams holding no events, oldest emptied first: the ones forgotten when still over `maxBytes`. */
  private readonly emptied = new Set<string>();
  /** What every forgotten user stream lost, together. */
  private forgotten: Stream = newStream(undefined);
  private readonly byId = new Map<string, Stored>();
  /** Append order across all streams: the eviction order when over `maxBytes`. */
  /** Entries before `fifoHead` are cleared to undefined, so an evicted event is not kept alive by this array. */
  private fifo: Array<Stored | undefined> = [];
  private fifoHead = 0;
  private liveCount = 0;
  /**
   * Bytes of events no stream holds any more (a stream's own cap, expiry) but
   * still in the FIFO until it is compacted: they stay counted in `bytes`,
   * because until then they are still in the heap.
   */
  private deadBytes = 0;
  private bytes = 0;
  private seq = 0;
  private readonly clock: Clock;
  private lastSweepMs: number;

  constructor(private readonly options: MemoryHistoryOptions) {
    this.clock = options.clock ?? systemClock;
    this.lastSweepMs = this.clock();
  }

  append(event: HeraldEvent): Promise<AppendResult> {
    if (event.ttlSeconds === 0) return Promise.resolve({ stored: false, duplicate: false });
    const now = this.clock();
    this.sweepIfDue(now);
    const known = this.byId.get(event.id);
    if (known && known.expiresAtMs > now) return Promise.resolve({ stored: true, duplicate: true });

    const stored: Stored = {
      // `minted` is for the publishing process only; a replay never carries it.
      event: event.minted === true ? withoutMinted(event) : event,
      seq: ++this.seq,
      expiresAtMs: now + event.ttlSeconds * 1000,
      bytes: eventBytes(event),
      refs: 'all' in event.to ? 1 : event.to.users.length,
    };
    this.byId.set(event.id, stored);
    this.fifo.push(stored);
    this.liveCount++;
    this.bytes += stored.bytes;
    if ('all' in event.to) {
      this.insert(this.broadcast, stored);
    } else {
      for (const userId of event.to.users) {
        let stream = this.streams.get(userId);
        if (!stream) {
          // It may have been forgotten: it starts with what every forgotten stream lost.
          stream = { ...newStream(userId), trimmedUpTo: this.forgotten.trimmedUpTo, trimmedSeq: this.forgotten.trimmedSeq };
          this.streams.set(userId, stream);
          this.bytes += streamBytes(userId);
        }
        this.insert(stream, stored);
      }
    }
    // Emptied streams go before events: they only remember a loss, which
    // `forgotten` goes on remembering (coarsely), where an event is still replayable.
    while (this.bytes > this.options.maxBytes) {
      if (this.emptied.size > 0) this.forgetOldestEmptied();
      else if (this.fifoHead < this.fifo.length) this.evictOldest();
      else break;
    }
    this.compactFifo();
    return Promise.resolve({ stored: true, duplicate: false });
  }

  /** One at a time: in memory a batch costs nothing more than its events. */
  async appendBatch(events: readonly HeraldEvent[]): Promise<AppendResult[]> {
    const results: AppendResult[] = [];
    for (const event of events) results.push(await this.append(event));
    return results;
  }

  /**
   * When the position is an event still held, the replay is everything appended
   * after it, in append order: an event whose id sorts earlier (another
   * publisher's clock, a retried id) but that arrived later is not skipped.
   * Otherwise (a live-only event, an evicted one) ids decide.
   */
  since(userId: string, lastEventId: string, limit: number): Promise<ReplayResult> {
    const now = this.clock();
    const position = this.byId.get(lastEventId);
    let trimmed = eventIdTimeMs(lastEventId) < now - HORIZON_MS;
    const pick = (stream: Stream | undefined): Stored[] => {
      if (!stream) return [];
      let after: Stored[];
      if (position) {
        if (stream.trimmedSeq > position.seq) trimmed = true;
        after = stream.entries.filter((s) => s.seq > position.seq);
      } else {
        if (stream.trimmedUpTo > lastEventId) trimmed = true;
        after = stream.entries.slice(firstAfter(stream.entries, lastEventId));
      }
      return after.filter((s) => {
        if (s.expiresAtMs > now) return true;
        trimmed = true; // expired, not yet swept: the client missed it for good
        return false;
      });
    };
    const merged = [...pick(this.streams.get(userId) ?? this.forgotten), ...pick(this.broadcast)].sort(
      position ? (a, b) => a.seq - b.seq : (a, b) => compare(a.event.id, b.event.id),
    );
    const gap = trimmed ? 'history_trimmed' : merged.length > limit ? 'replay_limit' : null;
    return Promise.resolve({ events: merged.slice(0, limit).map((s) => s.event), gap });
  }

  /** Bytes counted against `maxBytes` now. */
  get heldBytes(): number {
    return this.bytes;
  }

  /** User streams held now, emptied ones included. */
  get userStreams(): number {
    return this.streams.size;
  }

  close(): Promise<void> {
    this.streams.clear();
    this.emptied.clear();
    this.broadcast = newStream(undefined);
    this.forgotten = newStream(undefined);
    this.byId.clear();
    this.fifo = [];
    this.fifoHead = 0;
    this.liveCount = 0;
    this.deadBytes = 0;
    this.bytes = 0;
    return Promise.resolve();
  }

  private insert(stream: Stream, stored: Stored): void {
    const { entries } = stream;
    let at = entries.length;
    while (at > 0 && compare(entries[at - 1]!.event.id, stored.event.id) > 0) at--;
    if (at === entries.length) entries.push(stored);
    else entries.splice(at, 0, stored);
    if (stream.userId !== undefined) this.emptied.delete(stream.userId);
    if (entries.length > this.options.maxEventsPerStream) this.drop(stream, 0);
  }

  private drop(stream: Stream, index: number): void {
    const [removed] = stream.entries.splice(index, 1);
    if (!removed) return;
    if (removed.event.id > stream.trimmedUpTo) stream.trimmedUpTo = removed.event.id;
    if (removed.seq > stream.trimmedSeq) stream.trimmedSeq = removed.seq;
    if (stream.entries.length === 0 && stream.userId !== undefined) this.emptied.add(stream.userId);
    removed.refs--;
    if (removed.refs === 0) {
      this.liveCount--;
      this.deadBytes += removed.bytes;
      if (this.byId.get(removed.event.id) === removed) this.byId.delete(removed.event.id);
    }
  }

  /** Takes the FIFO's oldest entry out of every stream that holds it, and returns its bytes. */
  private evictOldest(): void {
    const stored = this.fifo[this.fifoHead];
    this.fifo[this.fifoHead++] = undefined;
    if (!stored) return;
    if (stored.refs > 0) {
      const streams = 'all' in stored.event.to ? [this.broadcast] : stored.event.to.users.map((u) => this.streams.get(u));
      for (const stream of streams) {
        const index = stream ? stream.entries.indexOf(stored) : -1;
        if (stream && index >= 0) this.drop(stream, index);
      }
    }
    // Dropped just now or before: either way its bytes were counted as dead and now leave the heap.
    this.deadBytes -= stored.bytes;
    this.bytes -= stored.bytes;
  }

  private forgetOldestEmptied(): void {
    const oldest = this.emptied.values().next();
    if (oldest.done === true) return;
    const stream = this.streams.get(oldest.value);
    if (stream) {
      if (stream.trimmedUpTo > this.forgotten.trimmedUpTo) this.forgotten.trimmedUpTo = stream.trimmedUpTo;
      if (stream.trimmedSeq > this.forgotten.trimmedSeq) this.forgotten.trimmedSeq = stream.trimmedSeq;
    }
    this.forgetStream(oldest.value);
  }

  private forgetStream(userId: string): void {
    this.emptied.delete(userId);
    if (this.streams.delete(userId)) this.bytes -= streamBytes(userId);
  }

  /**
   * Events dropped by a stream's own cap or by expiry linger in the FIFO, and
   * in the heap; rebuild it once they are half of what is counted (or pile up
   * by number), so the rebuild's cost is amortised over the drops.
   */
  private compactFifo(): void {
    const dead = this.fifo.length - this.fifoHead - this.liveCount;
    if (this.deadBytes * 2 <= this.bytes && dead <= 2 * this.liveCount + 1024) return;
    const kept: Stored[] = [];
    for (let i = this.fifoHead; i < this.fifo.length; i++) {
      const stored = this.fifo[i];
      if (stored && stored.refs > 0) kept.push(stored);
    }
    this.fifo = kept;
    this.fifoHead = 0;
    this.bytes -= this.deadBytes;
    this.deadBytes = 0;
  }

  /**
   * Expired events are already invisible to `since`; this returns their memory.
   * Runs from `append`, at most once a minute, so an idle node does no work. An
   * emptied stream stays as a marker of what it lost until that is older than
   * any position `since` would still trust.
   */
  private sweepIfDue(now: number): void {
    if (now - this.lastSweepMs < SWEEP_INTERVAL_MS) return;
    this.lastSweepMs = now;
    const dropExpired = (stream: Stream): void => {
      for (let i = stream.entries.length - 1; i >= 0; i--) {
        if (stream.entries[i]!.expiresAtMs <= now) this.drop(stream, i);
      }
    };
    dropExpired(this.broadcast);
    for (const [userId, stream] of this.streams) {
      dropExpired(stream);
      const markerStale = stream.trimmedUpTo === '' || eventIdTimeMs(stream.trimmedUpTo) < now - HORIZON_MS;
      if (stream.entries.length === 0 && markerStale) this.forgetStream(userId);
    }
    this.compactFifo();
  }
}

/** Built field by field: a rest copy (`{ minted, ...event }`) was most of the cost of an append. */
function withoutMinted({ id, event, data, to, ttlSeconds, publishedAtMs }: HeraldEvent): HeraldEvent {
  return { id, event, data, to, ttlSeconds, publishedAtMs };
}

function newStream(userId: string | undefined): Stream {
  return { userId, entries: [], trimmedUpTo: '', trimmedSeq: 0 };
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Index of the first entry whose id is greater than `id` (entries ascending). */
function firstAfter(entries: readonly Stored[], id: string): number {
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (entries[mid]!.event.id <= id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
