import type { Clock } from '../ports/clock';

/** Heartbeat expiry (ms) per node id. */
export type NodeTable = ReadonlyMap<string, number>;

/** A record that names a node: who holds it, and since when (the node's clock). */
export interface NodeRecord {
  readonly nodeId: string;
  readonly connectedAtMs: number;
}

/** An owner record as `live` and `nodesByUser` read it. */
export interface OwnedRecord extends NodeRecord {
  readonly userId: string;
  readonly expiresAtMs: number;
}

/** The distinct nodes holding each user, from live records: what `Owners.locate` answers. */
export function nodesByUser(records: readonly OwnedRecord[]): Map<string, string[]> {
  const found = new Map<string, string[]>();
  for (const r of records) {
    const nodes = found.get(r.userId) ?? [];
    if (!nodes.includes(r.nodeId)) nodes.push(r.nodeId);
    found.set(r.userId, nodes);
  }
  return found;
}

/** Dead nodes remembered at most; past it the oldest is forgotten, which costs one table read if its records turn up again. */
const MAX_GONE = 10_000;
/**
 * How far a node's clock (a record's `connectedAtMs`) may be ahead of this
 * one's. A crashed node's item is removed at least 75 s after its last
 * heartbeat, so its records are older than that when it is found gone.
 */
const CLOCK_SKEW_MS = 10_000;

/**
 * The node heartbeats, read in one request by `read` (the DynamoDB node
 * partition, the Redis heartbeat hash) and cached for `cacheMs` of the
 * injected clock, so that a busy publisher does not read that one partition or
 * shard on every claim and locate. Fetches are numbered so a caller can ask
 * for a table read after a point it marked: a record naming a node the cached
 * table does not know may be from a node that started since.
 *
 * A node can also be missing because its entry was removed: the janitor
 * deletes a crashed node's item minutes after it died, and Redis forgets a node
 * a day after. Its users' records outlive it until their tokens expire, and
 * each would cost a fresh table read on every claim and locate that meets it.
 * So a node found missing from a table read after a record naming it was read
 * is remembered as gone (a node heartbeats before it claims: its entry existed,
 * and was removed), and so are its records from before then. A record made
 * after it was found gone is not taken on trust: a node id can come back (a
 * task cut off for minutes, a process restarted under a fixed id), and a claim
 * it makes must be seen, or the claim's user would be taken for offline.
 * It is forgotten as soon as a table lists it again.
 */
export class NodeDirectory {
  /** Fetches issued so far; a fetch numbered above a mark was issued after it. */
  private issued = 0;
  private latest: { readonly number: number; readonly atMs: number; readonly table: Promise<NodeTable> } | undefined;
  /** Nodes whose entry was removed, oldest first, with when they were found missing (this clock). */
  private readonly gone = new Map<string, number>();

  constructor(
    private readonly read: () => Promise<NodeTable>,
    private readonly clock: Clock,
    private readonly cacheMs: number,
  ) {}

  mark(): number {
    return this.issued;
  }

  cached(): Promise<NodeTable> {
    const latest = this.latest;
    if (latest && this.clock() - latest.atMs < this.cacheMs) return latest.table;
    return this.fetch();
  }

  /** A table whose fetch was issued after `mark`; concurrent callers share one. */
  fetchedAfter(mark: number): Promise<NodeTable> {
    const latest = this.latest;
    if (latest && latest.number > mark) return latest.table;
    return this.fetch();
  }

  /**
   * The heartbeat expiry of each node of `records`, which were read before
   * `mark` was taken: from the cache, or from a table fetched after `mark`
   * when the cache lists one of their nodes neither as such nor as gone since
   * before the record. A node without an entry gets 0: its records are not live.
   */
  async expiriesOf(records: readonly NodeRecord[], mark: number): Promise<NodeTable> {
    let table = await this.cached();
    const known = (r: NodeRecord): boolean => table.has(r.nodeId) || r.connectedAtMs < (this.gone.get(r.nodeId) ?? -Infinity) - CLOCK_SKEW_MS;
    if (!records.every(known)) {
      table = await this.fetchedAfter(mark);
      for (const { nodeId } of records) if (!table.has(nodeId)) this.remember(nodeId);
    }
    return new Map(records.map((r) => [r.nodeId, table.get(r.nodeId) ?? 0]));
  }

  /**
   * The live ones among records just read: unexpired, on a node whose
   * heartbeat has not lapsed. A record whose node is missing from the cached
   * table is re-checked against a table fetched after the records were read: a
   * node heartbeats before it claims, so that fetch has the heartbeat of every
   * node whose claim was seen. Without this, a publisher whose cache predates a
   * new node's first heartbeat would find its users offline for up to
   * `cacheMs`, losing events, since the replay may already have run. A dead
   * node costs no re-read: one the table lists as dead is in the cache, and one
   * whose entry was removed is remembered as gone (`expiriesOf`), so its
   * leftover records, live until their tokens expire, do not make every call
   * read the table again. Only a lapsed node that heartbeats again is seen
   * late, within `cacheMs`.
   */
  async live<R extends OwnedRecord>(records: readonly R[]): Promise<R[]> {
    const mark = this.mark();
    const now = this.clock();
    const unexpired = records.filter((r) => r.expiresAtMs > now);
    if (unexpired.length === 0) return [];
    const expiries = await this.expiriesOf(unexpired, mark);
    return unexpired.filter((r) => (expiries.get(r.nodeId) ?? 0) > now);
  }

  invalidate(): void {
    this.latest = undefined;
  }

  /** Drops the cache and what it knows of dead nodes. */
  clear(): void {
    this.latest = undefined;
    this.gone.clear();
  }

  private remember(nodeId: string): void {
    if (this.gone.has(nodeId)) return;
    if (this.gone.size >= MAX_GONE) this.gone.delete(this.gone.keys().next().value as string);
    this.gone.set(nodeId, this.clock());
  }

  private fetch(): Promise<NodeTable> {
    const number = ++this.issued;
    const table = this.read();
    this.latest = { number, atMs: this.clock(), table };
    // A node that heartbeats again after its entry was removed (a long network cut) is listed again.
    void table.then(
      (read) => {
        for (const id of read.keys()) this.gone.delete(id);
      },
      // A failed read is not cached: the next caller tries again.
      () => {
        if (this.latest?.number === number) this.latest = undefined;
      },
    );
    return table;
  }
}
