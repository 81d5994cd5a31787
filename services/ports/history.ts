import type { HeraldEvent } from '../protocol/envelope';
import type { GapReason } from '../protocol/stream-terms';

export interface AppendResult {
  /** False for live-only events (`ttlSeconds` 0), which are never stored. */
  readonly stored: boolean;
  /** An event with this id was already stored: it is not stored twice. */
  readonly duplicate: boolean;
}

export interface ReplayResult {
  /** Events after the position, in id order: the user's own and the broadcasts. */
  readonly events: readonly HeraldEvent[];
  /** Set when the replay may be missing events, which the stream announces as `gap`. */
  readonly gap: Exclude<GapReason, 'unknown_position'> | null;
}

/**
 * Recent events per user (and for broadcasts), for `Last-Event-ID` replay.
 *
 * Contract (every adapter passes `test/contract/history.contract.ts`):
 * - `append` stores the event for each user of `event.to` (or the broadcast
 *   stream) until its ttl runs out or the stream's size cap evicts it.
 * - First write wins: an append of an id already stored (and unexpired) is a
 *   `duplicate` and changes nothing stored, whatever name, data, ttl or
 *   recipients it carries. With the same content it may complete the writes
 *   of an earlier append that failed part-way.
 * - `since(user, id, limit)` returns, at most `limit`, the stored events after
 *   the position: when `id` is a stored event, those appended after it, in
 *   append order (so an event whose id sorts lower — a retried id, another
 *   publisher's clock — but that arrived later is not missed); otherwise those
 *   with greater ids, ascending. Expired events are never returned.
 * - `gap` is `history_trimmed` when an event after `id` was evicted or expired
 *   (the client missed it for good), `replay_limit` when more than `limit`
 *   remain; otherwise null. An id that was never stored (a live-only event) is
 *   a valid position.
 * - An event marked `minted` has an id Herald assigned moments ago, which no
 *   earlier publish can have used: an adapter may store it without checking
 *   for a duplicate (one write instead of two). Appending such an event twice
 *   may then store it twice; `since` still returns each id once.
 * - Faults reject with a transient `unavailable` HeraldError.
 */
export interface History {
  append(event: HeraldEvent): Promise<AppendResult>;
  /**
   * `append` for each event, results in order, in as few requests as the store
   * allows. Resolves once every event is stored (the delivery rule needs all
   * of a batch in history before its owners are looked up). A rejection means
   * any of them may or may not be stored; appending the same events again is
   * safe. Events of one user keep the order given.
   */
  appendBatch(events: readonly HeraldEvent[]): Promise<AppendResult[]>;
  since(userId: string, lastEventId: string, limit: number): Promise<ReplayResult>;
  close(): Promise<void>;
}
