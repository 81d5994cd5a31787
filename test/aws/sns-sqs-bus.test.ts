/**
 * The SNS→SQS bus against fauxqs through the real SDK clients: the shared bus
 * contract, then what only this adapter has — its queue, subscription and
 * filter, redelivery, malformed input, and an outage behind a TCP proxy.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { DeleteTopicCommand, GetSubscriptionAttributesCommand, ListSubscriptionsByTopicCommand, PublishCommand, UnsubscribeCommand, type SNSClient } from '@aws-sdk/client-sns';
import {
  CreateQueueCommand,
  DeleteQueueCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  ListQueueTagsCommand,
  ReceiveMessageCommand,
  type Message,
  type QueueAttributeName,
} from '@aws-sdk/client-sqs';
import { closeNodeQueue, nodeQueueAttributes, openNodeQueue } from '../../services/adapters/aws/node-queue';
import { nodeQueueName } from '../../services/adapters/aws/bus-naming';
import { createAwsClients, type AwsClients } from '../../services/adapters/aws/sdk-clients';
import { SnsSqsBus, type SnsSqsBusOptions } from '../../services/adapters/aws/sns-sqs-bus';
import type { Bus, BusHandler, BusMessage } from '../../services/ports/bus';
import { encodeBusProbe } from '../../services/adapters/aws/bus-probe';
import { HeraldError } from '../../services/protocol/errors';
import { createLogger, silentLogger, type Logger } from '../../services/shared/log';
import { describeBusContract } from '../contract/bus.contract';
import { DEADLINE_MS, EventBuilder, Inbox, manualClock, messageKey } from '../contract/fixtures';
import { eventually, withDeadline } from '../../scripts/fleet/deadline';
import { startTcpProxy } from '../support/tcp-proxy';
import { startEmulators, unique, type Emulators } from './emulators';

let emulators: Emulators;
/** The bus's clients, made the way production makes them (timeouts, endpoint overrides). */
let clients: AwsClients;

beforeAll(async () => {
  emulators = await startEmulators();
  clients = createAwsClients(emulators.env(), { credentials: emulators.credentials });
});

afterAll(async () => {
  clients.sns.destroy();
  clients.sqs.destroy();
  clients.dynamo.destroy();
  await emulators.stop();
});

describeBusContract('sns-sqs', {
  ordered: false,
  create: async (context) => {
    const topicArn = await emulators.createTopic(`${context.prefix}-topic`);
    return {
      bus: () => Promise.resolve(new SnsSqsBus({ sns: clients.sns, sqs: clients.sqs, topicArn, queuePrefix: context.prefix, log: silentLogger })),
      cleanup: async () => {
        await emulators.sns.send(new DeleteTopicCommand({ TopicArn: topicArn }));
      },
    };
  },
});

interface LogLine {
  readonly event: string;
  readonly level: string;
  readonly [field: string]: unknown;
}

function captureLog(): { log: Logger; lines: LogLine[]; count: (event: string) => number } {
  const lines: LogLine[] = [];
  const log = createLogger({ level: 'debug', sink: (line) => lines.push(JSON.parse(line) as LogLine) });
  return { log, lines, count: (event) => lines.filter((l) => l.event === event).length };
}

/** A topic and a queue prefix for this test only, and buses that are closed when it ends. */
async function network(): Promise<{
  topicArn: string;
  queuePrefix: string;
  events: EventBuilder;
  bus: (options?: Partial<SnsSqsBusOptions>) => SnsSqsBus;
}> {
  const topicArn = await emulators.createTopic(unique('topic'));
  const queuePrefix = unique('q');
  const made: Bus[] = [];
  onTestFinished(async () => {
    await Promise.all(made.map((b) => b.close()));
    await emulators.sns.send(new DeleteTopicCommand({ TopicArn: topicArn }));
  });
  return {
    topicArn,
    queuePrefix,
    events: new EventBuilder(manualClock()),
    bus: (options = {}) => {
      const bus = new SnsSqsBus({ sns: clients.sns, sqs: clients.sqs, topicArn, queuePrefix, log: silentLogger, ...options });
      made.push(bus);
      return bus;
    },
  };
}

const deliver = (event: ReturnType<EventBuilder['to']>): BusMessage => ({ kind: 'deliver', events: [event] });

async function queueTags(queueUrl: string): Promise<Record<string, string>> {
  const { Tags } = await emulators.sqs.send(new ListQueueTagsCommand({ QueueUrl: queueUrl }));
  return Tags ?? {};
}

async function queueAttributes(queueUrl: string, names: QueueAttributeName[]): Promise<Record<string, string>> {
  const { Attributes } = await emulators.sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: names }));
  return Attributes ?? {};
}

/** Messages neither waiting nor in flight: everything received was deleted. */
async function queueIsEmpty(queueUrl: string): Promise<boolean> {
  const a = await queueAttributes(queueUrl, ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible']);
  return a.ApproximateNumberOfMessages === '0' && a.ApproximateNumberOfMessagesNotVisible === '0';
}

async function publishRaw(topicArn: string, body: string, attributes: Record<string, string>): Promise<void> {
  const MessageAttributes = Object.fromEntries(Object.entries(attributes).map(([k, v]) => [k, { DataType: 'String', StringValue: v }]));
  await emulators.sns.send(new PublishCommand({ TopicArn: topicArn, Message: body, MessageAttributes }));
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => 'resolved',
    (error: unknown) => error,
  );
}

describe('SnsSqsBus on fauxqs', () => {
  describe('the node queue', () => {
    it('is <prefix>_<nodeId>, with short retention, long polling, SSE-SQS, and a policy that lets only the topic send and refuses anyone without TLS', async () => {
      const { bus, topicArn, queuePrefix } = await network();
      await bus().start('node-a', () => Promise.resolve());

      const { QueueUrl } = await emulators.sqs.send(new GetQueueUrlCommand({ QueueName: nodeQueueName(queuePrefix, 'node-a') }));
      const attributes = await queueAttributes(QueueUrl!, [
        'QueueArn',
        'MessageRetentionPeriod',
        'ReceiveMessageWaitTimeSeconds',
        'VisibilityTimeout',
        'SqsManagedSseEnabled',
        'Policy',
      ]);
      expect(attributes).toMatchObject({
        MessageRetentionPeriod: '300',
        ReceiveMessageWaitTimeSeconds: '20',
        VisibilityTimeout: '10',
        SqsManagedSseEnabled: 'true',
      });
      expect(JSON.parse(attributes.Policy!)).toEqual({
        Version: '2012-10-17',
        Statement: [
          {
            Sid: 'HeraldTopicOnly',
            Effect: 'Allow',
            Principal: { Service: 'sns.amazonaws.com' },
            Action: 'sqs:SendMessage',
            Resource: attributes.QueueArn,
            Condition: { ArnEquals: { 'aws:SourceArn': topicArn } },
          },
          {
            Sid: 'HeraldTlsOnly',
            Effect: 'Deny',
            Principal: '*',
            Action: 'sqs:*',
            Resource: attributes.QueueArn,
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          },
        ],
      });
    });

    it('is tagged with its topic and node id, which is what lets the janitor tell it from another stack’s queue', async () => {
      const { bus, topicArn } = await network();
      const node = bus();
      await node.start('node-a', () => Promise.resolve());

      expect(await queueTags(node.nodeQueue!.queueUrl)).toEqual({ 'herald:topic': topicArn, 'herald:node': 'node-a' });
    });

    it('is subscribed with raw delivery and a filter on node: its own id, all, or no node attribute', async () => {
      const { bus, topicArn } = await network();
      const node = bus();
      await node.start('node-a', () => Promise.resolve());

      const { Subscriptions } = await emulators.sns.send(new ListSubscriptionsByTopicCommand({ TopicArn: topicArn }));
      expect(Subscriptions?.map((s) => ({ arn: s.SubscriptionArn, protocol: s.Protocol, endpoint: s.Endpoint }))).toEqual([
        { arn: node.nodeQueue?.subscriptionArn, protocol: 'sqs', endpoint: node.nodeQueue?.queueArn },
      ]);
      const { Attributes } = await emulators.sns.send(new GetSubscriptionAttributesCommand({ SubscriptionArn: node.nodeQueue?.subscriptionArn }));
      expect(Attributes?.RawMessageDelivery).toBe('true');
      expect(Attributes?.FilterPolicyScope).toBe('MessageAttributes');
      expect(JSON.parse(Attributes?.FilterPolicy ?? 'null')).toEqual({ node: ['node-a', 'all', { exists: false }] });
    });

    it('is taken over by a node that starts again with the same id, with its attributes brought up to date', async () => {
      const { topicArn, queuePrefix } = await network();
      const options = { sns: clients.sns, sqs: clients.sqs, topicArn, queuePrefix, nodeId: 'node-a' };
      const first = await openNodeQueue(options);
      const again = await openNodeQueue(options);
      expect(again).toEqual(first);

      // Same name, other attributes: CreateQueue refuses, so the queue is updated in place.
      const changed = await openNodeQueue({ ...options, visibilityTimeoutSeconds: 5 });
      expect(changed).toEqual(first);
      expect(await queueAttributes(first.queueUrl, ['VisibilityTimeout'])).toEqual({ VisibilityTimeout: '5' });
      await closeNodeQueue(clients.sns, clients.sqs, first);
      // Already gone is fine: a janitor, or a close that was retried.
      await closeNodeQueue(clients.sns, clients.sqs, first);
    });

    it('tags a queue it takes over that was made without tags', async () => {
      const { topicArn, queuePrefix } = await network();
      // As an older node made it (fauxqs cannot set SqsManagedSseEnabled afterwards, so only the timeout differs).
      const Attributes = { ...nodeQueueAttributes({}), VisibilityTimeout: '7' };
      await emulators.sqs.send(new CreateQueueCommand({ QueueName: nodeQueueName(queuePrefix, 'node-b'), Attributes }));

      const queue = await openNodeQueue({ sns: clients.sns, sqs: clients.sqs, topicArn, queuePrefix, nodeId: 'node-b' });
      onTestFinished(() => closeNodeQueue(clients.sns, clients.sqs, queue));

      expect(await queueTags(queue.queueUrl)).toEqual({ 'herald:topic': topicArn, 'herald:node': 'node-b' });
      expect(await queueAttributes(queue.queueUrl, ['VisibilityTimeout'])).toEqual({ VisibilityTimeout: '10' });
    });

    it('is unsubscribed and deleted by close, which is idempotent', async () => {
      const { bus, topicArn, queuePrefix } = await network();
      const node = bus();
      await node.start('node-a', () => Promise.resolve());
      const queue = node.nodeQueue!;

      await node.close();
      await node.close();

      const lookup = await rejection(emulators.sqs.send(new GetQueueUrlCommand({ QueueName: nodeQueueName(queuePrefix, 'node-a') })));
      expect((lookup as Error).name).toBe('QueueDoesNotExist');
      const { Subscriptions } = await emulators.sns.send(new ListSubscriptionsByTopicCommand({ TopicArn: topicArn }));
      expect(Subscriptions?.filter((s) => s.SubscriptionArn === queue.subscriptionArn)).toEqual([]);
    });

    it('is made and subscribed again when it vanishes (the janitor took the node for dead), and the node is told it may have missed messages', async () => {
      const { bus, events, topicArn, queuePrefix } = await network();
      const { log, count } = captureLog();
      const inbox = new Inbox('node-a');
      let missed = 0;
      const node = bus({ log, waitTimeSeconds: 1 });
      await node.start('node-a', inbox.handler, () => missed++);
      const before = node.nodeQueue!;

      // What the janitor does to a dead node: unsubscribe, delete the queue.
      await emulators.sns.send(new UnsubscribeCommand({ SubscriptionArn: before.subscriptionArn }));
      await emulators.sqs.send(new DeleteQueueCommand({ QueueUrl: before.queueUrl }));
      const lost = deliver(events.to(['alice']));
      await node.send(lost, { node: 'node-a' }); // no subscription: gone for the bus, not for history

      await eventually(() => missed === 1, DEADLINE_MS, 'the bus to make its queue again and tell the node');
      expect([count('bus.queue_missing'), count('bus.queue_restored')]).toEqual([1, 1]);
      const after = node.nodeQueue!;
      expect(after.queueUrl).toBe(before.queueUrl);
      const { QueueUrl } = await emulators.sqs.send(new GetQueueUrlCommand({ QueueName: nodeQueueName(queuePrefix, 'node-a') }));
      expect(QueueUrl).toBe(after.queueUrl);
      const { Subscriptions } = await emulators.sns.send(new ListSubscriptionsByTopicCommand({ TopicArn: topicArn }));
      expect(Subscriptions?.map((sub) => sub.SubscriptionArn)).toContain(after.subscriptionArn);

      const sentinel = deliver(events.to(['alice']));
      await node.send(sentinel, { node: 'node-a' });
      await inbox.waitFor(sentinel);
      expect(inbox.has(lost)).toBe(false);
      expect(missed).toBe(1);
    });

    it('stops its long polls at once on close instead of waiting out the 20 s poll', async () => {
      const { bus } = await network();
      const node = bus({ waitTimeSeconds: 20 });
      await node.start('node-a', () => Promise.resolve());
      await new Promise((resolve) => setTimeout(resolve, 100)); // the polls are now waiting inside fauxqs

      const started = Date.now();
      await node.close();
      expect(Date.now() - started).toBeLessThan(1_000);
    });
  });

  describe('routing', () => {
    it('never puts a message for node A in node B’s queue (counted at the queue, not the handler)', async () => {
      const { bus, events, topicArn, queuePrefix } = await network();
      const a = new Inbox('node-a');
      await bus().start('node-a', a.handler);
      // Node B is only a queue here, so whatever SNS put in it can be read back.
      const b = await openNodeQueue({ sns: clients.sns, sqs: clients.sqs, topicArn, queuePrefix, nodeId: 'node-b' });
      onTestFinished(() => closeNodeQueue(clients.sns, clients.sqs, b));
      const publisher = bus();

      const forA = Array.from({ length: 10 }, () => deliver(events.to(['alice'])));
      for (const message of forA) await publisher.send(message, { node: 'node-a' });
      const sentinelEvent = events.to(['bob']);
      await publisher.send(deliver(sentinelEvent), { node: 'node-b' });

      const inB: Message[] = [];
      await withDeadline(
        (async () => {
          while (!inB.some((m) => m.Body?.includes(sentinelEvent.id))) {
            const { Messages } = await emulators.sqs.send(new ReceiveMessageCommand({ QueueUrl: b.queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
            inB.push(...(Messages ?? []));
          }
        })(),
        DEADLINE_MS,
        'the sentinel in node B’s queue',
      );
      await a.waitForAll(forA, 'a message for node A');
      expect(inB.map((m) => m.Body)).toEqual([expect.stringContaining(sentinelEvent.id)]);
    });

    it('deletes each message once its handler resolved, leaving the queue empty', async () => {
      const { bus, events } = await network();
      const inbox = new Inbox('node-a');
      const node = bus();
      await node.start('node-a', inbox.handler);
      const sent = Array.from({ length: 25 }, () => deliver(events.to(['alice'])));
      await Promise.all(sent.map((m) => node.send(m, { node: 'node-a' })));

      await inbox.waitForAll(sent, 'a message');
      await eventually(() => queueIsEmpty(node.nodeQueue!.queueUrl), DEADLINE_MS, 'an empty queue');
    });

    it('pools the deletes of messages that arrived one per receive into batches', async () => {
      const { bus, events } = await network();
      const own = createAwsClients(emulators.env(), { credentials: emulators.credentials });
      onTestFinished(() => [own.sns, own.sqs, own.dynamo].forEach((c) => c.destroy()));
      const deletes: number[] = [];
      const receives: number[] = [];
      own.sqs.middlewareStack.add(
        (next, context) => async (args) => {
          const result = await next(args);
          if (context.commandName === 'DeleteMessageBatchCommand') deletes.push((args.input as { Entries: unknown[] }).Entries.length);
          if (context.commandName === 'ReceiveMessageCommand') receives.push((result.output as { Messages?: unknown[] }).Messages?.length ?? 0);
          return result;
        },
        { step: 'initialize', name: 'count-deletes' },
      );
      const inbox = new Inbox('node-a');
      const node = bus({ sqs: own.sqs });
      await node.start('node-a', inbox.handler);
      deletes.splice(0);
      receives.splice(0);
      // A trickle: each long poll comes back with one message.
      const sent = Array.from({ length: 10 }, () => deliver(events.to(['alice'])));
      for (const message of sent) {
        await node.send(message, { node: 'node-a' });
        await inbox.waitFor(message, 'the message');
      }

      await eventually(() => queueIsEmpty(node.nodeQueue!.queueUrl), DEADLINE_MS, 'an empty queue');
      expect(receives.filter((n) => n > 0)).toHaveLength(10);
      // The start's probe may still be in the first batch.
      expect(deletes.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(10);
      // One delete per receive would be 10 requests.
      expect(deletes.length).toBeLessThan(5);
    });

    it('delivers an envelope published straight to the topic, with no node attribute and no Herald wrapper, to every started node', async () => {
      const { bus, events, topicArn } = await network();
      const [a, b] = [new Inbox('node-a'), new Inbox('node-b')];
      await bus().start('node-a', a.handler);
      await bus().start('node-b', b.handler);

      const id = events.nextId();
      // Some attribute, just not `node`: on AWS, {"exists": false} matches only a
      // message that has at least one attribute (SNS "Key matching"); fauxqs is laxer.
      await publishRaw(topicArn, JSON.stringify({ id, to: { users: ['alice'] }, event: 'invoice.paid', data: { amount: 12 } }), { source: 'billing' });
      const broadcastId = events.nextId();
      await publishRaw(topicArn, JSON.stringify({ id: broadcastId, to: { all: true }, event: 'maintenance', data: 'soon' }), { node: 'all' });

      const expected = deliver(events.to(['alice'], { id }));
      const expectedBroadcast = deliver(events.toAll({ id: broadcastId }));
      for (const inbox of [a, b]) {
        const [got, gotBroadcast] = await inbox.waitForAll([expected, expectedBroadcast], 'a direct envelope');
        expect(got).toMatchObject({ kind: 'deliver', events: [{ id, event: 'invoice.paid', data: '{"amount":12}', to: { users: ['alice'] } }] });
        expect(gotBroadcast).toMatchObject({ kind: 'deliver', events: [{ id: broadcastId, data: '"soon"', to: { all: true } }] });
      }
    });

    it('sends a deliver too big for one SNS message as several, split by recipients, that together reach every user', async () => {
      const { bus, events } = await network();
      const parts: BusMessage[] = [];
      const node = bus();
      await node.start('node-a', (message) => {
        parts.push(message);
        return Promise.resolve();
      });
      const users = Array.from({ length: 1000 }, (_, i) => `user-${String(i).padStart(4, '0')}-${'u'.repeat(110)}`);
      const big = deliver(events.to(users, { data: { text: 'x'.repeat(150 * 1024) } }));

      await node.send(big, { node: 'node-a' });

      const received = (): string[] => parts.flatMap((p) => (p.kind === 'deliver' ? p.events.flatMap((e) => ('users' in e.to ? [...e.to.users] : [])) : []));
      await eventually(() => new Set(received()).size === users.length, DEADLINE_MS, 'every recipient of the split message');
      expect(new Set(parts.map(messageKey))).toEqual(new Set([messageKey(big)]));
      expect(parts.length).toBeGreaterThan(1);
    });
  });

  describe('faults', () => {
    it('redelivers a message whose handler rejected, after the visibility timeout', async () => {
      const { bus, events } = await network();
      const message = deliver(events.to(['alice']));
      const calls: number[] = [];
      const node = bus({ visibilityTimeoutSeconds: 1 });
      await node.start('node-a', (got) => {
        if (messageKey(got) !== messageKey(message)) return Promise.resolve();
        calls.push(Date.now());
        return calls.length === 1 ? Promise.reject(new Error('handler failed on purpose')) : Promise.resolve();
      });

      await node.send(message, { node: 'node-a' });

      await eventually(() => calls.length >= 2, DEADLINE_MS, 'the redelivery');
      expect(calls[1]! - calls[0]!).toBeGreaterThanOrEqual(900);
      await eventually(() => queueIsEmpty(node.nodeQueue!.queueUrl), DEADLINE_MS, 'the redelivered message deleted');
    });

    it('deletes and logs a malformed message, without its body or the refusal text that quotes it, and keeps receiving', async () => {
      const { bus, events, topicArn } = await network();
      const { log, lines, count } = captureLog();
      const inbox = new Inbox('node-a');
      const node = bus({ log });
      await node.start('node-a', inbox.handler);

      await publishRaw(topicArn, 'not json: secret-body-123', { node: 'node-a' });
      await publishRaw(topicArn, JSON.stringify({ v: 1, kind: 'deliver', secret: 'secret-body-123' }), { node: 'all' });
      // The refusal's own message quotes these: `unknown version "…"`, `unknown field "…"`.
      await publishRaw(topicArn, JSON.stringify({ v: 'secret-body-123', kind: 'drain' }), { node: 'all' });
      await publishRaw(topicArn, JSON.stringify({ v: 1, kind: 'drain', 'secret-body-123': true }), { node: 'all' });
      const sentinel = deliver(events.to(['alice']));
      await node.send(sentinel, { node: 'node-a' });

      await inbox.waitFor(sentinel, 'the sentinel');
      await eventually(() => count('bus.message_malformed') === 4, DEADLINE_MS, 'four malformed-message logs');
      expect(inbox.messages.map(messageKey)).toEqual([messageKey(sentinel)]);
      expect(JSON.stringify(lines)).not.toContain('secret-body-123');
      expect(lines.find((l) => l.event === 'bus.message_malformed')).toMatchObject({ level: 'warn', messageId: expect.any(String) as string });
      expect(lines.filter((l) => l.event === 'bus.message_malformed').map((l) => l.code).sort()).toEqual([
        'envelope_invalid',
        'envelope_invalid',
        'envelope_invalid',
        'json_invalid',
      ]);
      await eventually(() => queueIsEmpty(node.nodeQueue!.queueUrl), DEADLINE_MS, 'the malformed messages deleted');
    });

    it('rejects sends with unavailable while SNS/SQS are unreachable, backs off without crashing, and receives again on its own once they are back', async () => {
      const { topicArn, queuePrefix, events } = await network();
      const proxy = await startTcpProxy(emulators.snsEndpoint);
      onTestFinished(() => proxy.close());
      const env = { ...emulators.env(), AWS_ENDPOINT_URL_SNS: proxy.url, AWS_ENDPOINT_URL_SQS: proxy.url };
      const proxied = createAwsClients(env, { credentials: emulators.credentials, maxAttempts: 2 });
      const { log, lines, count } = captureLog();
      const node = new SnsSqsBus({
        sns: proxied.sns,
        sqs: proxied.sqs,
        topicArn,
        queuePrefix,
        log,
        // Short, so the polls fauxqs still holds for the cut connections end quickly and
        // a message one of them takes comes back soon.
        waitTimeSeconds: 1,
        visibilityTimeoutSeconds: 1,
        backoff: { firstMs: 50, maxMs: 400 },
      });
      onTestFinished(async () => {
        await node.close();
        proxied.sns.destroy();
        proxied.sqs.destroy();
      });
      const inbox = new Inbox('node-a');
      await node.start('node-a', inbox.handler);
      const before = deliver(events.to(['alice']));
      await node.send(before, { node: 'node-a' });
      await inbox.waitFor(before, 'a message before the outage');

      proxy.block();
      const refused = await rejection(node.send(deliver(events.to(['alice'])), { node: 'node-a' }));
      expect(refused).toBeInstanceOf(HeraldError);
      expect((refused as HeraldError).code).toBe('unavailable');
      await eventually(() => count('bus.receive_failed') >= 6, DEADLINE_MS, 'pollers failing and retrying');
      const failing = count('bus.receive_failed');
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      // Backing off: at most a few attempts per poller per second, not a hot loop.
      expect(count('bus.receive_failed') - failing).toBeLessThan(3 * 12);
      // A publisher that still reaches SNS leaves a message in the queue meanwhile.
      const duringOutage = deliver(events.to(['alice']));
      await new SnsSqsBus({ sns: clients.sns, sqs: clients.sqs, topicArn, queuePrefix, log: silentLogger }).send(duringOutage, { node: 'node-a' });

      proxy.unblock();
      await inbox.waitFor(duringOutage, 'the message sent during the outage');
      const after = deliver(events.to(['alice']));
      await node.send(after, { node: 'node-a' });
      await inbox.waitFor(after, 'a message sent after the outage');
      expect(count('bus.recovered')).toBeGreaterThanOrEqual(1);
      expect(lines.find((l) => l.event === 'bus.receive_failed')).toMatchObject({ level: 'warn', error: expect.anything() as unknown });
    });
  });

  describe('confirming delivery at start', () => {
    /**
     * An SNS client that swallows the first `drop` probes (answering as SNS would,
     * without publishing): the subscription "not delivering yet" that AWS's
     * eventually consistent filter policies can give a new node.
     */
    function droppingProbes(drop: number): { sns: SNSClient; probes: () => number } {
      const own = createAwsClients(emulators.env(), { credentials: emulators.credentials });
      own.sqs.destroy();
      own.dynamo.destroy();
      onTestFinished(() => own.sns.destroy());
      let probes = 0;
      own.sns.middlewareStack.add(
        (next) => async (args) => {
          const input = args.input as { Message?: string };
          if (input.Message?.includes('"kind":"probe"') === true && ++probes <= drop) {
            return { output: { MessageId: `dropped-${probes}`, $metadata: {} }, response: {} };
          }
          return next(args);
        },
        { step: 'initialize', name: 'dropProbes' },
      );
      return { sns: own.sns, probes: () => probes };
    }

    it('starts only once a probe came back through its subscription, sending it again until one does', async () => {
      const { bus, events } = await network();
      const { sns, probes } = droppingProbes(2);
      const { log, lines, count } = captureLog();
      const inbox = new Inbox('node-a');
      const node = bus({ sns, log, probe: { intervalMs: 100, timeoutMs: 10_000 } });

      await node.start('node-a', inbox.handler);

      expect(probes()).toBe(3);
      expect(count('bus.probe_waiting')).toBe(2);
      expect(lines.find((l) => l.event === 'bus.started')).toMatchObject({ nodeId: 'node-a', probes: 3 });
      const sentinel = deliver(events.to(['alice']));
      await node.send(sentinel, { node: 'node-a' });
      await inbox.waitFor(sentinel);
      expect(inbox.messages).toEqual([sentinel]);
    });

    it('fails to start with unavailable when no probe comes back in time, and still cleans up on close', async () => {
      const { bus, queuePrefix } = await network();
      const { sns } = droppingProbes(Number.POSITIVE_INFINITY);
      const node = bus({ sns, probe: { intervalMs: 50, timeoutMs: 300 } });

      const error = await rejection(node.start('node-a', () => Promise.resolve()));
      expect(error).toBeInstanceOf(HeraldError);
      expect((error as HeraldError).code).toBe('unavailable');
      await node.close();
      const lookup = await rejection(emulators.sqs.send(new GetQueueUrlCommand({ QueueName: nodeQueueName(queuePrefix, 'node-a') })));
      expect(String(lookup)).toMatch(/QueueDoesNotExist|NonExistentQueue/);
    });

    it('drops a probe of another start (same node id) without passing it to the handler', async () => {
      const { bus, events, topicArn } = await network();
      const inbox = new Inbox('node-a');
      const node = bus();
      await node.start('node-a', inbox.handler);

      await publishRaw(topicArn, encodeBusProbe('an-older-start'), { node: 'node-a' });
      const sentinel = deliver(events.to(['alice']));
      await node.send(sentinel, { node: 'node-a' });
      await inbox.waitFor(sentinel);
      expect(inbox.messages).toEqual([sentinel]);
      await eventually(() => queueIsEmpty(node.nodeQueue!.queueUrl), DEADLINE_MS, 'the stray probe to be deleted');
    });
  });

  describe('start and send', () => {
    it('refuses a node id that cannot name a queue, and a second start', async () => {
      const { bus } = await network();
      const handler: BusHandler = () => Promise.resolve();
      for (const bad of ['all', 'node.a', 'x'.repeat(41)]) await expect(bus().start(bad, handler)).rejects.toThrow(/node id/);
      const node = bus();
      await node.start('node-a', handler);
      await expect(node.start('node-a', handler)).rejects.toThrow(/already started/);
    });

    it('refuses to start once closed', async () => {
      const { bus } = await network();
      const node = bus();
      await node.close();
      const error = await rejection(node.start('node-a', () => Promise.resolve()));
      expect(error).toBeInstanceOf(HeraldError);
      expect((error as HeraldError).code).toBe('unavailable');
    });
  });
});
