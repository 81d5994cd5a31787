/**
 * The janitor against fauxqs and dynalite: it removes the queue, subscription
 * and node item of a crashed node and nothing else — not a live node's, not a
 * young queue's, not a queue under the prefix that is not provably this
 * deployment's — plus subscriptions left pointing at deleted queues. Its clock
 * runs ten minutes ahead, so queues made now are past the five-minute grace.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { DeleteTopicCommand, ListSubscriptionsByTopicCommand, SubscribeCommand } from '@aws-sdk/client-sns';
import { CreateQueueCommand, DeleteQueueCommand, GetQueueAttributesCommand, GetQueueUrlCommand } from '@aws-sdk/client-sqs';
import { build } from 'esbuild';
import { DynamoOwners } from '../../services/adapters/aws/dynamo-owners';
import { NODE_QUEUE_TAGS, openNodeQueue, type NodeQueue } from '../../services/adapters/aws/node-queue';
import { nodeQueueName } from '../../services/adapters/aws/bus-naming';
import { createAwsClients, type AwsClients } from '../../services/adapters/aws/sdk-clients';
import { SnsBus } from '../../services/adapters/aws/sns-bus';
import { SnsSqsBus } from '../../services/adapters/aws/sns-sqs-bus';
import { sweep, type JanitorDeps, type SweepReport } from '../../services/janitor/janitor';
import { createJanitorHandler } from '../../services/janitor/lambda';
import { createLogger, silentLogger } from '../../services/shared/log';
import { DEADLINE_MS, Inbox } from '../contract/fixtures';
import { eventually } from '../../scripts/fleet/deadline';
import { startEmulators, unique, type Emulators } from './emulators';

const MINUTE_MS = 60_000;
/** The janitor's now: queues fauxqs made a moment ago are ten minutes old to it. */
const ahead = (): number => Date.now() + 10 * MINUTE_MS;

let emulators: Emulators;

beforeAll(async () => {
  emulators = await startEmulators();
});

afterAll(async () => {
  await emulators.stop();
});

interface Deployment {
  readonly topicArn: string;
  readonly tableName: string;
  readonly queuePrefix: string;
  readonly clients: AwsClients;
  readonly owners: DynamoOwners;
  /** The janitor's dependencies, its clock ten minutes ahead. */
  readonly deps: JanitorDeps;
  /** A running node: its bus started, its heartbeat ahead of the janitor's clock. */
  liveNode(nodeId: string, inbox?: Inbox): Promise<SnsSqsBus>;
  /**
   * A node that crashed: its queue and subscription made and left, nothing polling them (a
   * running bus would make a deleted queue again), its heartbeat expired five minutes before the janitor's now.
   */
  crashedNode(nodeId: string): Promise<NodeQueue>;
  queueExists(queueName: string): Promise<boolean>;
  subscriptionArns(topicArn?: string): Promise<string[]>;
  nodeItemExists(nodeId: string): Promise<boolean>;
}

async function deployment(): Promise<Deployment> {
  const topicArn = await emulators.createTopic(unique('topic'));
  const tableName = unique('jan');
  const queuePrefix = unique('jq');
  await emulators.createTable(tableName);
  const clients = createAwsClients(emulators.env(), { credentials: emulators.credentials });
  const owners = new DynamoOwners({ client: emulators.dynamo, tableName });
  const buses: SnsSqsBus[] = [];
  onTestFinished(async () => {
    await Promise.all(buses.map((b) => b.close()));
    await emulators.sns.send(new DeleteTopicCommand({ TopicArn: topicArn }));
    for (const client of [clients.sns, clients.sqs, clients.dynamo]) client.destroy();
  });
  const start = async (nodeId: string, heartbeatMs: number, inbox?: Inbox): Promise<SnsSqsBus> => {
    await owners.heartbeat(nodeId, heartbeatMs);
    const bus = new SnsSqsBus({ sns: emulators.sns, sqs: emulators.sqs, topicArn, queuePrefix, log: silentLogger, waitTimeSeconds: 1 });
    buses.push(bus);
    await bus.start(nodeId, inbox?.handler ?? (() => Promise.resolve()));
    return bus;
  };
  return {
    topicArn,
    tableName,
    queuePrefix,
    clients,
    owners,
    deps: { ...clients, topicArn, tableName, queuePrefix, log: silentLogger, clock: ahead },
    liveNode: (nodeId, inbox) => start(nodeId, ahead() + 2 * MINUTE_MS, inbox),
    crashedNode: async (nodeId) => {
      await owners.heartbeat(nodeId, ahead() - 5 * MINUTE_MS);
      return openNodeQueue({ sns: emulators.sns, sqs: emulators.sqs, topicArn, queuePrefix, nodeId });
    },
    queueExists: (queueName) => queueExists(queueName),
    subscriptionArns: async (topic = topicArn) => {
      const { Subscriptions } = await emulators.sns.send(new ListSubscriptionsByTopicCommand({ TopicArn: topic }));
      return (Subscriptions ?? []).map((s) => s.SubscriptionArn!);
    },
    nodeItemExists: async (nodeId) => {
      const { Item } = await emulators.dynamo.send(
        new GetItemCommand({ TableName: tableName, Key: { pk: { S: 'nodes' }, sk: { S: `node#${nodeId}` } }, ConsistentRead: true }),
      );
      return Item !== undefined;
    },
  };
}

async function queueExists(queueName: string): Promise<boolean> {
  return emulators.sqs.send(new GetQueueUrlCommand({ QueueName: queueName })).then(
    () => true,
    (error: unknown) => {
      if ((error as Error).name === 'QueueDoesNotExist') return false;
      throw error;
    },
  );
}

const nothingRemoved = { removedQueues: [], removedSubscriptions: [], failed: [] };

describe('the janitor', () => {
  it('removes a crashed node’s subscription, queue and node item, and leaves a live node working', async () => {
    const d = await deployment();
    const inbox = new Inbox('live-1');
    const live = await d.liveNode('live-1', inbox);
    const crashed = await d.crashedNode('crashed-1');

    const report = await sweep(d.deps);

    expect(report).toMatchObject({
      removedQueues: [{ queueName: nodeQueueName(d.queuePrefix, 'crashed-1'), nodeId: 'crashed-1', nodeItemRemoved: true }],
      removedSubscriptions: [{ subscriptionArn: crashed.subscriptionArn, nodeId: 'crashed-1', orphan: false }],
      skipped: [{ target: nodeQueueName(d.queuePrefix, 'live-1'), reason: 'alive', nodeId: 'live-1' }],
      failed: [],
    });
    expect(await d.queueExists(nodeQueueName(d.queuePrefix, 'crashed-1'))).toBe(false);
    expect(await d.nodeItemExists('crashed-1')).toBe(false);
    expect(await d.subscriptionArns()).toEqual([live.nodeQueue!.subscriptionArn]);
    expect(await d.queueExists(nodeQueueName(d.queuePrefix, 'live-1'))).toBe(true);
    expect(await d.nodeItemExists('live-1')).toBe(true);
    // The live node still receives: its queue and subscription work.
    await new SnsBus({ sns: emulators.sns, topicArn: d.topicArn }).send({ kind: 'replace', userId: 'u', connectionId: 'c-1', byConnectionId: 'c-2' }, { node: 'live-1' });
    await eventually(() => inbox.messages.length === 1, DEADLINE_MS, 'a message for the live node');
  });

  it('does nothing on a second sweep', async () => {
    const d = await deployment();
    await d.liveNode('live-1');
    await d.crashedNode('crashed-1');
    await sweep(d.deps);

    const again = await sweep(d.deps);

    expect(again).toMatchObject({ ...nothingRemoved, skipped: [{ target: nodeQueueName(d.queuePrefix, 'live-1'), reason: 'alive' }] });
  });

  it('leaves the users of a node it removed costing a publisher no read of the node table per publish', async () => {
    const d = await deployment();
    await d.crashedNode('crashed-1');
    const now = ahead();
    // The crashed node's tab outlives it until its token expires, an hour on.
    await d.owners.claim({ userId: 'alice', connectionId: 'c-1', nodeId: 'crashed-1', connectedAtMs: now - MINUTE_MS, expiresAtMs: now + 60 * MINUTE_MS }, { mode: 'single' });
    expect(await sweep(d.deps)).toMatchObject({ removedQueues: [{ nodeId: 'crashed-1', nodeItemRemoved: true }], failed: [] });
    const metered = createAwsClients(emulators.env(), { credentials: emulators.credentials });
    onTestFinished(() => metered.dynamo.destroy());
    // A publisher's clock that stays within one node cache period: any further read is one the cache did not save.
    const publisher = new DynamoOwners({ client: metered.dynamo, tableName: d.tableName, clock: () => now });

    for (let i = 0; i < 10; i++) expect(await publisher.locate(['alice'])).toEqual(new Map());

    const usage = metered.meter.snapshot();
    expect(usage['DynamoDB.BatchGetItem']?.requests).toBe(10);
    // One read finds the node missing from a table read after alice's record: gone, not just started.
    expect(usage['DynamoDB.Query']?.requests).toBe(1);
  });

  it('leaves a young queue whose node has no heartbeat yet, and removes it once past the grace', async () => {
    const d = await deployment();
    const queue = await openNodeQueue({ sns: emulators.sns, sqs: emulators.sqs, topicArn: d.topicArn, queuePrefix: d.queuePrefix, nodeId: 'starting' });

    const now = await sweep({ ...d.deps, clock: () => Date.now() });
    expect(now).toMatchObject({ ...nothingRemoved, skipped: [{ target: nodeQueueName(d.queuePrefix, 'starting'), reason: 'young', nodeId: 'starting' }] });
    expect(await d.queueExists(nodeQueueName(d.queuePrefix, 'starting'))).toBe(true);

    const later = await sweep(d.deps);
    expect(later).toMatchObject({
      removedQueues: [{ nodeId: 'starting', nodeItemRemoved: false }],
      removedSubscriptions: [{ subscriptionArn: queue.subscriptionArn, orphan: false }],
      failed: [],
    });
  });

  it('leaves a node whose heartbeat lapsed less than the heartbeat grace ago', async () => {
    const d = await deployment();
    await d.owners.heartbeat('paused', ahead() - 30_000);
    await openNodeQueue({ sns: emulators.sns, sqs: emulators.sqs, topicArn: d.topicArn, queuePrefix: d.queuePrefix, nodeId: 'paused' });

    expect(await sweep(d.deps)).toMatchObject({ ...nothingRemoved, skipped: [{ reason: 'alive', nodeId: 'paused' }] });
  });

  it('leaves every queue under the prefix that is not provably its own: untagged, another stack’s, another node’s tag, not a node id', async () => {
    const d = await deployment();
    // Another stack whose prefix extends this one's (`herald` vs `herald-prod`): its queues are
    // `herald-prod_…`, which `herald_` does not list. And one given this very prefix, with its own topic.
    const otherTopic = await emulators.createTopic(unique('other'));
    onTestFinished(async () => {
      await emulators.sns.send(new DeleteTopicCommand({ TopicArn: otherTopic }));
    });
    const longerPrefix = await openNodeQueue({ sns: emulators.sns, sqs: emulators.sqs, topicArn: otherTopic, queuePrefix: `${d.queuePrefix}-prod`, nodeId: 'n1' });
    const samePrefix = await openNodeQueue({ sns: emulators.sns, sqs: emulators.sqs, topicArn: otherTopic, queuePrefix: d.queuePrefix, nodeId: 'n9' });
    const untagged = nodeQueueName(d.queuePrefix, 'untagged');
    const mismatched = nodeQueueName(d.queuePrefix, 'n2');
    const notANode = nodeQueueName(d.queuePrefix, 'x'.repeat(41));
    await emulators.sqs.send(new CreateQueueCommand({ QueueName: untagged }));
    await emulators.sqs.send(new CreateQueueCommand({ QueueName: mismatched, tags: { [NODE_QUEUE_TAGS.topic]: d.topicArn, [NODE_QUEUE_TAGS.node]: 'n3' } }));
    await emulators.sqs.send(new CreateQueueCommand({ QueueName: notANode, tags: { [NODE_QUEUE_TAGS.topic]: d.topicArn } }));

    const report = await sweep(d.deps);

    expect(report).toMatchObject(nothingRemoved);
    expect(Object.fromEntries(report.skipped.map((s) => [s.target, s.reason]))).toEqual({
      [nodeQueueName(d.queuePrefix, 'n9')]: 'other_topic',
      [untagged]: 'untagged',
      [mismatched]: 'tag_mismatch',
      [notANode]: 'not_a_node_queue',
    });
    const kept = [nodeQueueName(`${d.queuePrefix}-prod`, 'n1'), nodeQueueName(d.queuePrefix, 'n9'), untagged, mismatched, notANode];
    for (const name of kept) expect(await d.queueExists(name)).toBe(true);
    expect((await d.subscriptionArns(otherTopic)).sort()).toEqual([longerPrefix.subscriptionArn, samePrefix.subscriptionArn].sort());
  });

  it('removes a subscription left pointing at a deleted queue when its node is dead, and only then', async () => {
    const d = await deployment();
    const open = (nodeId: string): Promise<NodeQueue> =>
      openNodeQueue({ sns: emulators.sns, sqs: emulators.sqs, topicArn: d.topicArn, queuePrefix: d.queuePrefix, nodeId });
    const orphan = await open('gone-1');
    await emulators.sqs.send(new DeleteQueueCommand({ QueueUrl: orphan.queueUrl }));
    await d.owners.heartbeat('gone-1', 0); // as a node's own shutdown leaves it
    // Alive, yet its queue is missing (it is about to make it again): its subscription stays.
    const stillAlive = await open('alive-1');
    await d.owners.heartbeat('alive-1', ahead() + MINUTE_MS);
    await emulators.sqs.send(new DeleteQueueCommand({ QueueUrl: stillAlive.queueUrl }));
    // A subscription of the topic that is not a node queue's: not the janitor's business.
    const { QueueUrl: auditUrl } = await emulators.sqs.send(new CreateQueueCommand({ QueueName: unique('audit') }));
    onTestFinished(async () => {
      await emulators.sqs.send(new DeleteQueueCommand({ QueueUrl: auditUrl }));
    });
    const { Attributes } = await emulators.sqs.send(new GetQueueAttributesCommand({ QueueUrl: auditUrl, AttributeNames: ['QueueArn'] }));
    const { SubscriptionArn: audit } = await emulators.sns.send(
      new SubscribeCommand({ TopicArn: d.topicArn, Protocol: 'sqs', Endpoint: Attributes!.QueueArn!, ReturnSubscriptionArn: true }),
    );

    const report = await sweep(d.deps);

    expect(report).toMatchObject({
      removedQueues: [],
      removedSubscriptions: [{ subscriptionArn: orphan.subscriptionArn, queueName: nodeQueueName(d.queuePrefix, 'gone-1'), nodeId: 'gone-1', orphan: true }],
      skipped: [{ target: stillAlive.subscriptionArn, reason: 'alive', nodeId: 'alive-1' }],
      failed: [],
    });
    expect((await d.subscriptionArns()).sort()).toEqual([stillAlive.subscriptionArn, audit].sort());
    expect(await sweep(d.deps)).toMatchObject({ removedSubscriptions: [] });
  });

  describe('a node that comes back during the sweep', () => {
    it('keeps its queue when it heartbeats before the re-check', async () => {
      const d = await deployment();
      await d.crashedNode('lazarus');
      let queries = 0;
      d.clients.dynamo.middlewareStack.add(
        (next, context) => async (args) => {
          // The second Query is the re-check of this one node, just before any removal.
          if (context.commandName === 'QueryCommand' && ++queries === 2) await d.owners.heartbeat('lazarus', ahead() + MINUTE_MS);
          return next(args);
        },
        { step: 'initialize', name: 'comeBack' },
      );

      const report = await sweep(d.deps);

      expect(report).toMatchObject({ ...nothingRemoved, skipped: [{ reason: 'alive', nodeId: 'lazarus' }] });
      expect(await d.queueExists(nodeQueueName(d.queuePrefix, 'lazarus'))).toBe(true);
    });

    it('keeps its node item when it heartbeats after the queue was deleted', async () => {
      const d = await deployment();
      await d.crashedNode('lazarus');
      d.clients.dynamo.middlewareStack.add(
        (next, context) => async (args) => {
          if (context.commandName === 'DeleteItemCommand') await d.owners.heartbeat('lazarus', ahead() + MINUTE_MS);
          return next(args);
        },
        { step: 'initialize', name: 'comeBack' },
      );

      const report = await sweep(d.deps);

      expect(report).toMatchObject({ removedQueues: [{ nodeId: 'lazarus', nodeItemRemoved: false }], failed: [] });
      expect(await d.nodeItemExists('lazarus')).toBe(true);
    });
  });

  describe('faults', () => {
    it('takes a queue that vanished mid-sweep as gone, and logs a failing step and goes on with the next queue', async () => {
      const d = await deployment();
      await d.crashedNode('vanishing');
      await d.crashedNode('denied');
      await d.crashedNode('plain');
      d.clients.sqs.middlewareStack.add(
        (next, context) => async (args) => {
          const url = (args.input as { QueueUrl?: string }).QueueUrl ?? '';
          if (context.commandName === 'GetQueueAttributesCommand' && url.endsWith('_vanishing')) {
            await emulators.sqs.send(new DeleteQueueCommand({ QueueUrl: url })); // the node's own close got there first
          }
          if (context.commandName === 'ListQueueTagsCommand' && url.endsWith('_denied')) {
            throw Object.assign(new Error('not allowed'), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } });
          }
          return next(args);
        },
        { step: 'initialize', name: 'faults' },
      );
      const lines: { event: string }[] = [];
      const log = createLogger({ level: 'debug', sink: (line) => lines.push(JSON.parse(line) as { event: string }) });

      const report = await sweep({ ...d.deps, log });

      expect(report.removedQueues.map((q) => q.nodeId)).toEqual(['plain']);
      expect(report.skipped).toEqual([{ target: nodeQueueName(d.queuePrefix, 'vanishing'), reason: 'gone', nodeId: 'vanishing' }]);
      expect(report.failed).toEqual([{ target: nodeQueueName(d.queuePrefix, 'denied'), step: 'sqs.listQueueTags', error: 'AccessDenied: not allowed' }]);
      expect(lines.filter((l) => l.event === 'janitor.step_failed')).toHaveLength(1);
      // The subscription of the vanished queue is an orphan now; the next sweep removes it.
      const next = await sweep(d.deps);
      expect(next.removedSubscriptions).toMatchObject([{ nodeId: 'vanishing', orphan: true }]);
    });
  });
});

describe('the janitor Lambda', () => {
  function env(d: Deployment): Record<string, string> {
    return { ...emulators.env(), HERALD_TOPIC_ARN: d.topicArn, HERALD_TABLE_NAME: d.tableName, HERALD_QUEUE_PREFIX: d.queuePrefix };
  }

  it('sweeps with the settings of its environment and returns the report', async () => {
    const d = await deployment();
    await d.crashedNode('crashed-1');
    const handler = createJanitorHandler(env(d), { log: silentLogger, clientOptions: { credentials: emulators.credentials }, clock: ahead });

    const report: SweepReport = await handler();

    expect(report.removedQueues).toMatchObject([{ nodeId: 'crashed-1' }]);
    expect(await handler()).toMatchObject(nothingRemoved);
  });

  it('fails a run in which a step failed, after sweeping the rest', async () => {
    const d = await deployment();
    await d.crashedNode('denied');
    await d.crashedNode('plain');
    d.clients.sqs.middlewareStack.add(
      (next, context) => (args) => {
        if (context.commandName === 'DeleteQueueCommand' && (args.input as { QueueUrl: string }).QueueUrl.endsWith('_denied')) {
          return Promise.reject(Object.assign(new Error('not allowed'), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } }));
        }
        return next(args);
      },
      { step: 'initialize', name: 'deny' },
    );
    const handler = createJanitorHandler(env(d), { log: silentLogger, clients: d.clients, clock: ahead });

    await expect(handler()).rejects.toThrow(/1 step\(s\) failed, first sqs.deleteQueue on .*_denied/);
    expect(await d.queueExists(nodeQueueName(d.queuePrefix, 'plain'))).toBe(false);
  });

  it('fails every run with a message naming a missing or bad variable', async () => {
    const d = await deployment();
    const withoutPrefix = Object.fromEntries(Object.entries(env(d)).filter(([name]) => name !== 'HERALD_QUEUE_PREFIX'));
    const handler = createJanitorHandler(withoutPrefix, { log: silentLogger });
    for (let i = 0; i < 2; i++) await expect(handler()).rejects.toThrow(/HERALD_QUEUE_PREFIX: is required/);
    await expect(createJanitorHandler({ ...env(d), HERALD_QUEUE_PREFIX: 'bad.prefix' }, { log: silentLogger })()).rejects.toThrow(/HERALD_QUEUE_PREFIX/);
    await expect(createJanitorHandler({ ...env(d), HERALD_TOPIC_ARN: '' }, { log: silentLogger })()).rejects.toThrow(/HERALD_TOPIC_ARN/);
  });

  it('bundles with esbuild as the stack does, loads, and sweeps from process.env', async () => {
    const d = await deployment();
    await d.liveNode('live-1');
    const dir = await mkdtemp(join(tmpdir(), 'herald-janitor-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const outfile = join(dir, 'janitor.mjs');
    await build({
      entryPoints: ['services/janitor/lambda.ts'],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node22',
      outfile,
      logLevel: 'silent',
      mainFields: ['module', 'main'],
      banner: { js: "import { createRequire as __heraldCreateRequire } from 'node:module'; const require = __heraldCreateRequire(import.meta.url);" },
    });
    const saved = { ...process.env };
    onTestFinished(() => {
      for (const key of Object.keys(process.env)) if (!(key in saved)) Reflect.deleteProperty(process.env, key);
      Object.assign(process.env, saved);
    });
    Object.assign(process.env, env(d), { HERALD_LOG_LEVEL: 'error' });

    const bundle = (await import(pathToFileURL(outfile).href)) as { handler: () => Promise<SweepReport> };
    const report = await bundle.handler();

    expect(report).toMatchObject({ ...nothingRemoved, skipped: [{ reason: 'alive', nodeId: 'live-1' }] });
  });
});
