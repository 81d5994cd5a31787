/**
 * One node's SQS queue and its SNS subscription (docs/architecture.md, "Shapes",
 * AWS): autoscaled tasks cannot have queues made in advance, so a node
 * makes its own at start and removes it when it stops. A scheduled janitor
 * removes those of nodes that crashed.
 */
import { SubscribeCommand, UnsubscribeCommand, type SNSClient } from '@aws-sdk/client-sns';
import {
  CreateQueueCommand,
  DeleteQueueCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  SetQueueAttributesCommand,
  TagQueueCommand,
  type QueueAttributeName,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { ALL_NODES } from '../../protocol/bus-message';
import { NODE_ATTRIBUTE, nodeQueueName } from './bus-naming';
import { wrapSdkError } from './sdk-errors';

export interface NodeQueue {
  readonly queueUrl: string;
  readonly queueArn: string;
  readonly subscriptionArn: string;
}

export interface NodeQueueOptions {
  readonly sns: SNSClient;
  readonly sqs: SQSClient;
  readonly topicArn: string;
  readonly queuePrefix: string;
  readonly nodeId: string;
  /**
   * How long a received message stays hidden before it is delivered again when
   * its handler failed or the node died holding it. Handlers write to memory in
   * milliseconds, so a short one costs nothing, and it bounds how late a message
   * taken by a long poll that a network cut orphaned comes back (measured: ~30 s
   * with 30).
   * @default 10
   */
  readonly visibilityTimeoutSeconds?: number;
  /**
   * How long an unread message is kept. Five minutes: a message nobody read by
   * then is for streams that have reconnected elsewhere and replayed from
   * history, and a stuck node's backlog stays small.
   * @default 300
   */
  readonly retentionSeconds?: number;
}

/**
 * Messages for this node, for every node, and envelopes a service published
 * with no `node` attribute. Three values, well inside SNS's 150 combinations and
 * 5 keys per policy. Caution: on AWS `{"exists": false}` matches only a message
 * that carries at least one attribute (SNS "Key matching"), so a direct
 * publisher must send some attribute — `node=all` is the natural one.
 */
export function nodeFilterPolicy(nodeId: string): string {
  return JSON.stringify({ [NODE_ATTRIBUTE]: [nodeId, ALL_NODES, { exists: false }] });
}

/**
 * Only the topic may send to the queue: the SNS service principal, pinned to
 * the topic by aws:SourceArn. And nobody may use the queue without TLS: the
 * node's own calls carry event data both ways, and an Allow in the node's role
 * would otherwise let a misconfigured client read it over plain HTTP
 * (AwsSolutions-SQS4 asks the same of queues the CDK makes).
 */
export function nodeQueuePolicy(queueArn: string, topicArn: string): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      {
        Sid: 'HeraldTopicOnly',
        Effect: 'Allow',
        Principal: { Service: 'sns.amazonaws.com' },
        Action: 'sqs:SendMessage',
        Resource: queueArn,
        Condition: { ArnEquals: { 'aws:SourceArn': topicArn } },
      },
      {
        Sid: 'HeraldTlsOnly',
        Effect: 'Deny',
        Principal: '*',
        Action: 'sqs:*',
        Resource: queueArn,
        Condition: { Bool: { 'aws:SecureTransport': 'false' } },
      },
    ],
  });
}

/**
 * Tag keys that mark a queue as the node queue of one deployment. The janitor
 * deletes only queues whose `herald:topic` is its own topic: the `_` separator
 * keeps other stacks' prefixes apart, but two deployments given the same
 * prefix (another stack configured with it, a copy of the stack) would share names.
 */
export const NODE_QUEUE_TAGS = { topic: 'herald:topic', node: 'herald:node' } as const;

export function nodeQueueTags(topicArn: string, nodeId: string): Record<string, string> {
  return { [NODE_QUEUE_TAGS.topic]: topicArn, [NODE_QUEUE_TAGS.node]: nodeId };
}

export function nodeQueueAttributes(options: Pick<NodeQueueOptions, 'visibilityTimeoutSeconds' | 'retentionSeconds'>): Record<string, string> {
  return {
    MessageRetentionPeriod: String(options.retentionSeconds ?? 300),
    // The longest long poll SQS allows: fewest empty receives.
    ReceiveMessageWaitTimeSeconds: '20',
    VisibilityTimeout: String(options.visibilityTimeoutSeconds ?? 10),
    // SSE-SQS, not SSE-KMS with the AWS managed key, which SNS cannot use to send.
    SqsManagedSseEnabled: 'true',
  };
}

/** "A queue of that name exists with other attributes", under its JSON and its legacy query names. */
const QUEUE_EXISTS = ['QueueNameExists', 'QueueAlreadyExists'];
/** "No such queue", under its JSON name and its query name (`AWS.SimpleQueueService.NonExistentQueue`); fauxqs answers with both. */
const NO_QUEUE = ['QueueDoesNotExist', 'NonExistentQueue'];
/** "Already gone": SQS (JSON and query names) and SNS. */
const GONE = [...NO_QUEUE, 'NotFoundException', 'NotFound'];

/**
 * Whether an SDK error is one of `codes`. SQS speaks JSON but stays compatible
 * with its query API, so the same error may surface as `QueueNameExists`,
 * `AWS.SimpleQueueService.QueueNameExists` or the legacy `QueueAlreadyExists`,
 * in `name`, `Code` or `__type` (`com.amazonaws.sqs#QueueNameExists`).
 */
function isAwsError(error: unknown, codes: readonly string[]): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const fields = error as { name?: unknown; Code?: unknown; __type?: unknown };
  return [fields.name, fields.Code, fields.__type].some(
    (value) => typeof value === 'string' && codes.includes(value.replace(/^.*[#.]/, '')),
  );
}

/**
 * Creates the queue (or takes over this node id's queue left from a previous
 * run, bringing its attributes up to date), lets the topic send to it, and
 * subscribes it with raw delivery and the node's filter policy. Each call is
 * idempotent, so a retried start is harmless.
 */
export async function openNodeQueue(options: NodeQueueOptions): Promise<NodeQueue> {
  const { sns, sqs, topicArn } = options;
  const QueueName = nodeQueueName(options.queuePrefix, options.nodeId);
  const Attributes = nodeQueueAttributes(options);
  const tags = nodeQueueTags(topicArn, options.nodeId);
  let queueUrl: string | undefined;
  try {
    // Tagged as it is made (CreateQueue with tags needs sqs:TagQueue too). An existing queue with
    // the same attributes keeps its tags; one with other attributes is tagged below as it is taken over.
    ({ QueueUrl: queueUrl } = await sqs.send(new CreateQueueCommand({ QueueName, Attributes, tags })));
  } catch (error) {
    if (!isAwsError(error, QUEUE_EXISTS)) throw wrapSdkError(error, 'sqs.create_queue');
    try {
      ({ QueueUrl: queueUrl } = await sqs.send(new GetQueueUrlCommand({ QueueName })));
      if (queueUrl) {
        await updateAttributes(sqs, queueUrl, Attributes);
        await sqs.send(new TagQueueCommand({ QueueUrl: queueUrl, Tags: tags }));
      }
    } catch (retryError) {
      throw wrapSdkError(retryError, 'sqs.update_queue');
    }
  }
  if (!queueUrl) throw new Error(`sqs.create_queue returned no URL for ${QueueName}`);

  try {
    const { Attributes: read } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }));
    const queueArn = read?.QueueArn;
    if (!queueArn) throw new Error(`no QueueArn for ${QueueName}`);
    // Set after creation because the policy names the queue's own ARN, known only now.
    await sqs.send(new SetQueueAttributesCommand({ QueueUrl: queueUrl, Attributes: { Policy: nodeQueuePolicy(queueArn, topicArn) } }));
    const { SubscriptionArn } = await sns.send(
      new SubscribeCommand({
        TopicArn: topicArn,
        Protocol: 'sqs',
        Endpoint: queueArn,
        ReturnSubscriptionArn: true,
        Attributes: {
          // The body is the message itself, not SNS's JSON envelope around it.
          RawMessageDelivery: 'true',
          FilterPolicyScope: 'MessageAttributes',
          FilterPolicy: nodeFilterPolicy(options.nodeId),
        },
      }),
    );
    if (!SubscriptionArn) throw new Error(`sns.subscribe returned no ARN for ${QueueName}`);
    return { queueUrl, queueArn, subscriptionArn: SubscriptionArn };
  } catch (error) {
    throw wrapSdkError(error, 'sns_sqs.open_node_queue');
  }
}

/** Sets the attributes that differ from `wanted`, and only those. */
async function updateAttributes(sqs: SQSClient, queueUrl: string, wanted: Record<string, string>): Promise<void> {
  const names = Object.keys(wanted) as QueueAttributeName[];
  const { Attributes } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: names }));
  const current: Record<string, string | undefined> = Attributes ?? {};
  const changed = Object.fromEntries(Object.entries(wanted).filter(([name, value]) => current[name] !== value));
  if (Object.keys(changed).length > 0) await sqs.send(new SetQueueAttributesCommand({ QueueUrl: queueUrl, Attributes: changed }));
}

/**
 * Unsubscribes, then deletes the queue, each even if the other fails. In that
 * order because SNS keeps retrying deliveries to a queue that no longer exists.
 */
export async function closeNodeQueue(sns: SNSClient, sqs: SQSClient, queue: NodeQueue): Promise<void> {
  const unsubscribed = await settle(sns.send(new UnsubscribeCommand({ SubscriptionArn: queue.subscriptionArn })));
  const deleted = await settle(sqs.send(new DeleteQueueCommand({ QueueUrl: queue.queueUrl })));
  const failure = unsubscribed ?? deleted;
  if (failure !== undefined) throw wrapSdkError(failure, 'sns_sqs.close_node_queue');
}

/** Whether an SQS call failed because its queue does not exist (the janitor took the node for dead, or an operator deleted it). */
export function isQueueMissing(error: unknown): boolean {
  return isAwsError(error, NO_QUEUE);
}

/** Whether an SQS or SNS call failed because its queue or subscription no longer exists. */
export function isAlreadyGone(error: unknown): boolean {
  return isAwsError(error, GONE);
}

/** The error of a call that failed, unless it failed because the thing is already gone (a janitor, an earlier close). */
async function settle(call: Promise<unknown>): Promise<unknown> {
  try {
    await call;
    return undefined;
  } catch (error) {
    return isAlreadyGone(error) ? undefined : error;
  }
}
