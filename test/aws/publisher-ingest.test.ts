/**
 * Publishing by SNS, end to end on the emulators: a service publishes a
 * `POST /publish` body to the ingest topic, SNS puts it in the ingest queue,
 * and the publisher's handler — given the queue's messages as Lambda's event
 * source mapping gives them — runs publish(): history, presence, routing to
 * the node process holding the user. A tab that was away replays it.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { DeleteTopicCommand, PublishCommand, SubscribeCommand } from '@aws-sdk/client-sns';
import {
  CreateQueueCommand,
  DeleteMessageCommand,
  DeleteQueueCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  type Message,
} from '@aws-sdk/client-sqs';
import { eventIdFloor } from '../../services/protocol/event-id';
import type { IngestEvent, IngestRecord, IngestResponse } from '../../services/publisher/ingest';
import { createHandler, type PublishHandler } from '../../services/publisher/lambda';
import { createLogger } from '../../services/shared/log';
import { buildEntryPoint, type BuiltEntry } from '../support/child-node';
import { startCluster, type Cluster } from '../../scripts/fleet/cluster';
import { connectUser } from '../support/sse-client';
import { eventually } from '../../scripts/fleet/deadline';
import type { SseStream } from '../support/sse-client';
import { startEmulators, unique, type Emulators } from './emulators';
import { metricOf } from '../support/prometheus-text';

let emulators: Emulators;
let entry: BuiltEntry;
const running: Cluster[] = [];

beforeAll(async () => {
  [emulators, entry] = await Promise.all([startEmulators(), buildEntryPoint()]);
});

afterEach(async () => {
  await Promise.all(running.splice(0).map((c) => c.stop()));
});

afterAll(async () => {
  await emulators.stop();
  entry.dispose();
});

type LogLine = { event: string; [field: string]: unknown };

interface Deployment {
  readonly cluster: Cluster;
  readonly lines: LogLine[];
  /** A service's publish to the ingest topic: `body` as JSON, or a string as it is. */
  publish(body: unknown): Promise<void>;
  /** What Lambda's event source mapping does: receive a batch, invoke the handler, delete what it did not hand back. */
  pump(options?: { handler?: PublishHandler; invocations?: number }): Promise<{ records: IngestRecord[]; responses: IngestResponse[] }>;
  handler(env?: Record<string, string>): PublishHandler;
}

/** One node process, the bus and the table as the stack makes them, and an ingest topic feeding a queue (raw delivery). */
async function deployment(): Promise<Deployment> {
  const label = unique('in');
  const cluster = await startCluster({
    emulators,
    entry: entry.path,
    nodeIds: ['a'],
    tableName: `${label}-table`,
    topicName: `${label}-topic`,
    queuePrefix: label,
    env: { HERALD_DRAIN_MS: '0' },
  });
  running.push(cluster);
  const ingestTopic = await emulators.createTopic(`${label}-ingest`);
  const { QueueUrl: queueUrl } = await emulators.sqs.send(new CreateQueueCommand({ QueueName: `${label}-ingest`, Attributes: { VisibilityTimeout: '1' } }));
  const { Attributes } = await emulators.sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }));
  await emulators.sns.send(
    new SubscribeCommand({ TopicArn: ingestTopic, Protocol: 'sqs', Endpoint: Attributes!.QueueArn!, Attributes: { RawMessageDelivery: 'true' } }),
  );
  onTestFinished(async () => {
    await emulators.sqs.send(new DeleteQueueCommand({ QueueUrl: queueUrl }));
    await emulators.sns.send(new DeleteTopicCommand({ TopicArn: ingestTopic }));
  });
  const lines: LogLine[] = [];
  const log = createLogger({ level: 'debug', sink: (line) => lines.push(JSON.parse(line) as LogLine) });
  // The function's environment as the stack sets it, pointed at the emulators.
  const env = { ...emulators.env(), HERALD_TOPIC_ARN: cluster.topicArn, HERALD_TABLE_NAME: cluster.tableName };
  const handler = (extra: Record<string, string> = {}): PublishHandler =>
    createHandler({ ...env, ...extra }, { log, clientOptions: { credentials: emulators.credentials, maxAttempts: 1 }, retry: { attempts: 2, firstDelayMs: 10, maxDelayMs: 10 } });
  const standing = handler();
  const received = async (): Promise<Message[]> => {
    const { Messages } = await emulators.sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, MessageSystemAttributeNames: ['All'] }));
    return Messages ?? [];
  };
  return {
    cluster,
    lines,
    handler,
    publish: async (body) => {
      await emulators.sns.send(new PublishCommand({ TopicArn: ingestTopic, Message: typeof body === 'string' ? body : JSON.stringify(body) }));
    },
    pump: async ({ handler: using = standing, invocations = 1 } = {}) => {
      let messages: Message[] = [];
      await eventually(async () => (messages = await received()).length > 0, 5_000, 'a message in the ingest queue');
      const records: IngestRecord[] = messages.map((m) => ({
        messageId: m.MessageId!,
        body: m.Body!,
        eventSource: 'aws:sqs',
        attributes: { SentTimestamp: m.Attributes?.SentTimestamp, ApproximateReceiveCount: m.Attributes?.ApproximateReceiveCount },
      }));
      const event: IngestEvent = { Records: records };
      const responses: IngestResponse[] = [];
      // More than one invocation with the same batch: a Lambda that timed out after publishing, and the batch delivered again.
      for (let i = 0; i < invocations; i++) responses.push(await using(event));
      const failed = new Set(responses.flatMap((r) => r.batchItemFailures.map((f) => f.itemIdentifier)));
      for (const m of messages) if (!failed.has(m.MessageId!)) await emulators.sqs.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: m.ReceiptHandle! }));
      return { records, responses };
    },
  };
}

async function connect(d: Deployment, userId: string, lastEventId?: string): Promise<SseStream> {
  const { stream } = await connectUser(d.cluster.node('a').url, await d.cluster.token(userId), userId, lastEventId === undefined ? {} : { lastEventId });
  return stream;
}

const notifications = (stream: SseStream) => stream.notifications().map((e) => ({ id: e.id, event: e.event, data: JSON.parse(e.data) as unknown }));

describe('publishing through the ingest topic', () => {
  it('stores, routes and delivers what a service publishes to the topic, and replays it to a tab that was away', async () => {
    const d = await deployment();
    const alice = await connect(d, 'alice');

    // Live: the node holding alice gets it over the bus.
    await d.publish({ to: { users: ['alice', 'bob'] }, event: 'message', data: { text: 'while online' } });
    const { responses } = await d.pump();
    expect(responses).toEqual([{ batchItemFailures: [] }]);
    const live = await alice.waitFor((e) => e.event === 'message', 'the live notification', { timeoutMs: 5_000 });
    expect(JSON.parse(live.data)).toEqual({ text: 'while online' });
    // Presence was looked up as for any publish: alice online, bob not.
    expect(d.lines.find((l) => l.event === 'publish.done')).toMatchObject({ source: 'ingest', publisherId: 'ingest', notifications: 1, offline: 1 });

    // Away: published while alice has no stream, so it reaches history only.
    alice.close();
    await eventually(async () => (await metricOf(d.cluster.node('a').url, 'herald_connections')) === 0, 5_000, 'the stream closed on the node');
    await d.publish({ notifications: [{ to: { users: ['alice'] }, event: 'message', data: { text: 'while away' } }], publisher: 'billing' });
    await d.pump();

    const back = await connect(d, 'alice', live.id);
    await back.waitFor((e) => e.event === 'message', 'the replayed notification', { timeoutMs: 5_000 });
    expect(notifications(back)).toEqual([{ id: expect.any(String) as string, event: 'message', data: { text: 'while away' } }]);
    expect(notifications(back)[0]!.id! > live.id!).toBe(true);
    expect(d.lines.filter((l) => l.event === 'publish.done').map((l) => l.publisherId)).toEqual(['ingest', 'billing']);
  });

  it('stores a message delivered twice once, and sends it again under the same id, which a client drops as seen', async () => {
    const d = await deployment();
    const before = eventIdFloor(Date.now() - 1_000);
    const alice = await connect(d, 'alice');

    await d.publish({ to: { users: ['alice'] }, event: 'message', data: { text: 'once' } });
    const { responses } = await d.pump({ invocations: 2 });
    await d.publish({ to: { users: ['alice'] }, event: 'sentinel', data: {} });
    await d.pump();

    await alice.waitFor((e) => e.event === 'sentinel', 'the sentinel after the repeat', { timeoutMs: 5_000 });
    expect(responses).toEqual([{ batchItemFailures: [] }, { batchItemFailures: [] }]);
    // A second delivery is sent on as any retried publish is (the first may have failed before the bus), with the same id.
    const [first, second, sentinel] = notifications(alice);
    expect([first?.event, second?.event, sentinel?.event]).toEqual(['message', 'message', 'sentinel']);
    expect(second?.id).toBe(first?.id);
    expect(d.lines.filter((l) => l.event === 'publish.done').map((l) => l.duplicates)).toEqual([0, 1, 0]);
    // History holds it once too.
    alice.close();
    const again = await connect(d, 'alice', before);
    await again.waitFor((e) => e.event === 'sentinel', 'the whole replay', { timeoutMs: 5_000 });
    expect(notifications(again).map((n) => n.event)).toEqual(['message', 'sentinel']);
  });

  it('drops a message it must refuse, logging none of it, and hands back one it could not publish', async () => {
    const d = await deployment();

    await d.publish({ to: { users: ['alice'] }, event: 'not a name!', data: { text: 'secret-ingest-body' } });
    expect((await d.pump()).responses).toEqual([{ batchItemFailures: [] }]);
    await d.publish('not json secret-ingest-body');
    expect((await d.pump()).responses).toEqual([{ batchItemFailures: [] }]);
    expect(d.lines.filter((l) => l.event === 'ingest.refused').map((l) => [l.code, l.field, l.kind])).toEqual([
      ['event_name_invalid', 'event', 'envelope'],
      ['json_invalid', undefined, undefined],
    ]);
    expect(JSON.stringify(d.lines)).not.toContain('secret-ingest-body');

    // A table that is not there: the publish fails, and the message goes back to the queue.
    await d.publish({ to: { users: ['alice'] }, event: 'message', data: {} });
    const failing = await d.pump({ handler: d.handler({ HERALD_TABLE_NAME: unique('missing') }) });
    expect(failing.responses).toEqual([{ batchItemFailures: failing.records.map((r) => ({ itemIdentifier: r.messageId })) }]);
    const retried = await d.pump();
    expect(retried.records.map((r) => r.messageId)).toEqual(failing.records.map((r) => r.messageId));
    expect(retried.responses).toEqual([{ batchItemFailures: [] }]);
  });
});
