/**
 * The publisher library (`createPublisher`) against fauxqs and dynalite through
 * the real SDK: a node started in the test receives what it publishes, presence
 * comes from owner records claimed here, history is readable by DynamoHistory,
 * refusals carry their code, field and index, the budget lives in the table,
 * and transient faults are retried with the same ids.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { DeleteTopicCommand } from '@aws-sdk/client-sns';
import { DynamoHistory } from '../../services/adapters/aws/dynamo-history';
import { DynamoOwners } from '../../services/adapters/aws/dynamo-owners';
import { createAwsClients, type AwsClients } from '../../services/adapters/aws/sdk-clients';
import { SnsBus } from '../../services/adapters/aws/sns-bus';
import { SnsSqsBus } from '../../services/adapters/aws/sns-sqs-bus';
import { eventIdFloor, isEventId } from '../../services/protocol/event-id';
import { HeraldError } from '../../services/protocol/errors';
import { createPublisher, type PublisherOptions } from '../../services/publisher/create-publisher';
import { createLogger, silentLogger } from '../../services/shared/log';
import { DEADLINE_MS, Inbox } from '../contract/fixtures';
import { eventually } from '../support/deadline';
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
    delivered: () => inbox.keys().flatMap((key) => (key.startsWith('deliver:') ? [key.slice('deliver:'.length)] : [])),
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
      const received = w.inbox.messages.find((m) => m.kind === 'deliver' && m.event.id === result.id);
      expect(received).toMatchObject({ kind: 'deliver', event: { event: 'message', data: '{"fromUserId":"655093","text":"Hello 👋"}', to: { users: ['alice', 'bob'] } } });
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

    it('publishes a batch in order with one result per notification, and marks a republished id as a duplicate', async () => {
      const w = await world();
      await w.online('alice');
      const publisher = w.publisher();
      const envelopes = [1, 2, 3].map((n) => ({ to: { users: ['alice'] }, event: 'job.progress', data: { n } }));

      const results = await publisher.publishBatch(envelopes);

      expect(results.map((r) => r.online)).toEqual([1, 1, 1]);
      await eventually(() => results.every((r) => w.delivered().includes(r.id)), DEADLINE_MS, 'the three deliveries');
      expect(await replayIds(w, 'alice')).toEqual(results.map((r) => r.id));
      const again = await publisher.publish({ id: results[0]!.id, to: { users: ['alice'] }, event: 'job.progress', data: { n: 1 } });
      expect(again.duplicate).toBe(true);
      expect(await replayIds(w, 'alice')).toEqual(results.map((r) => r.id));
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
      expect(w.inbox.messages.filter((m) => m.kind === 'deliver' && m.event.id === result.id)).toHaveLength(1);
      expect(lines.map((l) => (JSON.parse(l) as { event: string }).event)).toEqual(['publish.retrying']);
      expect(lines.join('\n')).not.toContain('do-not-log');
    });

    it('retries a fault after history stored the id; history dedupes it, so there is still one entry', async () => {
      const w = await world();
      await w.online('alice');
      const clients = freshClients();
      // The event item is written, then the stream items fail: the retry finds the id stored.
      const dynamo = injectFaults(clients.dynamo, 'BatchWriteItemCommand', 1);
      const publisher = w.publisher({ clients });

      const result = await publisher.publish({ to: { users: ['alice'] }, event: 'message', data: 1 });

      expect(dynamo.calls()).toBe(2);
      // The first attempt stored the id, so the retry's append reports it as already there.
      expect(result).toMatchObject({ online: 1, duplicate: true });
      expect(await replayIds(w, 'alice')).toEqual([result.id]);
      await eventually(() => w.delivered().includes(result.id), DEADLINE_MS, 'the delivery');
    });

    it('charges the budget once however many attempts a batch takes, and resumes without resending what was sent', async () => {
      const w = await world();
      await w.online('alice');
      const clients = freshClients();
      // Two faults: the second notification's send fails twice; the third attempt succeeds.
      let publishes = 0;
      clients.sns.middlewareStack.add(
        (next, context) => (args) => {
          if (context.commandName === 'PublishCommand' && ++publishes >= 2 && publishes <= 3) {
            return Promise.reject(Object.assign(new Error('injected'), { name: 'ThrottlingException', $metadata: { httpStatusCode: 400 } }));
          }
          return next(args);
        },
        { step: 'initialize', name: 'inject-second' },
      );
      const publisher = w.publisher({ clients, publisherId: 'tight', settings: { publishRate: { perSecond: 0.1, burst: 2 } } });

      const results = await publisher.publishBatch([1, 2].map((n) => ({ to: { users: ['alice'] }, event: 'message', data: n })));

      expect(publishes).toBe(4); // 1 (first, once) + 3 (second: two faults, then through)
      expect(results.map((r) => r.duplicate)).toEqual([false, false]);
      expect(await replayIds(w, 'alice')).toEqual(results.map((r) => r.id));
      // The budget of 2 was charged once: the next notification is denied, not the batch above.
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
      // Stored before the bus failed: a reconnecting tab replays them; the caller's retry dedupes.
      expect(await replayIds(w, 'alice')).toHaveLength(2);
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

    it('uses a send-only bus that cannot be started as a node', async () => {
      const bus = new SnsBus({ sns: emulators.sns, topicArn: 'arn:aws:sns:us-east-1:000000000000:none' });
      await expect(bus.start()).rejects.toThrow(/only sends/);
      await bus.close();
      await expect(bus.send({ kind: 'replace', userId: 'u', connectionId: 'a', byConnectionId: 'b' }, 'all')).rejects.toMatchObject({ code: 'unavailable' });
    });
  });
});
