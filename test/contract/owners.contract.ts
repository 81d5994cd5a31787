/**
 * What every `Owners` adapter must do (services/ports/owners.ts). Run by
 * memory-adapters.test.ts and by the AWS suite against dynalite, unchanged.
 *
 * Node ids stand for the nodes holding the streams; one adapter instance plays
 * all of them, since the port's guarantees are about the shared storage.
 */
import { describe, expect } from 'vitest';
import type { ClaimPolicy, ClaimResult, ConnectionRecord, Owners } from '../../services/ports/owners';
import { connectionRecord, setUp, type Cleanup, type ContractContext, type ContractOptions, contractIt, type ManualClock } from './fixtures';

export interface OwnersFixture extends Cleanup {
  /** Reads `context.clock` for every expiry decision. */
  readonly owners: Owners;
}

/** One fresh, empty store per test. */
export type OwnersFactory = (context: ContractContext) => Promise<OwnersFixture>;

const SINGLE: ClaimPolicy = { mode: 'single' };
const A_YEAR_MS = 365 * 24 * 3600 * 1000;
const ALIVE_NODES = ['node-a', 'node-b', 'node-c', 'node-z', ...Array.from({ length: 10 }, (_, i) => `node-${i}`)];
const multi = (maxTabs: number): ClaimPolicy => ({ mode: 'multi', maxTabs });

const byConnection = (a: ConnectionRecord, b: ConnectionRecord): number => a.connectionId.localeCompare(b.connectionId);
const sorted = (records: readonly ConnectionRecord[]): ConnectionRecord[] => [...records].sort(byConnection);

function displacedBy(result: ClaimResult): readonly ConnectionRecord[] {
  if (!result.ok) throw new Error(`claim refused (${result.reason}, ${result.active} active), expected it stored`);
  return result.displaced;
}

export function describeOwnersContract(name: string, factory: OwnersFactory, options: ContractOptions = {}): void {
  describe(`Owners contract: ${name}`, () => {
    const it = contractIt(options);

    /**
     * A fresh store whose usual nodes heartbeat far into the future, so tests
     * about records see them live unless they say otherwise.
     */
    async function open(): Promise<{ owners: Owners; clock: ManualClock; record: (userId: string, nodeId: string, ttlMs?: number) => ConnectionRecord }> {
      const { context, fixture } = await setUp(factory, (f) => f.owners.close());
      const record = (userId: string, nodeId: string, ttlMs?: number): ConnectionRecord => connectionRecord(context.clock, userId, nodeId, ttlMs);
      await Promise.all(ALIVE_NODES.map((nodeId) => fixture.owners.heartbeat(nodeId, context.clock.now() + A_YEAR_MS)));
      return { owners: fixture.owners, clock: context.clock, record };
    }

    /** The nodes `locate` reports for one user, sorted; undefined when the user is offline. */
    async function nodesOf(owners: Owners, userId: string): Promise<string[] | undefined> {
      const found = await owners.locate([userId]);
      const nodes = found.get(userId);
      return nodes === undefined ? undefined : [...nodes].sort();
    }

    describe('single-tab claims', () => {
      it('stores a first claim and displaces nothing', async () => {
        const { owners, record } = await open();
        const first = record('alice', 'node-a');

        expect(await owners.claim(first, SINGLE)).toEqual({ ok: true, displaced: [] });
        expect(await nodesOf(owners, 'alice')).toEqual(['node-a']);
      });

      it("displaces the user's previous tab on another node and returns its record", async () => {
        const { owners, record } = await open();
        const first = record('alice', 'node-a');
        const second = record('alice', 'node-b');
        await owners.claim(first, SINGLE);

        expect(await owners.claim(second, SINGLE)).toEqual({ ok: true, displaced: [first] });
        expect(await nodesOf(owners, 'alice')).toEqual(['node-b']);
      });

      it('displaces every live record of the user, on any node, including one on its own node', async () => {
        const { owners, record } = await open();
        const held = [record('alice', 'node-a'), record('alice', 'node-b'), record('alice', 'node-c')];
        for (const r of held) displacedBy(await owners.claim(r, multi(5)));
        const newest = record('alice', 'node-a');

        expect(sorted(displacedBy(await owners.claim(newest, SINGLE)))).toEqual(sorted(held));
        expect(await nodesOf(owners, 'alice')).toEqual(['node-a']);
        // Only the newest stays: releasing it leaves the user offline.
        await owners.release('alice', newest.connectionId);
        expect(await nodesOf(owners, 'alice')).toBeUndefined();
      });

      it('returns only the tab it replaced, not ones displaced earlier', async () => {
        const { owners, record } = await open();
        const [first, second, third] = [record('alice', 'node-a'), record('alice', 'node-b'), record('alice', 'node-c')];
        await owners.claim(first, SINGLE);
        await owners.claim(second, SINGLE);

        expect(await owners.claim(third, SINGLE)).toEqual({ ok: true, displaced: [second] });
      });

      it("never displaces another user's tabs", async () => {
        const { owners, record } = await open();
        await owners.claim(record('alice', 'node-a'), SINGLE);

        expect(await owners.claim(record('bob', 'node-b'), SINGLE)).toEqual({ ok: true, displaced: [] });
        expect(await owners.locate(['alice', 'bob'])).toEqual(new Map([['alice', ['node-a']], ['bob', ['node-b']]]));
      });

      it('does not displace the connection itself when its claim is retried', async () => {
        const { owners, record } = await open();
        const older = record('alice', 'node-a');
        const tab = record('alice', 'node-b');
        await owners.claim(older, SINGLE);
        await owners.claim(tab, SINGLE);

        // An SDK retry after a timeout can apply a write twice: the second answer must not tell the node to close its own tab.
        expect(await owners.claim(tab, SINGLE)).toEqual({ ok: true, displaced: [] });
        expect(await nodesOf(owners, 'alice')).toEqual(['node-b']);
      });

      it('leaves exactly one record after concurrent claims, and every other claim displaced by one of them', async () => {
        const { owners, record } = await open();
        const claims = Array.from({ length: 6 }, (_, i) => record('alice', `node-${i}`));

        const results = await Promise.all(claims.map((r) => owners.claim(r, SINGLE)));

        const nodes = await nodesOf(owners, 'alice');
        expect(nodes).toHaveLength(1);
        const survivor = claims.find((r) => r.nodeId === nodes![0])!;
        const displaced = results.flatMap(displacedBy).map((r) => r.connectionId);
        expect(displaced).not.toContain(survivor.connectionId);
        expect(new Set(displaced)).toEqual(new Set(claims.filter((r) => r !== survivor).map((r) => r.connectionId)));
        await owners.release('alice', survivor.connectionId);
        expect(await nodesOf(owners, 'alice')).toBeUndefined();
      });
    });

    describe('multi-tab claims', () => {
      it("stores up to maxTabs tabs, then refuses with too_many_tabs and the active count", async () => {
        const { owners, record } = await open();
        const tabs = [record('alice', 'node-a'), record('alice', 'node-a'), record('alice', 'node-b')];
        for (const tab of tabs) expect(await owners.claim(tab, multi(3))).toEqual({ ok: true, displaced: [] });

        const refused = record('alice', 'node-c');
        expect(await owners.claim(refused, multi(3))).toEqual({ ok: false, reason: 'too_many_tabs', active: 3 });
        expect(await nodesOf(owners, 'alice')).toEqual(['node-a', 'node-b']);
      });

      it('accepts a new tab once one of the full set is released', async () => {
        const { owners, record } = await open();
        const tabs = [record('alice', 'node-a'), record('alice', 'node-b')];
        for (const tab of tabs) await owners.claim(tab, multi(2));
        await owners.release('alice', tabs[0]!.connectionId);

        expect(await owners.claim(record('alice', 'node-c'), multi(2))).toEqual({ ok: true, displaced: [] });
        expect(await nodesOf(owners, 'alice')).toEqual(['node-b', 'node-c']);
      });

      it('counts a retried claim of the same connection once against maxTabs', async () => {
        const { owners, record } = await open();
        const tab = record('alice', 'node-a');
        expect(await owners.claim(tab, multi(2))).toEqual({ ok: true, displaced: [] });
        expect(await owners.claim(tab, multi(2))).toEqual({ ok: true, displaced: [] });

        expect(await owners.claim(record('alice', 'node-b'), multi(2))).toEqual({ ok: true, displaced: [] });
        // One release of the connection removes it, however many times it was claimed.
        await owners.release('alice', tab.connectionId);
        expect(await nodesOf(owners, 'alice')).toEqual(['node-b']);
      });

      it('never stores more than maxTabs under concurrent claims', async () => {
        const { owners, record } = await open();
        const claims = Array.from({ length: 7 }, (_, i) => record('alice', `node-${i}`));

        const results = await Promise.all(claims.map((r) => owners.claim(r, multi(3))));

        expect(results.filter((r) => r.ok)).toHaveLength(3);
        for (const r of results.filter((r) => !r.ok)) expect(r).toEqual({ ok: false, reason: 'too_many_tabs', active: 3 });
        const stored = claims.filter((_, i) => results[i]!.ok).map((r) => r.nodeId).sort();
        expect(await nodesOf(owners, 'alice')).toEqual(stored);
      });

      it('counts only live tabs against maxTabs', async () => {
        const { owners, clock, record } = await open();
        await owners.claim(record('alice', 'node-a', 1_000), multi(2));
        await owners.claim(record('alice', 'node-b', 60_000), multi(2));
        clock.advance(1_001);

        expect(await owners.claim(record('alice', 'node-c'), multi(2))).toEqual({ ok: true, displaced: [] });
        expect(await nodesOf(owners, 'alice')).toEqual(['node-b', 'node-c']);
      });
    });

    describe('release', () => {
      it('removes only the named connection', async () => {
        const { owners, record } = await open();
        const [a, b] = [record('alice', 'node-a'), record('alice', 'node-b')];
        const bob = record('bob', 'node-a');
        await owners.claim(a, multi(5));
        await owners.claim(b, multi(5));
        await owners.claim(bob, SINGLE);

        await owners.release('alice', a.connectionId);

        expect(await owners.locate(['alice', 'bob'])).toEqual(new Map([['alice', ['node-b']], ['bob', ['node-a']]]));
      });

      it('names the user: the same connection id under another user is not released', async () => {
        const { owners, record } = await open();
        const alice = record('alice', 'node-a');
        await owners.claim(alice, SINGLE);

        await owners.release('bob', alice.connectionId);

        expect(await nodesOf(owners, 'alice')).toEqual(['node-a']);
      });

      it('is a no-op the second time, and for a connection never claimed', async () => {
        const { owners, record } = await open();
        const [a, b] = [record('alice', 'node-a'), record('alice', 'node-b')];
        await owners.claim(a, multi(5));
        await owners.claim(b, multi(5));

        await owners.release('alice', a.connectionId);
        await expect(owners.release('alice', a.connectionId)).resolves.toBeUndefined();
        await expect(owners.release('alice', 'conn-never')).resolves.toBeUndefined();
        await expect(owners.release('nobody', 'conn-never')).resolves.toBeUndefined();

        expect(await nodesOf(owners, 'alice')).toEqual(['node-b']);
      });

      it('is a no-op for a tab a newer one displaced: the newer tab stays', async () => {
        const { owners, record } = await open();
        const [old, newer] = [record('alice', 'node-a'), record('alice', 'node-b')];
        await owners.claim(old, SINGLE);
        await owners.claim(newer, SINGLE);

        await owners.release('alice', old.connectionId);

        expect(await nodesOf(owners, 'alice')).toEqual(['node-b']);
      });
    });

    describe('expiry', () => {
      it('keeps a record visible until its expiry, and invisible to locate after it', async () => {
        const { owners, clock, record } = await open();
        await owners.claim(record('alice', 'node-a', 10_000), SINGLE);

        clock.advance(9_999);
        expect(await nodesOf(owners, 'alice')).toEqual(['node-a']);
        clock.advance(2);
        expect(await nodesOf(owners, 'alice')).toBeUndefined();
        expect((await owners.locate(['alice'])).size).toBe(0);
      });

      it('never returns an expired record as displaced', async () => {
        const { owners, clock, record } = await open();
        const expiring = record('alice', 'node-a', 1_000);
        const live = record('alice', 'node-b', 60_000);
        await owners.claim(expiring, multi(5));
        await owners.claim(live, multi(5));
        clock.advance(1_001);

        expect(await owners.claim(record('alice', 'node-c'), SINGLE)).toEqual({ ok: true, displaced: [live] });
      });

      it('never returns an expired record as displaced, even when nothing read it since it expired', async () => {
        const { owners, clock, record } = await open();
        await owners.claim(record('alice', 'node-a', 1_000), SINGLE);
        clock.advance(5_000);

        expect(await owners.claim(record('alice', 'node-b'), SINGLE)).toEqual({ ok: true, displaced: [] });
        expect(await nodesOf(owners, 'alice')).toEqual(['node-b']);
      });
    });

    describe('node heartbeats', () => {
      it('hides the records of a node whose heartbeat lapsed, and never returns them as displaced', async () => {
        const { owners, clock, record } = await open();
        await owners.heartbeat('node-x', clock.now() + 10_000);
        await owners.claim(record('alice', 'node-x'), SINGLE);
        await owners.claim(record('bob', 'node-a'), SINGLE);
        expect(await nodesOf(owners, 'alice')).toEqual(['node-x']);

        clock.advance(10_001);

        expect(await nodesOf(owners, 'alice')).toBeUndefined();
        expect(await nodesOf(owners, 'bob')).toEqual(['node-a']);
        expect(await owners.claim(record('alice', 'node-b'), SINGLE)).toEqual({ ok: true, displaced: [] });
      });

      it('keeps a node alive past its previous expiry when it heartbeats again', async () => {
        const { owners, clock, record } = await open();
        await owners.heartbeat('node-x', clock.now() + 10_000);
        await owners.claim(record('alice', 'node-x'), SINGLE);
        clock.advance(8_000);
        await owners.heartbeat('node-x', clock.now() + 10_000);
        clock.advance(8_000);

        expect(await nodesOf(owners, 'alice')).toEqual(['node-x']);
      });

      it('treats a node that never sent a heartbeat as gone', async () => {
        const { owners, record } = await open();
        await owners.claim(record('alice', 'node-never'), SINGLE);

        expect(await nodesOf(owners, 'alice')).toBeUndefined();
      });

      it('declares a node gone at once with an expiry in the past (a clean shutdown)', async () => {
        const { owners, clock, record } = await open();
        await owners.heartbeat('node-x', clock.now() + 60_000);
        await owners.claim(record('alice', 'node-x'), SINGLE);

        await owners.heartbeat('node-x', 0);

        expect(await nodesOf(owners, 'alice')).toBeUndefined();
      });

      it("does not count a lapsed node's tabs against maxTabs", async () => {
        const { owners, clock, record } = await open();
        await owners.heartbeat('node-x', clock.now() + 10_000);
        await owners.claim(record('alice', 'node-x'), multi(1));
        clock.advance(10_001);

        expect(displacedBy(await owners.claim(record('alice', 'node-a'), multi(1)))).toEqual([]);
      });

      it("leaves other nodes' lifetimes alone", async () => {
        const { owners, clock, record } = await open();
        await owners.heartbeat('node-x', clock.now() + 10_000);
        await owners.heartbeat('node-y', clock.now() + 10_000);
        await owners.claim(record('alice', 'node-x'), SINGLE);
        await owners.claim(record('bob', 'node-y'), SINGLE);

        await owners.heartbeat('node-x', clock.now() + 60_000);
        clock.advance(30_000);

        expect(await nodesOf(owners, 'alice')).toEqual(['node-x']);
        expect(await nodesOf(owners, 'bob')).toBeUndefined();
      });
    });

    describe('locate', () => {
      it('answers an empty map for no users', async () => {
        const { owners } = await open();
        expect((await owners.locate([])).size).toBe(0);
      });

      it('lists each online user with the nodes holding them, once each, and omits offline users', async () => {
        const { owners, record } = await open();
        for (const r of [record('alice', 'node-a'), record('alice', 'node-a'), record('alice', 'node-b')]) await owners.claim(r, multi(5));
        await owners.claim(record('bob', 'node-b'), SINGLE);

        const found = await owners.locate(['alice', 'bob', 'carol']);

        expect([...found.keys()].sort()).toEqual(['alice', 'bob']);
        expect([...found.get('alice')!].sort()).toEqual(['node-a', 'node-b']);
        expect(found.get('bob')).toEqual(['node-b']);
        expect(found.has('carol')).toBe(false);
      });

      it('keeps user ids apart that a storage key scheme could confuse', async () => {
        const { owners, record } = await open();
        const users = ['u1', 'u#1', 'u:1', 'U1', 'u1 ', 'ü 👋', 'x'.repeat(128)];
        for (const [i, user] of users.entries()) await owners.claim(record(user, `node-${i}`), SINGLE);

        const found = await owners.locate([...users, 'u', '#1']);

        expect(found).toEqual(new Map(users.map((user, i) => [user, [`node-${i}`]])));
      });

      it('answers for 250 users at once, half of them online', async () => {
        const { owners, record } = await open();
        const users = Array.from({ length: 250 }, (_, i) => `user-${i}`);
        const online = users.filter((_, i) => i % 2 === 0);
        await Promise.all(online.map((user, i) => owners.claim(record(user, `node-${i % 7}`), SINGLE)));

        const found = await owners.locate(users);

        expect(found.size).toBe(online.length);
        online.forEach((user, i) => expect(found.get(user), user).toEqual([`node-${i % 7}`]));
      });
    });
  });
}
