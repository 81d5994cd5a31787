import type { Clock } from '../ports/clock';

/** Heartbeat expiry (ms) per node id. */
export type NodeTable = ReadonlyMap<string, number>;

/**
 * The node heartbeats, read in one request by `read` (the DynamoDB node
 * partition, the Redis heartbeat hash) and cached for `cacheMs` of the
 * injected clock, so that a busy publisher does not read that one partition or
 * shard on every claim and locate. Fetches are numbered so a caller can ask
 * for a table read after a point it marked: a record naming a node the cached
 * table does not know may be from a node that started since.
 */
export class NodeDirectory {
  /** Fetches issued so far; a fetch numbered above a mark was issued after it. */
  private issued = 0;
  private latest: { readonly number: number; readonly atMs: number; readonly table: Promise<NodeTable> } | undefined;

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

  invalidate(): void {
    this.latest = undefined;
  }

  private fetch(): Promise<NodeTable> {
    const number = ++this.issued;
    const table = this.read();
    this.latest = { number, atMs: this.clock(), table };
    // A failed read is not cached: the next caller tries again.
    void table.catch(() => {
      if (this.latest?.number === number) this.latest = undefined;
    });
    return table;
  }
}
