import type { Connection } from './connection';

/**
 * This node's open streams, by user, and in `slotCount` slots that the node's
 * ticker visits in turn (`visitNextSlot`), so that each tick checks a share of
 * the streams rather than all of them. Only bookkeeping: who to write to. What
 * to write, and when to close, is decided by the node.
 */
export class Hub {
  private readonly byUser = new Map<string, Connection[]>();
  private readonly byAddress = new Map<string, number>();
  private readonly slots: Set<Connection>[];
  private cursor = 0;
  private count = 0;

  constructor(slotCount = 1) {
    if (!Number.isInteger(slotCount) || slotCount < 1) throw new RangeError(`slotCount must be a whole number ≥ 1, got ${slotCount}`);
    this.slots = Array.from({ length: slotCount }, () => new Set<Connection>());
  }

  get size(): number {
    return this.count;
  }

  get users(): number {
    return this.byUser.size;
  }

  add(connection: Connection): void {
    const list = this.byUser.get(connection.userId);
    if (list) list.push(connection);
    else this.byUser.set(connection.userId, [connection]);
    this.byAddress.set(connection.address, (this.byAddress.get(connection.address) ?? 0) + 1);
    this.slotOf(connection).add(connection);
    this.count++;
  }

  remove(connection: Connection): void {
    const list = this.byUser.get(connection.userId);
    const index = list ? list.indexOf(connection) : -1;
    if (!list || index < 0) return;
    if (list.length === 1) this.byUser.delete(connection.userId);
    else list.splice(index, 1);
    const fromAddress = (this.byAddress.get(connection.address) ?? 1) - 1;
    if (fromAddress === 0) this.byAddress.delete(connection.address);
    else this.byAddress.set(connection.address, fromAddress);
    this.slotOf(connection).delete(connection);
    this.count--;
  }

  /**
   * Visits the streams of the next slot (round robin): each stream once every
   * `slotCount` calls. `visit` may close the stream it is given (a Set
   * tolerates deleting the entry being visited).
   */
  visitNextSlot(visit: (connection: Connection) => void): void {
    const slot = this.slots[this.cursor]!;
    this.cursor = (this.cursor + 1) % this.slots.length;
    for (const connection of slot) visit(connection);
  }

  /** Open streams from one client address. */
  streamsFrom(address: string): number {
    return this.byAddress.get(address) ?? 0;
  }

  of(userId: string): readonly Connection[] | undefined {
    return this.byUser.get(userId);
  }

  find(userId: string, connectionId: string): Connection | undefined {
    return this.byUser.get(userId)?.find((c) => c.id === connectionId);
  }

  /** Every stream. Iterate over a snapshot when the loop may close streams. */
  *all(): IterableIterator<Connection> {
    for (const list of this.byUser.values()) yield* list;
  }

  /**
   * Visits every stream without copying them (a broadcast or a tick on a node
   * with tens of thousands of streams). `visit` may close the stream it is
   * given: lists are walked backwards, and a Map tolerates deleting the entry
   * being visited.
   */
  forEach(visit: (connection: Connection) => void): void {
    for (const list of this.byUser.values()) {
      for (let i = list.length - 1; i >= 0; i--) {
        const connection = list[i];
        if (connection) visit(connection);
      }
    }
  }

  snapshot(): Connection[] {
    return [...this.all()];
  }

  /** Ids are random, so two of their characters spread streams evenly over the slots. */
  private slotOf(connection: Connection): Set<Connection> {
    const { id } = connection;
    return this.slots[(id.charCodeAt(0) * 64 + id.charCodeAt(id.length - 1)) % this.slots.length]!;
  }
}
