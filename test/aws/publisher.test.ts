/**
 * The publisher library (`createPublisher`) against fauxqs and dynalite through
 * the real SDK: a node started in the test receives what it publishes, presence
 * comes from owner records claimed here, history is readable by DynamoHistory,
 * refusals carry their code, field and index, the budget lives in the table,
 * and transient faults are retried with the same ids.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { DeleteTopicCommand, type PublishBatchRequestEntry } from '@aws-sdk/client-sns';
import { DynamoHistory } from '../../services/adapters/aws/dynamo-history';
import { DynamoOwners } from '../../services/adapters/aws/dynamo-owners';
import { createAwsClients, type AwsClients } from '../../services/adapters/aws/sdk-clients';
import { SnsBus } from '../../services/adapters/aws/sns-bus';
import { SnsSqsBus } from '../../services/adapters/aws/sns-sqs-bus';
import { eventIdFloor, isEventId, newEventId } from '../../services/protocol/event-id';
import { HeraldError } from '../../services/protocol/errors';
import { createPublisher, type PublisherOptions } from '../../services/publisher/create-publisher';
import { createLogger, silentLogger } from '../../services/shared/log';
import { DEADLINE_MS, Inbox } from '../contract/fixtures';
import { eventually } from '../../scripts/fleet/deadline';
import { startEmulators, unique, type Emulators } from './emulators';

let emulators: Emulators;

beforeAll(async () => {
  emulators = await startEmulators();
});

afterAll(async () => {
  await emulators.stop();
});

/** Clients made as production makes them, pointed at the emulators; destroyed when the test ends. */
function freshClients(): AwsClients {
  const clients = createAwsClients(emulators.env(), { credentials: emulators.credentials });
  onTestFinished(() => {
    for (const client of [clients.sns, clients.sqs, clients.dynamo]) client.destroy();
  });
  return clients;
}

/** A transient fault as the SDK reports one (a 503), thrown before the SDK's own retries see it. */
function injectFaults(client: AwsClients['sns'] | AwsClients['dynamo'], commandName: string, failures: number): { readonly calls: () => number } {
  let calls = 0;
  client.middlewareStack.add(
    (next, context) => (args) => {
      if (context.commandName === commandName && ++calls <= failures) {
        return Promise.reject(Object.assign(new Error(`injected fault in ${commandName}`), { name: 'ServiceUnavailable', $metadata: { httpStatusCode: 503 } }));
      }
      return next(args);
    },
    { step: 'initialize', name: `inject-${commandName}` },
  );
  return { calls: () => calls };
}

interface World {
  readonly topicArn: string;
  readonly tableName: string;
  /** Node `node-a`: an SnsSqsBus started in the test, heartbeating, holding whoever `online` claims. */
  readonly inbox: Inbox;
  readonly owners: DynamoOwners;
  readonly history: DynamoHistory;
  online(userId: string, nodeId?: string): Promise<void>;
  publisher(options?: Partial<PublisherOptions>): ReturnType<typeof createPublisher>;
  /** Distinct ids of the deliveries node-a received. */
  delivered(): string[];
}

async function world(): Promise<World> {
  const topicArn = await emulators.createTopic(unique('topic'));
  const tableName = unique('pub');
  await emulators.createTable(tableName);
  const clients = freshClients();
  const owners = new DynamoOwners({ client: emulators.dynamo, tableName });
  const inbox = new Inbox('node-a');
  const node = new SnsSqsBus({ sns: clients.sns, sqs: clients.sqs, topicArn, queuePrefix: unique('q'), log: silentLogger, waitTimeSeconds: 1 });
  await owners.heartbeat('node-a', Date.now() + 120_000);
  await node.start('node-a', inbox.handler);
  const publishers: ReturnType<typeof createPublisher>[] = [];
  onTestFinished(async () => {
    await Promise.all(publishers.map((p) => p.close()));
    await node.close();
    await emulators.sns.send(new DeleteTopicCommand({ TopicArn: topicArn }));
  });
  let connection = 0;
  return {
    topicArn,
    tableName,
    inbox,
    owners,
    history: new DynamoHistory({ client: emulators.dynamo, tableName, maxEventsPerStream: 100 }),
    online: async (userId, nodeId = 'node-a') => {
      const now = Date.now();
      await owners.claim({ userId, connectionId: `c-${++connection}`, nodeId, connectedAtMs: now, expiresAtMs: now + 120_000 }, { mode: 'single' });
    },
    publisher: (options = {}) => {
      const publisher = createPublisher({ topicArn, tableName, clients, ...options });
      publishers.push(publisher);
      return publisher;
    },
    delivered: () => inbox.keys().flatMap((key) => (key.startsWith('deliver:') ? key.slice('deliver:'.length).split(',') : [])),
  };
}

/** What history replays to `userId` from a minute ago. */
async function replayIds(w: World, userId: string): Promise<string[]> {
  const { events } = await w.history.since(userId, eventIdFloor(Date.now() - 60_000), 100);
  return events.map((e) => e.id);
}

async function refusal(promise: Promise<unknown>): Promise<HeraldError> {
  const outcome = await promise.then(
    () => new Error('expected a refusal, but it resolved'),
    (error: unknown) => error,
  );
  expect(outcome).toBeInstanceOf(HeraldError);
  return outcome as HeraldError;
}

describe('createPublisher on fauxqs and dynalite', () => {
  describe('publishing', () => {
    it('delivers to the node holding the user, answers who was online, and stores the event for replay', async () => {
      const w = await world();
      await w.online('alice');
      const publisher = w.publisher({ publisherId: 'chat' });

      const result = await publisher.publish({ to: { users: ['alice', 'bob'] }, event: 'message', data: { fromUserId: '655093', text: 'Hello 👋' } });

      expect(result).toEqual({ id: expect.any(String) as string, recipients: 2, online: 1, offline: ['bob'], duplicate: false });
      expect(isEventId(result.id)).toBe(true);
      await eventually(() => w.delivered().includes(result.id), DEADLINE_MS, 'the delivery at node-a');
      const received = w.inbox.messages.find((m) => m.kind === 'deliver' && m.events.some((e) => e.id === result.id));
      // Addressed to the users the node holds: bob is offline, so only alice.
      expect(received).toMatchObject({ kind: 'deliver', events: [{ event: 'message', data: '{"fromUserId":"655093","text":"Hello 👋"}', to: { users: ['alice'] } }] });
      // Both are in history: bob, offline now, gets it when he connects with a position.
      expect(await replayIds(w, 'alice')).toEqual([result.id]);
      expect(await replayIds(w, 'bob')).toEqual([result.id]);
    });

    it('counts a user on a node whose heartbeat expired as offline, and sends nothing for them', async () => {
      const w = await world();
      await w.owners.heartbeat('node-dead', Date.now() - 1);
      await w.online('carol', 'node-dead');
      const publisher = w.publisher();

      const result = await publisher.publish({ to: { users: ['carol'] }, event: 'message', data: 1 });

      expect(result).toMatchObject({ recipients: 1, online: 0, offline: ['carol'] });
      expect(await replayIds(w, 'carol')).toEqual([result.id]);
      const sentinel = await publisher.publish({ to: { all: true }, event: 'sentinel', data: null });
      await eventually(() => w.delivered().includes(sentinel.id), DEADLINE_MS, 'the sentinel broadcast');
      expect(w.delivered()).toEqual([sentinel.id]);
    });

    it('broadcasts to every node, with online null, and keeps an id the publisher chose', async () => {
      const w = await world();
      const publisher = w.publisher();
      const id = eventIdFloor(Date.now());

      const result = await publisher.publish({ id, to: { all: true }, event: 'maintenance', data: 'soon', ttl: 60 });

      expect(result).toEqual({ id, recipients: 'all', online: null, offline: [], duplicate: false });
      await eventually(() => w.delivered().includes(id), DEADLINE_MS, 'the broadcast at node-a');
      expect(await replayIds(w, 'anyone')).toEqual([id]);
    });

    it('publishes a batch in order with one result per notification, and marks a republished caller id as a duplicate', async () => {
      const w = await world();
      await w.online('alice');
      const publisher = w.publisher();
      // The caller names its ids (what makes a retry idempotent), or lets Herald mint them.
      const ids = [newEventId(), undefined, newEventId()];
      const envelopes = ids.map((id, n) => ({ ...(id ? { id } : {}), to: { users: ['alice'] }, event: 'job.progress', data: { n } }));

      const results = await publisher.publishBatch(envelopes);

      expect(results.map((r) => r.online)).toEqual([1, 1, 1]);
      expect([results[0]!.id, results[2]!.id]).toEqual([ids[0], ids[2]]);
      await eventually(() => results.every((r) => w.delivered().includes(r.id)), DEADLINE_MS, 'the three deliveries');
      // From a position history never stored, the replay is in id order: the minted id is the newest.
      const inIdOrder = [ids[0], ids[2], results[1]!.id];
      expect(await replayIds(w, 'alice')).toEqual(inIdOrder);
      const again = await publisher.publishBatch([envelopes[0]!, envelopes[2]!]);
      expect(again.map((r) => r.duplicate)).toEqual([true, true]);
      expect(await replayIds(w, 'alice')).toEqual(inIdOrder);
    });
  });

  describe('requests per batch', () => {
    it('publishes 100 unicasts to users on 3 nodes in 4 history writes, 1 owners lookup, at most 1 budget lease and 1 SNS request', async () => {
      const w = await world();
      for (const node of ['node-b', 'node-c']) await w.owners.heartbeat(node, Date.now() + 120_000);
      const users = Array.from({ length: 100 }, (_, i) => `user-${i}`);
      for (const [i, user] of users.entries()) await w.online(user, ['node-a', 'node-b', 'node-c'][i % 3]);
      const clients = freshClients();
      const requests: string[] = [];
      for (const client of [clients.sns, clients.dynamo] as const) {
        client.middlewareStack.add(
          (next, context) => (args) => {
            requests.push(String(context.commandName));
            return next(args);
          },
          { step: 'initialize', name: 'count' },
        );
      }
      const publisher = w.publisher({ clients });
      // Warm: the node table is cached for a second, as in any busy publisher.
      await publisher.publish({ to: { users: ['user-0'] }, event: 'warm', data: 0 });
      requests.splice(0);

      const results = await publisher.publishBatch(users.map((user, n) => ({ to: { users: [user] }, event: 'message', data: { n, text: 'x'.repeat(560) } })));

      expect(results.every((r) => r.online === 1)).toBe(true);
      const count = (name: string): number => requests.filter((r) => r === name).length;
      expect(count('BatchWriteItemCommand')).toBe(4);
      expect(count('BatchGetItemCommand')).toBe(1);
      expect(count('UpdateItemCommand')).toBeLessThanOrEqual(1);
      expect(requests.filter((r) => !['BatchWriteItemCommand', 'BatchGetItemCommand', 'UpdateItemCommand', 'PublishBatchCommand'].includes(r))).toEqual([]);
      expect(count('PublishBatchCommand')).toBe(1);
      await eventually(() => results.filter((_, i) => i % 3 === 0).every((r) => w.delivered().includes(r.id)), DEADLINE_MS, "node-a's 34 deliveries");
      // One bus message carried all of node-a's notifications, in order.
      const toA = w.inbox.messages.filter((m) => m.kind === 'deliver' && m.events.length > 1);
      expect(toA).toHaveLength(1);
      expect(toA[0]!.kind === 'deliver' && toA[0]!.events.map((e) => e.id)).toEqual(results.filter((_, i) => i % 3 === 0).map((r) => r.id));
    });
  });

  describe('refusals', () => {
    it('throws the schema’s HeraldError with code and field, or index in a batch, and publishes none of it', async () => {
      const w = await world();
      await w.online('alice');
      const publisher = w.publisher({ settings: { maxDataBytes: 100 } });
      const valid = { to: { users: ['alice'] }, event: 'message', data: 'ok' };

      expect((await refusal(publisher.publish({ ...valid, event: 'ready' }))).toJSON()).toMatchObject({ error: 'event_name_reserved', field: 'event' });
      expect((await refusal(publisher.publish({ ...valid, data: 'x'.repeat(100) }))).toJSON()).toMatchObject({ error: 'payload_too_large', field: 'data' });
      expect((await refusal(publisher.publish({ ...valid, extra: 1 }))).toJSON()).toMatchObject({ error: 'envelope_invalid', field: 'extra' });
      expect((await refusal(publisher.publish({ ...valid, to: { users: ['alice', ''] } }))).toJSON()).toMatchObject({ error: 'recipients_invalid', field: 'to.users[1]' });
      const inBatch = await refusal(publisher.publishBatch([valid, valid, { ...valid, ttl: -1 }]));
      expect(inBatch.toJSON()).toMatchObject({ error: 'ttl_invalid', field: 'ttl', index: 2 });
      expect((await refusal(publisher.publishBatch([]))).code).toBe('batch_invalid');
      expect((await refusal(publisher.publishBatch(Array.from({ length: 101 }, () => valid)))).code).toBe('batch_invalid');

      expect(await replayIds(w, 'alice')).toEqual([]);
      const sentinel = await publisher.publish({ ...valid, event: 'sentinel' });
      await eventually(() => w.delivered().includes(sentinel.id), DEADLINE_MS, 'the sentinel');
      expect(w.delivered()).toEqual([sentinel.id]);
    });

    it('refuses settings the node would refuse, and a publisherId that is not a key', () => {
      const base = { topicArn: 'arn:aws:sns:us-east-1:000000000000:t', tableName: 't', clients: { sns: emulators.sns, dynamo: emulators.dynamo } };
      expect(() => createPublisher({ ...base, settings: { maxDataBytes: 300 * 1024 } })).toThrow(/maxDataBytes/);
      expect(() => createPublisher({ ...base, publisherId: 'has space' })).toThrow(/publisherId/);
    });
  });

  describe('the rate budget', () => {
    it('is kept in the table per publisherId: past the burst, rate_limited with retryAfterMs, for every instance of that id', async () => {
      const w = await world();
      const settings = { publishRate: { perSecond: 0.5, burst: 2 } };
      const first = w.publisher({ publisherId: 'jobs', settings });
      const envelope = { to: { users: ['alice'] }, event: 'message', data: 1 };

      await first.publish(envelope);
      await first.publish(envelope);
      const denied = await refusal(first.publish(envelope));
      expect(denied.code).toBe('rate_limited');
      expect(denied.details.retryAfterMs).toBeGreaterThan(0);
      // Another instance (another Lambda, another service task) shares the budget of its id...
      expect((await refusal(w.publisher({ publisherId: 'jobs', settings }).publish(envelope))).code).toBe('rate_limited');
      // ...and another id has its own.
      await w.publisher({ publisherId: 'chat', settings }).publish(envelope);
      // A batch costs one per notification; a denied one stores nothing.
      expect((await refusal(w.publisher({ publisherId: 'chat', settings }).publishBatch([envelope, envelope]))).code).toBe('rate_limited');
      expect(await replayIds(w, 'alice')).toHaveLength(3);
    });
  });

  describe('transient faults', () => {
    it('retries an SNS fault with the same event: one history entry, one delivery, a result that is not a duplicate', async () => {
      const w = await world();
      await w.online('alice');
      const clients = freshClients();
      const sns = injectFaults(clients.sns, 'PublishCommand', 1);
      const lines: string[] = [];
      const publisher = w.publisher({ clients, log: createLogger({ level: 'debug', sink: (line) => lines.push(line) }) });

      const result = await publisher.publish({ to: { users: ['alice'] }, event: 'message', data: { secret: 'do-not-log' } });

      expect(sns.calls()).toBe(2);
      expect(result).toMatchObject({ recipients: 1, online: 1, offline: [], duplicate: false });
      expect(await replayIds(w, 'alice')).toEqual([result.id]);
      const sentinel = await w.publisher().publish({ to: { users: ['alice'] }, event: 'sentinel', data: null });
      await eventually(() => w.delivered().includes(sentinel.id), DEADLINE_MS, 'the sentinel');
      expect(w.inbox.messages.filter((m) => m.kind === 'deliver' && m.events.some((e) => e.id === result.id))).toHaveLength(1);
      expect(lines.map((l) => (JSON.parse(l) as { event: string }).event)).toEqual(['publish.retrying']);
      expect(lines.join('\n')).not.toContain('do-not-log');
    });

    it('retries a fault after history stored a caller-chosen id; history dedupes it, so there is still one entry', async () => {
      const w = await world();
      await w.online('alice');
      const clients = freshClients();
      // The event item is written, then the stream items fail: the retry finds the id stored.
      const dynamo = injectFaults(clients.dynamo, 'BatchWriteItemCommand', 1);
      const publisher = w.publisher({ clients });

      const result = await publisher.publish({ id: newEventId(), to: { users: ['alice'] }, event: 'message', data: 1 });

      expect(dynamo.calls()).toBe(2);
      // The first attempt stored the id, so the retry's append reports it as already there.
      expect(result).toMatchObject({ online: 1, duplicate: true });
      expect(await replayIds(w, 'alice')).toEqual([result.id]);
      await eventually(() => w.delivered().includes(result.id), DEADLINE_MS, 'the delivery');
    });

    it('retries a failed history write of a minted id: one entry, not a duplicate', async () => {
      const w = await world();
      await w.online('alice');
      const clients = freshClients();
      const dynamo = injectFaults(clients.dynamo, 'BatchWriteItemCommand', 1);
      const publisher = w.publisher({ clients });

      const result = await publisher.publish({ to: { users: ['alice'] }, event: 'message', data: 1 });

      expect(dynamo.calls()).toBe(2);
      expect(result).toMatchObject({ online: 1, duplicate: false });
      expect(await replayIds(w, 'alice')).toEqual([result.id]);
      await eventually(() => w.delivered().includes(result.id), DEADLINE_MS, 'the delivery');
    });

    it.each([
      ['once: SNS sends it again within the same attempt', 1, 0],
      ['every time: the attempt fails naming its index, and the retry sends only that message', 3, 1],
    ] as const)('re-sends a PublishBatch entry SNS refused %s', async (_what, refusals, retries) => {
      const w = await world();
      await w.online('alice');
      await w.owners.heartbeat('node-b', Date.now() + 120_000);
      await w.online('bob', 'node-b');
      const clients = freshClients();
      const sent: string[][] = [];
      let left: number = refusals;
      // SNS refuses node-b's entry without publishing it, as it does for a throttled or failed entry.
      clients.sns.middlewareStack.add(
        (next, context) => async (args) => {
          const input = args.input as { PublishBatchRequestEntries?: PublishBatchRequestEntry[]; MessageAttributes?: Record<string, { StringValue?: string }> };
          const entries = input.PublishBatchRequestEntries;
          if (context.commandName === 'PublishCommand') sent.push([input.MessageAttributes?.node?.StringValue ?? '']);
          if (context.commandName !== 'PublishBatchCommand' || !entries) return next(args);
          sent.push(entries.map((e) => e.MessageAttributes?.node?.StringValue ?? ''));
          const refused = left > 0 ? entries.filter((e) => e.MessageAttributes?.node?.StringValue === 'node-b') : [];
          if (refused.length > 0) left--;
          input.PublishBatchRequestEntries = entries.filter((e) => !refused.includes(e));
          const result = await next(args);
          const output = result.output as { Failed?: Array<{ Id: string; Code: string; SenderFault: boolean }> };
          output.Failed = [...(output.Failed ?? []), ...refused.map((e) => ({ Id: e.Id!, Code: 'InternalError', SenderFault: false }))];
          return result;
        },
        { step: 'initialize', name: 'refuse-node-b' },
      );
      const lines: string[] = [];
      const publisher = w.publisher({ clients, publisherId: 'tight', settings: { publishRate: { perSecond: 0.1, burst: 2 } }, log: createLogger({ level: 'debug', sink: (line) => lines.push(line) }) });

      const results = await publisher.publishBatch([
        { to: { users: ['alice'] }, event: 'message', data: 1 },
        { to: { users: ['bob'] }, event: 'message', data: 2 },
      ]);

      expect(results.map((r) => [r.online, r.duplicate])).toEqual([[1, false], [1, false]]);
      // node-a's message went out once, in the first request; node-b's until it was accepted.
      expect(sent.flat().filter((n) => n === 'node-a')).toHaveLength(1);
      expect(sent.flat().filter((n) => n === 'node-b')).toHaveLength(refusals + 1);
      const retried = lines.map((l) => JSON.parse(l) as { event: string; index?: number }).filter((l) => l.event === 'publish.retrying');
      expect(retried.map((l) => l.index)).toEqual(retries === 0 ? [] : [1]);
      await eventually(() => w.delivered().includes(results[0]!.id), DEADLINE_MS, "alice's delivery");
      const sentinel = await w.publisher().publish({ to: { users: ['alice'] }, event: 'sentinel', data: null });
      await eventually(() => w.delivered().includes(sentinel.id), DEADLINE_MS, 'the sentinel');
      expect(w.inbox.messages.filter((m) => m.kind === 'deliver' && m.events.some((e) => e.id === results[0]!.id))).toHaveLength(1);
      // The budget of 2 was charged once, however many attempts: the next notification is denied.
      expect((await refusal(publisher.publish({ to: { users: ['alice'] }, event: 'message', data: 3 }))).code).toBe('rate_limited');
    });

    it('throws unavailable after a few attempts, naming the index in a batch; history keeps what was stored', async () => {
      const w = await world();
      const clients = freshClients();
      const sns = injectFaults(clients.sns, 'PublishCommand', Number.POSITIVE_INFINITY);
      await w.online('alice');
      const publisher = w.publisher({ clients });

      const single = await refusal(publisher.publish({ to: { users: ['alice'] }, event: 'message', data: 1 }));
      expect(single.code).toBe('unavailable');
      expect(single.details.index).toBeUndefined();
      expect(sns.calls()).toBe(3);
      const batch = await refusal(publisher.publishBatch([{ to: { users: ['alice'] }, event: 'message', data: 2 }]));
      expect(batch.toJSON()).toMatchObject({ error: 'unavailable', index: 0 });
      // Stored before the bus failed: a reconnecting tab replays them; the caller's retry with the ids it was told dedupes.
      const minted = [...single.details.ids!, ...batch.details.ids!];
      expect(minted).toHaveLength(2);
      expect(await replayIds(w, 'alice')).toEqual(minted);
    });
  });

  describe('lifecycle', () => {
    it('leaves clients it was given open on close, and refuses to publish once closed', async () => {
      const w = await world();
      const publisher = w.publisher();
      await publisher.close();
      await expect(publisher.publish({ to: { all: true }, event: 'message', data: 1 })).rejects.toThrow(/closed/);
      const after = await w.publisher().publish({ to: { all: true }, event: 'message', data: 1 });
      expect(after.recipients).toBe('all');
    });

    it('uses a send-only bus, which refuses to send once closed', async () => {
      const bus = new SnsBus({ sns: emulators.sns, topicArn: 'arn:aws:sns:us-east-1:000000000000:none' });
      expect('start' in bus).toBe(false);
      await bus.close();
      await expect(bus.send({ kind: 'replace', userId: 'u', connectionId: 'a', byConnectionId: 'b' }, 'all')).rejects.toMatchObject({ code: 'unavailable' });
    });
  });
});
