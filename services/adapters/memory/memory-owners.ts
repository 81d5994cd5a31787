import type { ClaimPolicy, ClaimResult, ConnectionRecord, Owners } from '../../ports/owners';
import { systemClock, type Clock } from '../../ports/clock';

export class MemoryOwners implements Owners {
  private readonly byUser = new Map<string, ConnectionRecord[]>();
  /** Heartbeat expiry per node. */
  private readonly nodes = new Map<string, number>();

  constructor(private readonly clock: Clock = systemClock) {}

  claim(record: ConnectionRecord, policy: ClaimPolicy): Promise<ClaimResult> {
    // A repeated claim of the same connection (a retried write) is not another tab.
    const live = this.live(record.userId).filter((r) => r.connectionId !== record.connectionId);
    if (policy.mode === 'single') {
      this.byUser.set(record.userId, [record]);
      return Promise.resolve({ ok: true, displaced: live });
    }
    if (live.length >= policy.maxTabs) {
      return Promise.resolve({ ok: false, reason: 'too_many_tabs', active: live.length });
    }
    this.byUser.set(record.userId, [...live, record]);
    return Promise.resolve({ ok: true, displaced: [] });
  }

  release(userId: string, connectionId: string): Promise<void> {
    const records = this.byUser.get(userId);
    if (records) {
      const rest = records.filter((r) => r.connectionId !== connectionId);
      if (rest.length === 0) this.byUser.delete(userId);
      else this.byUser.set(userId, rest);
    }
    return Promise.resolve();
  }

  heartbeat(nodeId: string, expiresAtMs: number): Promise<void> {
    this.nodes.set(nodeId, expiresAtMs);
    return Promise.resolve();
  }

  locate(userIds: readonly string[]): Promise<ReadonlyMap<string, readonly string[]>> {
    const found = new Map<string, readonly string[]>();
    for (const userId of userIds) {
      const live = this.live(userId);
      if (live.length === 1) found.set(userId, [live[0]!.nodeId]);
      else if (live.length > 1) found.set(userId, [...new Set(live.map((r) => r.nodeId))]);
    }
    return Promise.resolve(found);
  }

  close(): Promise<void> {
    this.byUser.clear();
    this.nodes.clear();
    return Promise.resolve();
  }

  /** The user's live records (own expiry and node heartbeat both ahead); the others are dropped on the way. */
  private live(userId: string): ConnectionRecord[] {
    const records = this.byUser.get(userId);
    if (!records) return [];
    const now = this.clock();
    const isLive = (r: ConnectionRecord): boolean => r.expiresAtMs > now && (this.nodes.get(r.nodeId) ?? 0) > now;
    if (records.every(isLive)) return records;
    const live = records.filter(isLive);
    if (live.length === 0) this.byUser.delete(userId);
    else this.byUser.set(userId, live);
    return live;
  }
}
