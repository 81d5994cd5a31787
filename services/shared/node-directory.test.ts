import { describe, expect, it } from 'vitest';
import { NodeDirectory, type NodeRecord, type NodeTable } from './node-directory';

const START_MS = 1_000_000_000;

/** A directory over a table the test edits, counting reads, with a clock that only moves when told. */
function directory(initial: Record<string, number> = {}): {
  nodes: NodeDirectory;
  table: Map<string, number>;
  reads: () => number;
  now: () => number;
  advance: (ms: number) => void;
} {
  const table = new Map(Object.entries(initial));
  let reads = 0;
  let now = START_MS;
  const nodes = new NodeDirectory(
    () => {
      reads++;
      return Promise.resolve(new Map(table) as NodeTable);
    },
    () => now,
    1_000,
  );
  return { nodes, table, reads: () => reads, now: () => now, advance: (ms) => (now += ms) };
}

/** Records of these nodes, made five minutes before the test began (a crashed node's are at least that old when it is swept). */
const records = (...nodeIds: string[]): NodeRecord[] => nodeIds.map((nodeId) => ({ nodeId, connectedAtMs: START_MS - 300_000 }));

describe('NodeDirectory.expiriesOf', () => {
  it('answers from the cache when it knows every node', async () => {
    const { nodes, reads } = directory({ a: 5, b: 6 });
    await nodes.cached();
    expect(await nodes.expiriesOf(records('a', 'b'), nodes.mark())).toEqual(new Map([['a', 5], ['b', 6]]));
    expect(reads()).toBe(1);
  });

  it('reads the table again for a node the cache does not know: it may have started since', async () => {
    const { nodes, table, reads } = directory({ a: 5 });
    await nodes.cached();
    table.set('new', 9);
    expect(await nodes.expiriesOf(records('new'), nodes.mark())).toEqual(new Map([['new', 9]]));
    expect(reads()).toBe(2);
  });

  it('reads the table once, not on every call, for a node whose entry was removed', async () => {
    const { nodes, table, reads, advance } = directory({ a: 5, dead: 1 });
    await nodes.cached();
    table.delete('dead'); // the janitor swept it
    advance(1_000);

    for (let i = 0; i < 10; i++) expect(await nodes.expiriesOf(records('a', 'dead'), nodes.mark())).toEqual(new Map([['a', 5], ['dead', 0]]));

    expect(reads()).toBe(2);
  });

  it('reads the table again for a record made after its node was found gone: the node id came back', async () => {
    const { nodes, table, reads, now, advance } = directory();
    expect(await nodes.expiriesOf(records('back'), nodes.mark())).toEqual(new Map([['back', 0]]));
    advance(30_000);
    // The node heartbeats again and claims; the cache (just refreshed by someone) predates its heartbeat.
    await nodes.cached();
    table.set('back', now() + 15_000);
    const before = reads();

    const claim: NodeRecord = { nodeId: 'back', connectedAtMs: now() };
    expect(await nodes.expiriesOf([claim], nodes.mark())).toEqual(new Map([['back', now() + 15_000]]));
    expect(reads() - before).toBe(1);
  });

  it('lists a removed node again once a table lists it', async () => {
    const { nodes, table, reads, advance } = directory();
    expect(await nodes.expiriesOf(records('back'), nodes.mark())).toEqual(new Map([['back', 0]]));
    table.set('back', 7);
    advance(1_000); // the cache runs out: the next call reads the table, which lists it
    expect(await nodes.expiriesOf(records('back'), nodes.mark())).toEqual(new Map([['back', 7]]));

    table.delete('back');
    advance(1_000);
    const before = reads();
    await nodes.cached();
    // No longer remembered as gone: missing from the cache means a fresh read, in case it just started again.
    expect(await nodes.expiriesOf(records('back'), nodes.mark())).toEqual(new Map([['back', 0]]));
    expect(reads() - before).toBe(2);
  });

  it('forgets what it knows of removed nodes on clear', async () => {
    const { nodes, reads } = directory();
    await nodes.expiriesOf(records('dead'), nodes.mark());
    const before = reads();
    nodes.clear();
    await nodes.cached();
    await nodes.expiriesOf(records('dead'), nodes.mark());
    // One read fills the cache after clear, and one more is needed to find the node missing again.
    expect(reads() - before).toBe(2);
  });
});
