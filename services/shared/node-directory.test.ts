import { describe, expect, it } from 'vitest';
import { NodeDirectory, nodesByUser, type NodeRecord, type NodeTable, type OwnedRecord } from './node-directory';

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

describe('NodeDirectory.live and nodesByUser', () => {
  const owned = (userId: string, nodeId: string, expiresAtMs: number): OwnedRecord => ({ userId, nodeId, connectedAtMs: START_MS - 1_000, expiresAtMs });

  it('keeps records that are unexpired and on a node whose heartbeat has not lapsed', async () => {
    const { nodes, now } = directory({ up: START_MS + 15_000, lapsed: START_MS - 1 });
    const kept = owned('alice', 'up', now() + 60_000);
    const live = await nodes.live([kept, owned('bob', 'up', now()), owned('carol', 'lapsed', now() + 60_000), owned('dave', 'unknown', now() + 60_000)]);
    expect(live).toEqual([kept]);
  });

  it('reads nothing for records that have all expired', async () => {
    const { nodes, reads, now } = directory({ up: START_MS + 15_000 });
    expect(await nodes.live([owned('alice', 'up', now() - 1)])).toEqual([]);
    expect(reads()).toBe(0);
  });

  it('groups the distinct nodes of each user', () => {
    expect(nodesByUser([owned('alice', 'a', 1), owned('alice', 'b', 1), owned('alice', 'a', 1), owned('bob', 'a', 1)])).toEqual(
      new Map([
        ['alice', ['a', 'b']],
        ['bob', ['a']],
      ]),
    );
  });
});
