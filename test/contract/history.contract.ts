/**
 * What every `History` adapter must do (services/ports/history.ts). Run by
 * memory-adapters.test.ts, by the AWS suite against dynalite and by the Redis
 * suite against redis-server (single and cluster), unchanged.
 *
 * A "position" is the `Last-Event-ID` a reconnecting client presents; the
 * replay is every stored event after it, its own and the broadcasts.
 */
import { describe, expect } from 'vitest';
import type { History } from '../../services/ports/history';
import type { HeraldEvent } from '../../services/protocol/envelope';
import { eventIdFloor } from '../../services/protocol/event-id';
import { DEFAULT_MAX_DATA_BYTES } from '../../services/protocol/limits';
import { EventBuilder, UNICODE_DATA, dataOfBytes, setUp, type Cleanup, type ContractContext, type ContractOptions, contractIt, type ManualClock } from './fixtures';

export interface HistoryOptions {
  /** Events kept per user stream and for the broadcast stream; the oldest by id is evicted first. */
  readonly maxEventsPerStream: number;
}

export interface HistoryFixture extends Cleanup {
  /** Reads `context.clock` for expiry. Any other limit it has (bytes, items) must not bite in these tests. */
  readonly history: History;
  /**
   * A replay from a stored position may begin with events appended shortly
   * before it, again (DynamoDB: REPLAY_LOOKBACK_MS, for appends that land
   * late). Without it, a replay holds nothing from before its position.
   */
  readonly looksBack?: boolean;
}

/** One fresh, empty store per test, capped as asked. */
export type HistoryFactory = (context: ContractContext, options: HistoryOptions) => Promise<HistoryFixture>;

/** High enough that only the tests about the cap ever reach it. */
const ROOMY: HistoryOptions = { maxEventsPerStream: 1_000 };
const NO_LIMIT = 10_000;

export function describeHistoryContract(name: string, factory: HistoryFactory, options: ContractOptions = {}): void {
  describe(`History contract: ${name}`, () => {
    const it = contractIt(options);

    let looksBack = false;

    async function open(options: HistoryOptions = ROOMY): Promise<{ history: History; clock: ManualClock; events: EventBuilder; origin: string }> {
      const { context, fixture } = await setUp((c) => factory(c, options), (f) => f.history.close());
      looksBack = fixture.looksBack === true;
      // A position before every event of the test: a client that has seen nothing yet.
      const origin = eventIdFloor(context.clock.now() - 1);
      return { history: fixture.history, clock: context.clock, events: new EventBuilder(context.clock), origin };
    }

    /**
     * `since` from a stored position, less what an adapter that looks back
     * sends again first: the latest of `before` (the user's events appended
     * before the position, in append order), in that order. Without a
     * look-back there must be none.
     */
    async function replayAfter(history: History, userId: string, position: string, before: readonly HeraldEvent[]): Promise<{ events: HeraldEvent[]; gap: string | null }> {
      const { events, gap } = await history.since(userId, position, NO_LIMIT);
      const beforeIds = new Set(before.map((e) => e.id));
      let again = 0;
      while (again < events.length && beforeIds.has(events[again]!.id)) again++;
      if (!looksBack) expect(again, 'events from before the position').toBe(0);
      expect(events.slice(0, again)).toEqual(before.slice(before.length - again));
      return { events: events.slice(again), gap };
    }

    async function appendAll(history: History, events: readonly HeraldEvent[]): Promise<void> {
      for (const event of events) expect(await history.append(event), event.id).toEqual({ stored: true, duplicate: false });
    }

    describe('append and since', () => {
      it('returns the events after a position, ascending, and not the one at it', async () => {
        const { history, events, origin } = await open();
        const stored = Array.from({ length: 5 }, () => events.to(['alice']));
        await appendAll(history, stored);

        expect(await history.since('alice', origin, NO_LIMIT)).toEqual({ events: stored, gap: null });
        expect(await replayAfter(history, 'alice', stored[1]!.id, stored.slice(0, 1))).toEqual({ events: stored.slice(2), gap: null });
        expect(await replayAfter(history, 'alice', stored[4]!.id, stored.slice(0, 4))).toEqual({ events: [], gap: null });
      });

      it('returns events intact: name, recipients, ttl, timestamp and unicode data', async () => {
        const { history, events, origin } = await open();
        const event = events.to(['alice', 'bob 👋', 'u#1:x'], { event: 'chat.message:v1-x_y', data: UNICODE_DATA, ttlSeconds: 604_800 });
        await appendAll(history, [event]);

        const { events: replayed } = await history.since('bob 👋', origin, NO_LIMIT);
        expect(replayed).toEqual([event]);
        expect(JSON.parse(replayed[0]!.data)).toEqual(UNICODE_DATA);
      });

      it('stores an event whose data is at the default data limit', async () => {
        const { history, events, origin } = await open();
        const event = events.to(['alice'], { data: dataOfBytes(DEFAULT_MAX_DATA_BYTES) });
        await appendAll(history, [event]);

        expect(await history.since('alice', origin, NO_LIMIT)).toEqual({ events: [event], gap: null });
      });

      it("merges the user's events with the broadcasts, in id order, and leaves out other users' events", async () => {
        const { history, events, origin } = await open();
        const sequence = [
          events.to(['alice']),
          events.toAll(),
          events.to(['bob']),
          events.to(['alice', 'bob']),
          events.toAll(),
          events.to(['alice']),
        ];
        await appendAll(history, sequence);

        const forAlice = sequence.filter((e) => 'all' in e.to || e.to.users.includes('alice'));
        const forBob = sequence.filter((e) => 'all' in e.to || e.to.users.includes('bob'));
        expect(await history.since('alice', origin, NO_LIMIT)).toEqual({ events: forAlice, gap: null });
        expect(await history.since('bob', origin, NO_LIMIT)).toEqual({ events: forBob, gap: null });
        expect(await history.since('carol', origin, NO_LIMIT)).toEqual({ events: sequence.filter((e) => 'all' in e.to), gap: null });
      });

      it('returns events appended out of id order sorted by id, from a position it never stored', async () => {
        const { history, events, origin } = await open();
        const inIdOrder = [events.to(['alice']), events.toAll(), events.to(['alice']), events.to(['alice']), events.toAll()];
        await appendAll(history, [inIdOrder[3]!, inIdOrder[0]!, inIdOrder[4]!, inIdOrder[2]!, inIdOrder[1]!]);

        expect(await history.since('alice', origin, NO_LIMIT)).toEqual({ events: inIdOrder, gap: null });
      });

      it('replays from a stored position what was appended after it, even an event whose id sorts lower', async () => {
        const { history, events } = await open();
        const [earlyId, position, later] = [events.to(['alice']), events.to(['alice']), events.toAll()];
        // `earlyId` was minted first but reaches history last: a retried publish, a publisher with a slow clock.
        await appendAll(history, [position, later, earlyId]);

        expect(await replayAfter(history, 'alice', position.id, [])).toEqual({ events: [later, earlyId], gap: null });
        expect(await replayAfter(history, 'alice', later.id, [position])).toEqual({ events: [earlyId], gap: null });
      });

      it('answers a user with no history with nothing and no gap', async () => {
        const { history, origin } = await open();
        expect(await history.since('nobody', origin, NO_LIMIT)).toEqual({ events: [], gap: null });
      });
    });

    describe('batches', () => {
      it('stores a batch with appendBatch: results in order, replayed as one appended in that order', async () => {
        const { history, events, origin } = await open();
        const batch = [events.to(['alice']), events.to(['bob']), events.toAll(), events.to(['alice', 'bob']), events.to(['alice'], { ttlSeconds: 0 })];

        const results = await history.appendBatch(batch);

        expect(results).toEqual([
          { stored: true, duplicate: false },
          { stored: true, duplicate: false },
          { stored: true, duplicate: false },
          { stored: true, duplicate: false },
          { stored: false, duplicate: false },
        ]);
        expect(await history.since('alice', origin, NO_LIMIT)).toEqual({ events: [batch[0], batch[2], batch[3]], gap: null });
        expect(await history.since('bob', origin, NO_LIMIT)).toEqual({ events: [batch[1], batch[2], batch[3]], gap: null });
        expect(await history.since('alice', batch[0]!.id, NO_LIMIT)).toEqual({ events: [batch[2], batch[3]], gap: null });
      });

      it("keeps each user's order within a batch of 60, from the origin and from a position inside it", async () => {
        const { history, events, origin } = await open();
        const batch = Array.from({ length: 60 }, (_, i) => events.to([i % 3 === 0 ? 'alice' : 'bob'], { data: { i } }));

        await history.appendBatch(batch);

        const alices = batch.filter((_, i) => i % 3 === 0);
        expect(await history.since('alice', origin, NO_LIMIT)).toEqual({ events: alices, gap: null });
        expect(await replayAfter(history, 'alice', alices[7]!.id, alices.slice(0, 7))).toEqual({ events: alices.slice(8), gap: null });
      });

      it('flags the ids of a batch stored before as duplicates, and stores the rest', async () => {
        const { history, events, origin } = await open();
        const [first, second] = [events.to(['alice']), events.to(['alice'])];
        await appendAll(history, [first]);

        expect(await history.appendBatch([first, second])).toEqual([
          { stored: true, duplicate: true },
          { stored: true, duplicate: false },
        ]);
        expect(await history.since('alice', origin, NO_LIMIT)).toEqual({ events: [first, second], gap: null });
      });

      it('stores events whose id Herald minted, takes them as positions, and replays an id once even when appended twice', async () => {
        const { history, events, origin } = await open();
        const minted = [events.to(['alice']), events.to(['alice', 'bob']), events.toAll()].map((e): HeraldEvent => ({ ...e, minted: true }));

        expect(await history.appendBatch(minted)).toEqual(minted.map(() => ({ stored: true, duplicate: false })));
        // A retry of the same batch (the first answer was lost) may store them again: still one each.
        await history.appendBatch(minted);

        const plain = minted.map(({ minted: _m, ...e }) => e);
        expect(await history.since('alice', origin, NO_LIMIT)).toEqual({ events: plain, gap: null });
        expect(await history.since('alice', minted[0]!.id, NO_LIMIT)).toEqual({ events: plain.slice(1), gap: null });
        expect(await history.since('bob', minted[1]!.id, NO_LIMIT)).toEqual({ events: [plain[2]], gap: null });
      });
    });

    describe('positions', () => {
      it('takes the id of a live-only event as a position: the events after it, no gap', async () => {
        const { history, events } = await open();
        const before = events.to(['alice']);
        const liveOnly = events.to(['alice'], { ttlSeconds: 0 });
        const after = [events.to(['alice']), events.toAll()];
        await appendAll(history, [before]);
        expect(await history.append(liveOnly)).toEqual({ stored: false, duplicate: false });
        await appendAll(history, after);

        expect(await history.since('alice', liveOnly.id, NO_LIMIT)).toEqual({ events: after, gap: null });
      });

      it('takes a fresh id that was never stored as a position', async () => {
        const { history, events } = await open();
        const before = [events.to(['alice']), events.toAll()];
        await appendAll(history, before);
        const position = events.nextId();
        const after = [events.toAll(), events.to(['alice'])];
        await appendAll(history, after);

        expect(await history.since('alice', position, NO_LIMIT)).toEqual({ events: after, gap: null });
        expect(await history.since('alice', events.nextId(), NO_LIMIT)).toEqual({ events: [], gap: null });
      });

      it("takes the id of another user's event as a position", async () => {
        const { history, events } = await open();
        const sequence = [events.to(['alice']), events.to(['bob']), events.to(['alice'])];
        await appendAll(history, sequence);
        const [, others, mine] = sequence as [HeraldEvent, HeraldEvent, HeraldEvent];

        expect(await history.since('alice', others.id, NO_LIMIT)).toEqual({ events: [mine], gap: null });
      });
    });

    describe('ttl and duplicates', () => {
      it('never stores a live-only event (ttl 0)', async () => {
        const { history, events, origin } = await open();
        expect(await history.append(events.to(['alice'], { ttlSeconds: 0 }))).toEqual({ stored: false, duplicate: false });
        expect(await history.append(events.toAll({ ttlSeconds: 0 }))).toEqual({ stored: false, duplicate: false });

        expect(await history.since('alice', origin, NO_LIMIT)).toEqual({ events: [], gap: null });
      });

      it('reports an id stored before as a duplicate and replays it once', async () => {
        const { history, events, origin } = await open();
        const event = events.to(['alice', 'bob']);
        const broadcast = events.toAll();
        await appendAll(history, [event, broadcast]);

        expect(await history.append(event)).toEqual({ stored: true, duplicate: true });
        expect(await history.append(broadcast)).toEqual({ stored: true, duplicate: true });
        expect(await history.since('alice', origin, NO_LIMIT)).toEqual({ events: [event, broadcast], gap: null });
        expect(await history.since('bob', origin, NO_LIMIT)).toEqual({ events: [event, broadcast], gap: null });
      });

      it('keeps the first write of an id: a later append of it with other content is a duplicate and changes nothing', async () => {
        const { history, events, origin } = await open();
        const first = events.to(['alice'], { data: { text: 'first' } });
        const broadcast = events.toAll({ data: { text: 'to all' } });
        await appendAll(history, [first, broadcast]);
        // The same ids with another name, data, ttl and recipients, some listed first, some new.
        const reusedUsers = { ...events.to(['bob', 'alice', 'carol'], { event: 'other', data: { text: 'second' }, ttlSeconds: 60 }), id: first.id };
        const reusedBroadcast = { ...events.to(['alice', 'dave'], { data: { text: 'not to all' } }), id: broadcast.id };

        expect(await history.append(reusedUsers)).toEqual({ stored: true, duplicate: true });
        expect(await history.appendBatch([reusedBroadcast, { ...events.toAll(), id: first.id }])).toEqual([
          { stored: true, duplicate: true },
          { stored: true, duplicate: true },
        ]);

        expect(await history.since('alice', origin, NO_LIMIT)).toEqual({ events: [first, broadcast], gap: null });
        for (const user of ['bob', 'carol', 'dave']) expect(await history.since(user, origin, NO_LIMIT)).toEqual({ events: [broadcast], gap: null });
      });

      it('keeps the first write of an id when appends with different content race', async () => {
        const { history, events, origin } = await open();
        const base = events.to(['alice', 'bob']);
        const rivals = ['one', 'two', 'three', 'four'].map((text, i) => ({ ...events.to(i % 2 === 0 ? ['alice', 'bob'] : ['bob', 'alice'], { data: { text } }), id: base.id }));

        const results = await Promise.all(rivals.map((rival) => history.append(rival)));

        expect(results.filter((r) => !r.duplicate)).toHaveLength(1);
        const winner = rivals[results.findIndex((r) => !r.duplicate)]!;
        expect(await history.since('alice', origin, NO_LIMIT)).toEqual({ events: [winner], gap: null });
        expect(await history.since('bob', origin, NO_LIMIT)).toEqual({ events: [winner], gap: null });
      });

      it('reports concurrent appends of one id as one store and duplicates', async () => {
        const { history, events, origin } = await open();
        const event = events.to(['alice']);

        const results = await Promise.all(Array.from({ length: 5 }, () => history.append(event)));

        expect(results.filter((r) => !r.duplicate)).toHaveLength(1);
        expect(results.every((r) => r.stored)).toBe(true);
        expect(await history.since('alice', origin, NO_LIMIT)).toEqual({ events: [event], gap: null });
      });

      it('keeps an event until its ttl runs out, and not after', async () => {
        const { history, clock, events, origin } = await open();
        const short = events.to(['alice'], { ttlSeconds: 60 });
        const long = events.to(['alice'], { ttlSeconds: 3600 });
        await appendAll(history, [short, long]);

        // A second either side: ttl is given in whole seconds, and storage may keep expiry in seconds too.
        clock.advance(59_000);
        expect(await history.since('alice', origin, NO_LIMIT)).toEqual({ events: [short, long], gap: null });
        clock.advance(2_000);
        expect(await history.since('alice', origin, NO_LIMIT)).toEqual({ events: [long], gap: 'history_trimmed' });
      });

      it('reports expired events after the position as history_trimmed, and not those at or before it', async () => {
        const { history, clock, events, origin } = await open();
        const expiring = [events.to(['alice'], { ttlSeconds: 60 }), events.toAll({ ttlSeconds: 60 })];
        const kept = events.to(['alice']);
        await appendAll(history, [...expiring, kept]);
        clock.advance(61_000);

        expect(await history.since('alice', origin, NO_LIMIT)).toEqual({ events: [kept], gap: 'history_trimmed' });
        expect(await history.since('alice', expiring[0]!.id, NO_LIMIT)).toEqual({ events: [kept], gap: 'history_trimmed' });
        expect(await history.since('alice', expiring[1]!.id, NO_LIMIT)).toEqual({ events: [kept], gap: null });
      });

      it('still reports expired events as history_trimmed after later appends', async () => {
        const { history, clock, events, origin } = await open();
        const expiring = events.to(['alice'], { ttlSeconds: 60 });
        await appendAll(history, [expiring]);
        clock.advance(120_000);
        const later = [events.to(['alice']), events.to(['bob']), events.toAll()];
        await appendAll(history, later);

        expect(await history.since('alice', origin, NO_LIMIT)).toEqual({ events: [later[0], later[2]], gap: 'history_trimmed' });
        expect(await history.since('alice', expiring.id, NO_LIMIT)).toEqual({ events: [later[0], later[2]], gap: null });
      });
    });

    describe('limit', () => {
      it('returns the first `limit` events with replay_limit when more remain', async () => {
        const { history, events, origin } = await open();
        const stored = [events.to(['alice']), events.toAll(), events.to(['alice']), events.toAll(), events.to(['alice'])];
        await appendAll(history, stored);

        expect(await history.since('alice', origin, 3)).toEqual({ events: stored.slice(0, 3), gap: 'replay_limit' });
        expect(await history.since('alice', stored[0]!.id, 3)).toEqual({ events: stored.slice(1, 4), gap: 'replay_limit' });
        expect(await history.since('alice', origin, 1)).toEqual({ events: stored.slice(0, 1), gap: 'replay_limit' });
      });

      it('reports no gap when exactly `limit` events remain', async () => {
        const { history, events, origin } = await open();
        const stored = [events.to(['alice']), events.toAll(), events.to(['alice'])];
        await appendAll(history, stored);

        expect(await history.since('alice', origin, 3)).toEqual({ events: stored, gap: null });
        expect(await history.since('alice', stored[0]!.id, 2)).toEqual({ events: stored.slice(1), gap: null });
      });
    });

    describe('size cap', () => {
      it('evicts the oldest events past maxEventsPerStream, with history_trimmed only for positions before an evicted one', async () => {
        const { history, events, origin } = await open({ maxEventsPerStream: 3 });
        const stored = Array.from({ length: 5 }, () => events.to(['alice']));
        await appendAll(history, stored);
        const [e1, e2, e3, e4, e5] = stored as [HeraldEvent, HeraldEvent, HeraldEvent, HeraldEvent, HeraldEvent];

        expect(await history.since('alice', origin, NO_LIMIT)).toEqual({ events: [e3, e4, e5], gap: 'history_trimmed' });
        expect(await history.since('alice', e1.id, NO_LIMIT)).toEqual({ events: [e3, e4, e5], gap: 'history_trimmed' });
        expect(await history.since('alice', e2.id, NO_LIMIT)).toEqual({ events: [e3, e4, e5], gap: null });
        expect(await history.since('alice', e3.id, NO_LIMIT)).toEqual({ events: [e4, e5], gap: null });
      });

      it('caps the broadcast stream too, for every user', async () => {
        const { history, events, origin } = await open({ maxEventsPerStream: 2 });
        const broadcasts = [events.toAll(), events.toAll(), events.toAll()];
        await appendAll(history, broadcasts);

        expect(await history.since('alice', origin, NO_LIMIT)).toEqual({ events: broadcasts.slice(1), gap: 'history_trimmed' });
        expect(await history.since('bob', broadcasts[0]!.id, NO_LIMIT)).toEqual({ events: broadcasts.slice(1), gap: null });
      });

      it("caps each user's stream on its own: one busy user does not evict another's events", async () => {
        const { history, events, origin } = await open({ maxEventsPerStream: 3 });
        const quiet = events.to(['bob']);
        const shared = events.to(['alice', 'bob']);
        await appendAll(history, [quiet, shared]);
        const busy = Array.from({ length: 6 }, () => events.to(['alice']));
        await appendAll(history, busy);

        expect(await history.since('bob', origin, NO_LIMIT)).toEqual({ events: [quiet, shared], gap: null });
        expect(await history.since('alice', origin, NO_LIMIT)).toEqual({ events: busy.slice(3), gap: 'history_trimmed' });
      });
    });
  });
}
