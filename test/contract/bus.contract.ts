/**
 * What every `Bus` adapter must do (services/ports/bus.ts). Run by
 * memory-adapters.test.ts and by the AWS suite against fauxqs, unchanged.
 *
 * Delivery is at least once, so assertions dedupe by message key. Negative
 * assertions send the message that must not arrive, then a sentinel that must
 * arrive on the same path; once the sentinel is in, the first is known absent.
 */
import { describe, expect } from 'vitest';
import type { Bus, BusMessage } from '../../services/ports/bus';
import { HeraldError } from '../../services/protocol/errors';
import { DEFAULT_MAX_DATA_BYTES, MAX_DATA_BYTES_CEILING } from '../../services/protocol/limits';
import { EventBuilder, Inbox, NONCHARACTER_DATA, UNICODE_DATA, dataOfBytes, messageKey, setUp, type Cleanup, type ContractContext, type ContractOptions, contractIt } from './fixtures';

/** Several buses on one network: each `bus()` is one node, or a publisher that never starts. */
export interface BusFixture extends Cleanup {
  /** A new, unstarted bus on this test's network (for AWS: the same topic, a queue made at `start`). */
  bus(): Promise<Bus>;
}

export interface BusFactory {
  /**
   * Whether messages from one sender to one node arrive in send order. The memory
   * bus guarantees it; SNS→SQS standard queues are best effort, so the order
   * test is skipped for them.
   */
  readonly ordered: boolean;
  /** One network per test. */
  create(context: ContractContext): Promise<BusFixture>;
}

const deliver = (event: ReturnType<EventBuilder['to']>): BusMessage => ({ kind: 'deliver', events: [event] });

export function describeBusContract(name: string, factory: BusFactory, options: ContractOptions = {}): void {
  describe(`Bus contract: ${name}`, () => {
    const it = contractIt(options);

    /** Every bus the test made is closed when it ends, then the fixture cleans up. */
    async function network(): Promise<{ bus: () => Promise<Bus>; events: EventBuilder }> {
      const made: Bus[] = [];
      const { context, fixture } = await setUp(
        (c) => factory.create(c),
        () => Promise.all(made.map((b) => b.close())),
      );
      const bus = async (): Promise<Bus> => {
        const b = await fixture.bus();
        made.push(b);
        return b;
      };
      return { bus, events: new EventBuilder(context.clock) };
    }

    /** A started node with its inbox. */
    async function node(bus: () => Promise<Bus>, nodeId: string, inbox = new Inbox(nodeId)): Promise<{ bus: Bus; inbox: Inbox }> {
      const b = await bus();
      await b.start(nodeId, inbox.handler);
      return { bus: b, inbox };
    }

    describe('routing', () => {
      it('delivers a message sent to { node } to that node and to no other', async () => {
        const { bus, events } = await network();
        const a = await node(bus, 'node-a');
        const b = await node(bus, 'node-b');
        const publisher = await bus();

        const targeted = deliver(events.to(['alice']));
        await publisher.send(targeted, { node: 'node-a' });
        await a.inbox.waitFor(targeted, 'the targeted message');
        const sentinel = deliver(events.to(['bob']));
        await publisher.send(sentinel, { node: 'node-b' });
        await b.inbox.waitFor(sentinel, 'the sentinel');

        expect(b.inbox.has(targeted)).toBe(false);
        expect(a.inbox.has(sentinel)).toBe(false);
      });

      it("delivers a message sent to 'all' to every started node, the sender included", async () => {
        const { bus, events } = await network();
        const a = await node(bus, 'node-a');
        const b = await node(bus, 'node-b');
        const c = await node(bus, 'node-c');

        const broadcast = deliver(events.toAll());
        await a.bus.send(broadcast, 'all');

        await Promise.all([a, b, c].map((n) => n.inbox.waitFor(broadcast, 'the broadcast')));
      });

      it('delivers a message a node sends to its own id to itself only', async () => {
        const { bus, events } = await network();
        const a = await node(bus, 'node-a');
        const b = await node(bus, 'node-b');

        const own = deliver(events.to(['alice']));
        await a.bus.send(own, { node: 'node-a' });
        await a.inbox.waitFor(own, 'the message to itself');
        const sentinel = deliver(events.to(['bob']));
        await a.bus.send(sentinel, { node: 'node-b' });
        await b.inbox.waitFor(sentinel, 'the sentinel');

        expect(b.inbox.has(own)).toBe(false);
      });

      it('accepts a message for a node that is not on the bus and delivers it to no one', async () => {
        const { bus, events } = await network();
        const a = await node(bus, 'node-a');
        const b = await node(bus, 'node-b');
        const publisher = await bus();

        const stray = deliver(events.to(['alice']));
        await publisher.send(stray, { node: 'node-gone' });
        const sentinel = deliver(events.toAll());
        await publisher.send(sentinel, 'all');
        await Promise.all([a.inbox.waitFor(sentinel, 'the sentinel'), b.inbox.waitFor(sentinel, 'the sentinel')]);

        expect(a.inbox.has(stray)).toBe(false);
        expect(b.inbox.has(stray)).toBe(false);
      });

      it('lets a bus that never starts send, as a publisher does', async () => {
        const { bus, events } = await network();
        const a = await node(bus, 'node-a');
        const publisher = await bus();

        const targeted = deliver(events.to(['alice']));
        const broadcast = deliver(events.toAll());
        await publisher.send(targeted, { node: 'node-a' });
        await publisher.send(broadcast, 'all');

        await a.inbox.waitForAll([targeted, broadcast], 'a publisher-only message');
      });
    });

    describe('delivery', () => {
      it(
        'keeps the send order of one sender to one node',
        async () => {
          const { bus, events } = await network();
          const a = await node(bus, 'node-a');
          const publisher = await bus();

          const sent: BusMessage[] = [];
          for (let i = 0; i < 50; i++) {
            const message: BusMessage =
              i % 5 === 4
                ? { kind: 'replace', userId: 'alice', connectionId: `conn-${i}`, byConnectionId: `conn-${i + 1}` }
                : deliver(events.to(['alice'], { data: { i } }));
            sent.push(message);
            await publisher.send(message, { node: 'node-a' });
          }
          await a.inbox.waitFor(sent.at(-1)!, 'the last of 50 messages');

          expect(a.inbox.keys()).toEqual(sent.map(messageKey));
        },
        { skip: !factory.ordered },
      );

      it('delivers every entry of sendBatch to its own target, a message of several events whole and in order', async () => {
        const { bus, events } = await network();
        const a = await node(bus, 'node-a');
        const b = await node(bus, 'node-b');
        const publisher = await bus();

        const many: BusMessage = { kind: 'deliver', events: Array.from({ length: 5 }, (_, i) => events.to(['alice'], { data: { i } })) };
        const toB = deliver(events.to(['bob']));
        const everyone = deliver(events.toAll());
        await publisher.sendBatch([
          { message: many, target: { node: 'node-a' } },
          { message: toB, target: { node: 'node-b' } },
          { message: everyone, target: 'all' },
        ]);

        const [gotMany] = await a.inbox.waitForAll([many, everyone], 'the batch at node-a');
        await b.inbox.waitForAll([toB, everyone], 'the batch at node-b');
        expect(gotMany).toEqual(many);
        expect(a.inbox.has(toB)).toBe(false);
        expect(b.inbox.has(many)).toBe(false);
      });

      it('sends an empty sendBatch as nothing, and resolves', async () => {
        const { bus } = await network();
        const publisher = await bus();
        await expect(publisher.sendBatch([])).resolves.toBeUndefined();
      });

      it('delivers every message of a burst sent without waiting', async () => {
        const { bus, events } = await network();
        const a = await node(bus, 'node-a');
        const publisher = await bus();

        const sent = Array.from({ length: 30 }, (_, i) => deliver(events.to(['alice'], { data: { i } })));
        await Promise.all(sent.map((m) => publisher.send(m, { node: 'node-a' })));
        await a.inbox.waitForAll(sent, 'burst message');

        expect(new Set(a.inbox.keys())).toEqual(new Set(sent.map(messageKey)));
      });

      it('delivers a message whose send resolved even when the sender closes right after', async () => {
        const { bus, events } = await network();
        const a = await node(bus, 'node-a');
        const publisher = await bus();

        const message = deliver(events.to(['alice']));
        await publisher.send(message, { node: 'node-a' });
        await publisher.close();

        await a.inbox.waitFor(message, 'a message accepted before its sender closed');
      });

      it('keeps delivering after a handler rejects', async () => {
        const { bus, events } = await network();
        const first = deliver(events.to(['alice']));
        let rejected = 0;
        const inbox = new Inbox('node-a', (message) => {
          if (messageKey(message) !== messageKey(first) || rejected > 0) return Promise.resolve();
          rejected += 1;
          return Promise.reject(new Error('handler failed on purpose'));
        });
        await node(bus, 'node-a', inbox);
        const publisher = await bus();

        await publisher.send(first, { node: 'node-a' });
        await inbox.waitFor(first, 'the message the handler rejects');
        const later = [deliver(events.to(['alice'])), deliver(events.toAll())];
        await publisher.send(later[0]!, { node: 'node-a' });
        await publisher.send(later[1]!, 'all');

        await inbox.waitForAll(later, 'a message after the rejection');
        expect(rejected).toBe(1);
      });
    });

    describe('faulty handlers', () => {
      it('keeps delivering after a handler throws synchronously instead of rejecting', async () => {
        const { bus, events } = await network();
        const first = deliver(events.to(['alice']));
        const recorder = new Inbox('node-a');
        let thrown = 0;
        // Not async on purpose: the throw happens before any promise exists.
        const handler = (message: BusMessage): Promise<void> => {
          void recorder.handler(message);
          if (messageKey(message) === messageKey(first) && thrown === 0) {
            thrown += 1;
            throw new Error('handler threw on purpose');
          }
          return Promise.resolve();
        };
        await (await bus()).start('node-a', handler);
        const publisher = await bus();

        await publisher.send(first, { node: 'node-a' });
        await recorder.waitFor(first, 'the message the handler throws on');
        const later = deliver(events.to(['alice']));
        await publisher.send(later, { node: 'node-a' });

        await recorder.waitFor(later, 'a message after the throw');
        expect(thrown).toBe(1);
      });
    });

    describe('message content', () => {
      it('carries a deliver message intact: recipients, ttl, timestamps and unicode data', async () => {
        const { bus, events } = await network();
        const a = await node(bus, 'node-a');
        const publisher = await bus();

        const forUsers = deliver(
          events.to(['alice', 'bob 👋', 'u#1:x'], { event: 'chat.message:v1-x_y', data: UNICODE_DATA, ttlSeconds: 0 }),
        );
        const forAll = deliver(events.toAll({ data: [UNICODE_DATA, 'second'], ttlSeconds: 604_800 }));
        await publisher.send(forUsers, { node: 'node-a' });
        await publisher.send(forAll, 'all');

        const [gotUsers, gotAll] = await a.inbox.waitForAll([forUsers, forAll], 'a unicode event');
        expect(gotUsers).toEqual(forUsers);
        expect(gotAll).toEqual(forAll);
        if (gotUsers?.kind === 'deliver') expect(JSON.parse(gotUsers.events[0]!.data)).toEqual(UNICODE_DATA);
      });

      it('carries data with U+FFFE and U+FFFF, which JSON allows and raw SQS bodies do not', async () => {
        const { bus, events } = await network();
        const a = await node(bus, 'node-a');
        const publisher = await bus();

        const message = deliver(events.to(['alice'], { data: NONCHARACTER_DATA }));
        await publisher.send(message, { node: 'node-a' });

        expect(await a.inbox.waitFor(message, 'the noncharacter event')).toEqual(message);
      });

      for (const [limit, bytes] of [
        ['the default data limit', DEFAULT_MAX_DATA_BYTES],
        ['the highest configurable data limit', MAX_DATA_BYTES_CEILING],
      ] as const) {
        it(`carries an event whose data is at ${limit} (${bytes} bytes)`, async () => {
          const { bus, events } = await network();
          const a = await node(bus, 'node-a');
          const publisher = await bus();

          const message = deliver(events.to(['alice'], { data: dataOfBytes(bytes) }));
          await publisher.send(message, { node: 'node-a' });

          expect(await a.inbox.waitFor(message, `the ${bytes}-byte event`)).toEqual(message);
        });
      }

      it('carries a replace message intact', async () => {
        const { bus } = await network();
        const a = await node(bus, 'node-a');
        const b = await node(bus, 'node-b');

        const replace: BusMessage = { kind: 'replace', userId: 'alice 👋', connectionId: 'conn-old', byConnectionId: 'conn-new' };
        await b.bus.send(replace, { node: 'node-a' });
        const broadcastReplace: BusMessage = { kind: 'replace', userId: 'bob', connectionId: 'conn-b1', byConnectionId: 'conn-b2' };
        await b.bus.send(broadcastReplace, 'all');

        const [got, gotBroadcast] = await a.inbox.waitForAll([replace, broadcastReplace], 'a replace message');
        expect(got).toEqual(replace);
        expect(gotBroadcast).toEqual(broadcastReplace);
        await b.inbox.waitFor(broadcastReplace, "the 'all' replace on the sender");
        expect(b.inbox.has(replace)).toBe(false);
      });
    });

    describe('close', () => {
      it("rejects send after close with a transient 'unavailable' HeraldError", async () => {
        const { bus, events } = await network();
        const started = await node(bus, 'node-a');
        const publisher = await bus();
        await started.bus.close();
        await publisher.close();

        for (const closed of [started.bus, publisher]) {
          for (const target of [{ node: 'node-a' }, 'all'] as const) {
            const error: unknown = await closed.send(deliver(events.to(['alice'])), target).then(
              () => 'resolved',
              (e: unknown) => e,
            );
            expect(error).toBeInstanceOf(HeraldError);
            expect((error as HeraldError).code).toBe('unavailable');
          }
        }
      });

      it("stops calling a closed node's handler while the others keep receiving", async () => {
        const { bus, events } = await network();
        const a = await node(bus, 'node-a');
        const b = await node(bus, 'node-b');
        const publisher = await bus();

        const before = deliver(events.toAll());
        await publisher.send(before, 'all');
        await Promise.all([a.inbox.waitFor(before, 'the message before close'), b.inbox.waitFor(before, 'the message before close')]);
        await a.bus.close();
        const receivedBeforeClose = a.inbox.messages.length;

        const broadcast = deliver(events.toAll());
        const targeted = deliver(events.to(['alice']));
        await publisher.send(broadcast, 'all');
        await publisher.send(targeted, { node: 'node-a' });
        await b.inbox.waitFor(broadcast, 'the broadcast after close');
        const sentinel = deliver(events.toAll());
        await publisher.send(sentinel, 'all');
        await b.inbox.waitFor(sentinel, 'the sentinel');

        expect(a.inbox.messages.slice(receivedBeforeClose).map(messageKey)).toEqual([]);
      });

      it('does not call the handler once close has resolved, even for messages in flight', async () => {
        const { bus, events } = await network();
        const a = await node(bus, 'node-a');
        const b = await node(bus, 'node-b');
        const publisher = await bus();

        const inFlight = Array.from({ length: 20 }, () => deliver(events.to(['alice'])));
        await Promise.all(inFlight.map((m) => publisher.send(m, { node: 'node-a' })));
        await a.bus.close();
        const receivedByClose = a.inbox.messages.length;
        const sentinel = deliver(events.toAll());
        await publisher.send(sentinel, 'all');
        await b.inbox.waitFor(sentinel, 'the sentinel');

        expect(a.inbox.messages.length).toBe(receivedByClose);
      });

      it('is idempotent, whether or not the bus was started', async () => {
        const { bus } = await network();
        const started = await node(bus, 'node-a');
        const publisher = await bus();

        await expect(started.bus.close()).resolves.toBeUndefined();
        await expect(started.bus.close()).resolves.toBeUndefined();
        await expect(publisher.close()).resolves.toBeUndefined();
        await expect(publisher.close()).resolves.toBeUndefined();
        await expect(Promise.all([started.bus.close(), publisher.close()])).resolves.toBeDefined();
      });
    });
  });
}
