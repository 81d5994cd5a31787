/**
 * The janitor (docs/operations.md, "The janitor"): removes the queues and
 * subscriptions of nodes whose heartbeat expired — crashed tasks, which never
 * ran their own clean-up — and nothing else. A queue goes only when all hold:
 *
 * - its name is `<prefix>_<nodeId>`, and that node's heartbeat lapsed (by more
 *   than `heartbeatGraceMs`) or the node has no item at all;
 * - it is older than `queueGraceMs` (a node that just made its queue is safe);
 * - it carries Herald's tags naming this topic and that node: the prefix alone
 *   cannot tell `herald-<node>` from another stack's `herald-prod-<node>`;
 * - the node's item, read again just before, still says it is dead.
 *
 * Then: unsubscribe first (SNS keeps retrying deliveries to a deleted queue),
 * delete the queue, delete the node item only if it is still expired. A
 * subscription of this topic to a `<prefix>_…` queue of this account that no
 * longer exists, whose node is dead, goes too. Every step accepts "already
 * gone"; a failure is logged and the sweep goes on with the next queue.
 */
import { DeleteItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { UnsubscribeCommand, type SNSClient } from '@aws-sdk/client-sns';
import { DeleteQueueCommand, GetQueueAttributesCommand, GetQueueUrlCommand, ListQueueTagsCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { CONDITION_FAILED, conditional, keys, mapLimit, n } from '../adapters/aws/dynamo-items';
import { nodeIdOfQueueName, nodeQueueNamePrefix } from '../adapters/aws/bus-naming';
import { NODE_QUEUE_TAGS, isAlreadyGone } from '../adapters/aws/node-queue';
import { systemClock, type Clock } from '../ports/clock';
import type { Logger } from '../shared/log';
import { listQueues, listSubscriptions, readHeartbeats, type ListedQueue, type Subscription } from './inventory';

export interface JanitorDeps {
  readonly sns: SNSClient;
  readonly sqs: SQSClient;
  readonly dynamo: DynamoDBClient;
  readonly topicArn: string;
  readonly tableName: string;
  /** Node queues are `<queuePrefix>_<nodeId>`. */
  readonly queuePrefix: string;
  readonly log: Logger;
  /** @default the system clock */
  readonly clock?: Clock;
  /** A queue younger than this is never removed, whatever its heartbeat says. @default 300000 (5 minutes) */
  readonly queueGraceMs?: number;
  /**
   * How long past its heartbeat's expiry a node still counts as alive: a
   * process paused for a moment must not come back to find its queue deleted.
   * @default 60000
   */
  readonly heartbeatGraceMs?: number;
}

export type SkipReason =
  /** The node's heartbeat has not lapsed. */
  | 'alive'
  /** The queue is younger than `queueGraceMs`. */
  | 'young'
  /** No `herald:topic` tag: not provably a queue of this deployment. */
  | 'untagged'
  /** `herald:topic` names another topic: another deployment's queue under a longer prefix. */
  | 'other_topic'
  /** `herald:node` is not the node id in the queue's name. */
  | 'tag_mismatch'
  /** What follows the prefix is not a node id. */
  | 'not_a_node_queue'
  /** It vanished while the sweep looked at it (the node's own close, another sweep). */
  | 'gone'
  /** A subscription whose queue was not listed, yet exists (made after the listing). */
  | 'queue_exists'
  /** A subscription to a `<prefix>_…` queue of another account or region. */
  | 'other_account';

export interface SweepReport {
  readonly removedQueues: { readonly queueName: string; readonly nodeId: string; readonly nodeItemRemoved: boolean }[];
  /** Every subscription removed: with its queue, or an orphan whose queue was already gone. */
  readonly removedSubscriptions: { readonly subscriptionArn: string; readonly queueName: string; readonly nodeId: string; readonly orphan: boolean }[];
  /** Queues (by name) and subscriptions (by ARN) under the prefix that were left, and why. */
  readonly skipped: { readonly target: string; readonly reason: SkipReason; readonly nodeId?: string }[];
  readonly failed: { readonly target: string; readonly step: string; readonly error: string }[];
}

export const DEFAULT_QUEUE_GRACE_MS = 5 * 60_000;
export const DEFAULT_HEARTBEAT_GRACE_MS = 60_000;
/** Queues handled at once: quick after a mass crash, gentle on the APIs. */
const CONCURRENCY = 4;
const GONE = Symbol('gone');

interface Run {
  readonly deps: JanitorDeps;
  readonly clock: Clock;
  readonly heartbeatGraceMs: number;
  readonly queueGraceMs: number;
  readonly report: SweepReport;
}

export async function sweep(deps: JanitorDeps): Promise<SweepReport> {
  const run: Run = {
    deps,
    clock: deps.clock ?? systemClock,
    heartbeatGraceMs: deps.heartbeatGraceMs ?? DEFAULT_HEARTBEAT_GRACE_MS,
    queueGraceMs: deps.queueGraceMs ?? DEFAULT_QUEUE_GRACE_MS,
    report: { removedQueues: [], removedSubscriptions: [], skipped: [], failed: [] },
  };
  // Subscriptions first: a node makes its queue before it subscribes it, so the
  // queue of every subscription listed here existed before the queues are listed.
  const subscriptions = await listSubscriptions(deps.sns, deps.topicArn);
  const queues = await listQueues(deps.sqs, deps.queuePrefix);
  const heartbeats = await readHeartbeats(deps.dynamo, deps.tableName);

  const byEndpoint = new Map<string, Subscription[]>();
  for (const sub of subscriptions) byEndpoint.set(sub.endpoint, [...(byEndpoint.get(sub.endpoint) ?? []), sub]);
  await mapLimit(queues, CONCURRENCY, (queue) => sweepQueue(run, queue, heartbeats, byEndpoint));

  const listed = new Set(queues.map((q) => q.queueName));
  const unlisted = subscriptions.filter((sub) => {
    const name = queueNameOf(sub, deps.queuePrefix);
    return name !== undefined && !listed.has(name);
  });
  await mapLimit(unlisted, CONCURRENCY, (sub) => sweepOrphan(run, sub, heartbeats));

  const { report } = run;
  deps.log.info('janitor.swept', {
    queues: queues.length,
    subscriptions: subscriptions.length,
    removedQueues: report.removedQueues.map((q) => q.queueName),
    removedSubscriptions: report.removedSubscriptions.length,
    skipped: report.skipped.length,
    failed: report.failed.length,
  });
  return report;
}

async function sweepQueue(run: Run, queue: ListedQueue, heartbeats: ReadonlyMap<string, number>, byEndpoint: ReadonlyMap<string, Subscription[]>): Promise<void> {
  const { deps, report } = run;
  const { queueName, queueUrl } = queue;
  const nodeId = nodeIdOfQueueName(deps.queuePrefix, queueName);
  if (nodeId === undefined) return skip(run, queueName, 'not_a_node_queue');
  if (!isDead(run, heartbeats, nodeId)) return skip(run, queueName, 'alive', nodeId);
  let step = 'sqs.getQueueAttributes';
  try {
    const read = await unlessGone(() => deps.sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['CreatedTimestamp', 'QueueArn'] })));
    if (read === GONE) return skip(run, queueName, 'gone', nodeId);
    const createdAtMs = Number(read.Attributes?.CreatedTimestamp) * 1000; // SQS: epoch seconds
    const queueArn = read.Attributes?.QueueArn;
    if (!Number.isFinite(createdAtMs) || queueArn === undefined) throw new Error('the queue has no CreatedTimestamp or QueueArn');
    if (createdAtMs > run.clock() - run.queueGraceMs) return skip(run, queueName, 'young', nodeId);

    step = 'sqs.listQueueTags';
    const tagged = await unlessGone(() => deps.sqs.send(new ListQueueTagsCommand({ QueueUrl: queueUrl })));
    if (tagged === GONE) return skip(run, queueName, 'gone', nodeId);
    const notOurs = ownership(tagged.Tags ?? {}, deps.topicArn, nodeId);
    if (notOurs !== undefined) return skip(run, queueName, notOurs, nodeId);

    step = 'dynamodb.query';
    // Read again: the node may have heartbeated since the sweep began.
    const fresh = await readHeartbeats(deps.dynamo, deps.tableName, nodeId);
    if (!isDead(run, fresh, nodeId)) return skip(run, queueName, 'alive', nodeId);

    step = 'sns.unsubscribe';
    for (const sub of byEndpoint.get(queueArn) ?? []) {
      await unsubscribe(deps.sns, sub.subscriptionArn);
      report.removedSubscriptions.push({ subscriptionArn: sub.subscriptionArn, queueName, nodeId, orphan: false });
    }
    step = 'sqs.deleteQueue';
    await unlessGone(() => deps.sqs.send(new DeleteQueueCommand({ QueueUrl: queueUrl })));
    step = 'dynamodb.deleteItem';
    const nodeItemRemoved = fresh.has(nodeId) && (await deleteNodeItem(run, nodeId));
    report.removedQueues.push({ queueName, nodeId, nodeItemRemoved });
    deps.log.info('janitor.queue_removed', { queueName, nodeId, nodeItemRemoved });
  } catch (error) {
    fail(run, queueName, step, error);
  }
}

/** A subscription to a `<prefix>_…` queue that was not listed: removed if that queue is gone and its node dead. */
async function sweepOrphan(run: Run, sub: Subscription, heartbeats: ReadonlyMap<string, number>): Promise<void> {
  const { deps, report } = run;
  const target = sub.subscriptionArn;
  const queueName = queueNameOf(sub, deps.queuePrefix)!;
  // Only a queue of the topic's own account and region can be judged by this account's queue list.
  if (sub.endpoint !== sameAccountQueueArn(deps.topicArn, queueName)) return skip(run, target, 'other_account');
  const nodeId = nodeIdOfQueueName(deps.queuePrefix, queueName);
  if (nodeId === undefined) return skip(run, target, 'not_a_node_queue');
  if (!isDead(run, heartbeats, nodeId)) return skip(run, target, 'alive', nodeId);
  let step = 'sqs.getQueueUrl';
  try {
    // ListQueues is eventually consistent; this lookup is not.
    const exists = await unlessGone(() => deps.sqs.send(new GetQueueUrlCommand({ QueueName: queueName })));
    if (exists !== GONE) return skip(run, target, 'queue_exists', nodeId);
    step = 'sns.unsubscribe';
    await unsubscribe(deps.sns, sub.subscriptionArn);
    report.removedSubscriptions.push({ subscriptionArn: sub.subscriptionArn, queueName, nodeId, orphan: true });
    deps.log.info('janitor.subscription_removed', { subscriptionArn: sub.subscriptionArn, queueName, nodeId });
  } catch (error) {
    fail(run, target, step, error);
  }
}

function isDead(run: Run, heartbeats: ReadonlyMap<string, number>, nodeId: string): boolean {
  const expiresAtMs = heartbeats.get(nodeId);
  return expiresAtMs === undefined || expiresAtMs + run.heartbeatGraceMs <= run.clock();
}

/** Why a queue's tags do not prove it is this deployment's queue of `nodeId`, or undefined when they do. */
function ownership(tags: Record<string, string>, topicArn: string, nodeId: string): SkipReason | undefined {
  const topic = tags[NODE_QUEUE_TAGS.topic];
  if (topic === undefined) return 'untagged';
  if (topic !== topicArn) return 'other_topic';
  return tags[NODE_QUEUE_TAGS.node] === nodeId ? undefined : 'tag_mismatch';
}

/** The queue name of an SQS subscription whose queue is named under the prefix; undefined for anything else. */
function queueNameOf(sub: Subscription, queuePrefix: string): string | undefined {
  if (sub.protocol !== 'sqs' || sub.subscriptionArn === 'PendingConfirmation') return undefined;
  const parts = sub.endpoint.split(':');
  const name = parts[5];
  return parts.length === 6 && parts[2] === 'sqs' && name?.startsWith(nodeQueueNamePrefix(queuePrefix)) ? name : undefined;
}

/** `arn:<partition>:sqs:<region>:<account>:<name>`, from the topic's `arn:<partition>:sns:<region>:<account>:<topic>`. */
function sameAccountQueueArn(topicArn: string, queueName: string): string {
  const [arn, partition, , region, account] = topicArn.split(':');
  return `${arn}:${partition}:sqs:${region}:${account}:${queueName}`;
}

async function unsubscribe(sns: SNSClient, subscriptionArn: string): Promise<void> {
  await unlessGone(() => sns.send(new UnsubscribeCommand({ SubscriptionArn: subscriptionArn })));
}

/** Deletes the node item only while it is still expired: a node that came back keeps it. */
async function deleteNodeItem(run: Run, nodeId: string): Promise<boolean> {
  const { dynamo, tableName, log } = run.deps;
  const deleted = await conditional('dynamodb.deleteItem', () =>
    dynamo.send(
      new DeleteItemCommand({
        TableName: tableName,
        Key: keys.node(nodeId),
        ConditionExpression: '#e <= :lapsed',
        ExpressionAttributeNames: { '#e': 'e' },
        ExpressionAttributeValues: { ':lapsed': n(run.clock() - run.heartbeatGraceMs) },
      }),
    ),
  );
  if (deleted !== CONDITION_FAILED) return true;
  log.warn('janitor.node_returned', { nodeId });
  return false;
}

async function unlessGone<T>(send: () => Promise<T>): Promise<T | typeof GONE> {
  try {
    return await send();
  } catch (error) {
    if (isAlreadyGone(error)) return GONE;
    throw error;
  }
}

function skip(run: Run, target: string, reason: SkipReason, nodeId?: string): void {
  run.report.skipped.push({ target, reason, ...(nodeId === undefined ? {} : { nodeId }) });
  // Live queues are the usual case; only the unusual reasons are worth a line.
  if (reason !== 'alive' && reason !== 'young') run.deps.log.info('janitor.skipped', { target, reason, nodeId });
}

function fail(run: Run, target: string, step: string, error: unknown): void {
  run.report.failed.push({ target, step, error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) });
  run.deps.log.error('janitor.step_failed', { target, step, error });
}
