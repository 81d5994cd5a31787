import type { TabPolicy } from '../protocol/stream-terms';

/** The stored record of one open stream, kept apart from the live connection (as Mercure does). */
export interface ConnectionRecord {
  readonly userId: string;
  readonly connectionId: string;
  readonly nodeId: string;
  readonly connectedAtMs: number;
  /**
   * The record counts as gone after this instant (the stream's token expiry),
   * whether or not storage has deleted it yet.
   */
  readonly expiresAtMs: number;
}

export type ClaimPolicy = { readonly mode: Extract<TabPolicy, 'single'> } | { readonly mode: Extract<TabPolicy, 'multi'>; readonly maxTabs: number };

export type ClaimResult =
  /** Stored. Under `single`, `displaced` are the user's other streams, on any node, which must now be closed. */
  | { readonly ok: true; readonly displaced: readonly ConnectionRecord[] }
  /** Refused under `multi`: the user already holds `maxTabs` live streams. */
  | { readonly ok: false; readonly reason: 'too_many_tabs'; readonly active: number };

/**
 * Who is connected where.
 *
 * Contract (every adapter passes `test/contract/owners.contract.ts`):
 * - `claim` is atomic per user: of two concurrent single-tab claims, exactly one
 *   stays and it lists the other as displaced (or the other lists it).
 * - A record is live while its own `expiresAtMs` and its node's heartbeat are
 *   both in the future. Records that are not live are invisible to every read
 *   and never displaced (storage may delete them late: DynamoDB TTL takes up to
 *   two days). A node that crashed stops heartbeating, and its records lapse
 *   with it: no per-connection refresh is needed, which keeps a node with tens
 *   of thousands of streams at one write per heartbeat.
 * - `release` removes only the named connection; releasing twice, or after a
 *   newer tab displaced it, is a no-op.
 * - `locate` returns only users with at least one live record, with the nodes
 *   holding them, which is both routing and presence.
 * - Faults reject with a transient `unavailable` HeraldError; outcomes such as a
 *   refused claim are values.
 */
export interface Owners {
  claim(record: ConnectionRecord, policy: ClaimPolicy): Promise<ClaimResult>;
  release(userId: string, connectionId: string): Promise<void>;
  /**
   * Declares `nodeId` alive until `expiresAtMs`. A node heartbeats before it
   * claims anything and well within each lifetime; an `expiresAtMs` in the past
   * declares it gone (a clean shutdown).
   */
  heartbeat(nodeId: string, expiresAtMs: number): Promise<void>;
  locate(userIds: readonly string[]): Promise<ReadonlyMap<string, readonly string[]>>;
  close(): Promise<void>;
}
