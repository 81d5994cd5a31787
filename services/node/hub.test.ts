import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Connection, type StreamSink } from './connection';
import { Hub } from './hub';

const sink: StreamSink = {
  write: () => true,
  end: () => undefined,
  destroy: () => undefined,
  cork: () => undefined,
  uncork: () => undefined,
  once: () => undefined,
  removeListener: () => undefined,
  writableNeedDrain: false,
  writableLength: 0,
};
const limits = { maxQueuedBytes: 1024, hardQueuedBytes: 8 * 1024, stallTimeoutMs: 10_000 };

function conn(id: string, userId: string, address = '127.0.0.1'): Connection {
  return new Connection(id, userId, address, 0, 0, sink, limits, () => undefined);
}

function ids(list: Iterable<Connection> | undefined): string[] {
  return list === undefined ? [] : [...list].map((c) => c.id);
}

describe('Hub', () => {
  it('is empty at first', () => {
    const hub = new Hub();
    expect([hub.size, hub.users, hub.of('alice'), hub.snapshot()]).toEqual([0, 0, undefined, []]);
  });

  it('counts connections and distinct users as they are added', () => {
    const hub = new Hub();
    hub.add(conn('a1', 'alice'));
    hub.add(conn('a2', 'alice'));
    hub.add(conn('b1', 'bob'));
    expect([hub.size, hub.users]).toEqual([3, 2]);
  });

  it('lists a user’s connections in the order they were added', () => {
    const hub = new Hub();
    for (const id of ['a1', 'a2', 'a3']) hub.add(conn(id, 'alice'));
    hub.add(conn('b1', 'bob'));
    expect(ids(hub.of('alice'))).toEqual(['a1', 'a2', 'a3']);
    expect(ids(hub.of('bob'))).toEqual(['b1']);
    expect(hub.of('carol')).toBeUndefined();
  });

  it('finds a connection by user and id, and only under its own user', () => {
    const hub = new Hub();
    const a2 = conn('a2', 'alice');
    hub.add(conn('a1', 'alice'));
    hub.add(a2);
    hub.add(conn('b1', 'bob'));
    expect(hub.find('alice', 'a2')).toBe(a2);
    expect(hub.find('bob', 'a2')).toBeUndefined();
    expect(hub.find('carol', 'a2')).toBeUndefined();
    expect(hub.find('alice', 'zz')).toBeUndefined();
  });

  it('removes one connection, keeping the others in order', () => {
    const hub = new Hub();
    const a2 = conn('a2', 'alice');
    hub.add(conn('a1', 'alice'));
    hub.add(a2);
    hub.add(conn('a3', 'alice'));
    hub.remove(a2);
    expect(ids(hub.of('alice'))).toEqual(['a1', 'a3']);
    expect([hub.size, hub.users]).toEqual([2, 1]);
  });

  it('forgets a user whose last connection is removed', () => {
    const hub = new Hub();
    const a1 = conn('a1', 'alice');
    hub.add(a1);
    hub.add(conn('b1', 'bob'));
    hub.remove(a1);
    expect(hub.of('alice')).toBeUndefined();
    expect([hub.size, hub.users]).toEqual([1, 1]);
  });

  it('ignores removing a connection it does not hold, or one already removed', () => {
    const hub = new Hub();
    const a1 = conn('a1', 'alice');
    hub.add(a1);
    hub.add(conn('a2', 'alice'));
    hub.remove(conn('a1', 'alice')); // same ids, another object
    hub.remove(conn('x', 'carol'));
    hub.remove(a1);
    hub.remove(a1);
    expect(ids(hub.of('alice'))).toEqual(['a2']);
    expect([hub.size, hub.users]).toEqual([1, 1]);
  });

  it('lets a loop remove every connection of a user while iterating the list backwards', () => {
    const hub = new Hub();
    for (const id of ['a1', 'a2', 'a3', 'a4']) hub.add(conn(id, 'alice'));
    hub.add(conn('b1', 'bob'));
    const list = hub.of('alice')!;
    const visited: string[] = [];
    for (let i = list.length - 1; i >= 0; i--) {
      const c = list[i]!;
      visited.push(c.id);
      hub.remove(c);
    }
    expect(visited).toEqual(['a4', 'a3', 'a2', 'a1']);
    expect(hub.of('alice')).toBeUndefined();
    expect([hub.size, hub.users]).toEqual([1, 1]);
  });

  it('lets a loop remove some connections while iterating backwards, visiting each once', () => {
    const hub = new Hub();
    for (const id of ['a1', 'a2', 'a3', 'a4', 'a5']) hub.add(conn(id, 'alice'));
    const list = hub.of('alice')!;
    const visited: string[] = [];
    for (let i = list.length - 1; i >= 0; i--) {
      const c = list[i]!;
      visited.push(c.id);
      if (c.id !== 'a3') hub.remove(c);
    }
    expect(visited).toEqual(['a5', 'a4', 'a3', 'a2', 'a1']);
    expect(ids(hub.of('alice'))).toEqual(['a3']);
    expect(hub.size).toBe(1);
  });

  it('yields every connection from all(), and snapshot() is a copy safe to close from', () => {
    const hub = new Hub();
    const all = [conn('a1', 'alice'), conn('b1', 'bob'), conn('a2', 'alice')];
    for (const c of all) hub.add(c);
    expect(ids(hub.all())).toEqual(['a1', 'a2', 'b1']);
    const snapshot = hub.snapshot();
    for (const c of snapshot) hub.remove(c);
    expect(ids(snapshot)).toEqual(['a1', 'a2', 'b1']);
    expect([hub.size, hub.users, ids(hub.all())]).toEqual([0, 0, []]);
  });

  it('starts a new list for a user who comes back', () => {
    const hub = new Hub();
    const a1 = conn('a1', 'alice');
    hub.add(a1);
    const oldList = hub.of('alice');
    hub.remove(a1);
    hub.add(conn('a2', 'alice'));
    expect(ids(hub.of('alice'))).toEqual(['a2']);
    expect(hub.of('alice')).not.toBe(oldList);
  });

  it('counts open streams per client address, and forgets an address whose last stream is removed', () => {
    const hub = new Hub();
    const a1 = conn('a1', 'alice', '10.0.0.1');
    const b1 = conn('b1', 'bob', '10.0.0.1');
    hub.add(a1);
    hub.add(b1);
    hub.add(conn('c1', 'carol', '10.0.0.2'));
    expect([hub.streamsFrom('10.0.0.1'), hub.streamsFrom('10.0.0.2'), hub.streamsFrom('10.0.0.3')]).toEqual([2, 1, 0]);
    hub.remove(a1);
    hub.remove(a1);
    hub.remove(conn('x', 'bob', '10.0.0.1')); // not held: the count stays
    expect(hub.streamsFrom('10.0.0.1')).toBe(1);
    hub.remove(b1);
    expect(hub.streamsFrom('10.0.0.1')).toBe(0);
    expect((hub as unknown as { byAddress: Map<string, number> }).byAddress.has('10.0.0.1')).toBe(false);
  });

  it('visits every stream exactly once per round of slots, spread over the slots, and lets a visit close its stream', () => {
    const hub = new Hub(4);
    // Ids as the node makes them (herald-node.ts): 9 random bytes in base64url.
    const all = Array.from({ length: 400 }, (_, i) => conn(randomBytes(9).toString('base64url'), `u${i % 50}`));
    for (const c of all) hub.add(c);
    const seen = new Map<string, number>();
    const perSlot: number[] = [];
    for (let round = 0; round < 4; round++) {
      let inSlot = 0;
      hub.visitNextSlot((c) => {
        inSlot++;
        seen.set(c.id, (seen.get(c.id) ?? 0) + 1);
        if (c.userId === 'u0') hub.remove(c); // closing while visited
      });
      perSlot.push(inSlot);
    }
    expect(seen.size).toBe(400);
    expect([...seen.values()].every((n) => n === 1)).toBe(true);
    // Random ids land evenly: no slot holds twice its share (100 ± ~9 each).
    expect(Math.max(...perSlot)).toBeLessThan(200);
    expect(hub.size).toBe(392);
    let next = 0;
    for (let round = 0; round < 4; round++) hub.visitNextSlot(() => next++);
    expect(next).toBe(392);
  });

  it('refuses a slot count that is not a whole number ≥ 1', () => {
    expect(() => new Hub(0)).toThrow(RangeError);
    expect(() => new Hub(1.5)).toThrow(RangeError);
  });
});
