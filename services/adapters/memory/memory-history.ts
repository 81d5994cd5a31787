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
/** Rough per-event overhead beyond its data, so tiny events still count against `maxBytes`. */
const EVENT_OVERHEAD_BYTES = 200;

export class MemoryHistory implements History {
  /** One stream per user, and one for broadcasts. */
  private readonly streams = new Map<string, Stream>();
  private broadcast: Stream = newStream();
  private readonly byId = new Map<string, Stored>();
  /** Append order across all streams: the eviction order when over `maxBytes`. */
  private fifo: Stored[] = [];
  private fifoHead = 0;
  private liveCount = 0;
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
      bytes: event.data.length + EVENT_OVERHEAD_BYTES,
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
          stream = newStream();
          this.streams.set(userId, stream);
        }
        this.insert(stream, stored);
      }
    }
    while (this.bytes > this.options.maxBytes && this.fifoHead < this.fifo.length) this.evictOldest();
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
    const merged = [...pick(this.streams.get(userId)), ...pick(this.broadcast)].sort(
      position ? (a, b) => a.seq - b.seq : (a, b) => compare(a.event.id, b.event.id),
    );
    const gap = trimmed ? 'history_trimmed' : merged.length > limit ? 'replay_limit' : null;
    return Promise.resolve({ events: merged.slice(0, limit).map((s) => s.event), gap });
  }

  close(): Promise<void> {
    this.streams.clear();
    this.broadcast = newStream();
    this.byId.clear();
    this.fifo = [];
    this.fifoHead = 0;
    this.liveCount = 0;
    this.bytes = 0;
    return Promise.resolve();
  }

  private insert(stream: Stream, stored: Stored): void {
    const { entries } = stream;
    let at = entries.length;
    while (at > 0 && compare(entries[at - 1]!.event.id, stored.event.id) > 0) at--;
    if (at === entries.length) entries.push(stored);
    else entries.splice(at, 0, stored);
    if (entries.length > this.options.maxEventsPerStream) this.drop(stream, 0);
  }

  private drop(stream: Stream, index: number): void {
    const [removed] = stream.entries.splice(index, 1);
    if (!removed) return;
    if (removed.event.id > stream.trimmedUpTo) stream.trimmedUpTo = removed.event.id;
    if (removed.seq > stream.trimmedSeq) stream.trimmedSeq = removed.seq;
    removed.refs--;
    if (removed.refs === 0) {
      this.liveCount--;
      this.bytes -= removed.bytes;
      if (this.byId.get(removed.event.id) === removed) this.byId.delete(removed.event.id);
    }
  }

  private evictOldest(): void {
    const stored = this.fifo[this.fifoHead++];
    if (!stored || stored.refs === 0) return;
    const streams = 'all' in stored.event.to ? [this.broadcast] : stored.event.to.users.map((u) => this.streams.get(u));
    for (const stream of streams) {
      const index = stream ? stream.entries.indexOf(stored) : -1;
      if (stream && index >= 0) this.drop(stream, index);
    }
  }

  /** Entries dropped by a stream's own cap linger in the FIFO; rebuild it once they dominate. */
  private compactFifo(): void {
    if (this.fifo.length - this.fifoHead <= 2 * this.liveCount + 1024) return;
    this.fifo = this.fifo.slice(this.fifoHead).filter((s) => s.refs > 0);
    this.fifoHead = 0;
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
      if (stream.entries.length === 0 && markerStale) this.streams.delete(userId);
    }
    this.compactFifo();
  }
}

function withoutMinted({ minted: _minted, ...event }: HeraldEvent): HeraldEvent {
  return event;
}

function newStream(): Stream {
  return { entries: [], trimmedUpTo: '', trimmedSeq: 0 };
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
