import type { TabPolicy } from '../protocol/sse-frame';

/** The stored record of one open stream, kept apart from the live connection (as Mercure does). */
export interface ConnectionRecord {
  readonly userId: string;
  readonly connectionId: string;
  readonly nodeId: string;
  readonly connectedAtMs: number;
  /** The record counts as gone after this instant, whether or not storage has deleted it yet. */
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
 * - Expired records are invisible to every read and never displaced (storage
 *   may delete them late: DynamoDB TTL takes up to two days).
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
  /** Extends the given records' lifetime (the node's heartbeat); unknown or displaced records are skipped. */
  refresh(records: readonly ConnectionRecord[], expiresAtMs: number): Promise<void>;
  locate(userIds: readonly string[]): Promise<ReadonlyMap<string, readonly string[]>>;
  close(): Promise<void>;
}
