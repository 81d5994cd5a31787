/**
 * What the janitor reads before it removes anything: the topic's subscriptions,
 * the queues under the prefix and the node heartbeats. Each list is paginated
 * to its end; a failure here ends the sweep, since deciding on half a picture
 * is how the wrong queue gets deleted.
 */
import { QueryCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ListSubscriptionsByTopicCommand, type SNSClient } from '@aws-sdk/client-sns';
import { ListQueuesCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { call, keys, readNodeItem, s, type Item } from '../adapters/aws/dynamo-items';
import { nodeQueueNamePrefix } from '../adapters/aws/bus-naming';
import { TABLE } from '../adapters/aws/table';

export interface Subscription {
  readonly subscriptionArn: string;
  /** For an `sqs` subscription, the queue's ARN. */
  readonly endpoint: string;
  readonly protocol: string;
}

export interface ListedQueue {
  readonly queueUrl: string;
  readonly queueName: string;
}

export async function listSubscriptions(sns: SNSClient, topicArn: string): Promise<Subscription[]> {
  const found: Subscription[] = [];
  let NextToken: string | undefined;
  do {
    const page = await call('sns.listSubscriptionsByTopic', () => sns.send(new ListSubscriptionsByTopicCommand({ TopicArn: topicArn, NextToken })));
    for (const sub of page.Subscriptions ?? []) {
      if (sub.SubscriptionArn && sub.Endpoint && sub.Protocol) {
        found.push({ subscriptionArn: sub.SubscriptionArn, endpoint: sub.Endpoint, protocol: sub.Protocol });
      }
    }
    NextToken = page.NextToken;
  } while (NextToken);
  return found;
}

/** SQS returns no `NextToken` unless `MaxResults` is given: without it, a list stops at 1,000 queues. */
const QUEUES_PER_PAGE = 1000;

/** The queues whose name starts with `<prefix>_`. `ListQueues` is eventually consistent: a queue made a moment ago may be missing. */
export async function listQueues(sqs: SQSClient, queuePrefix: string): Promise<ListedQueue[]> {
  const found: ListedQueue[] = [];
  let NextToken: string | undefined;
  do {
    const page = await call('sqs.listQueues', () =>
      sqs.send(new ListQueuesCommand({ QueueNamePrefix: nodeQueueNamePrefix(queuePrefix), MaxResults: QUEUES_PER_PAGE, NextToken })),
    );
    for (const queueUrl of page.QueueUrls ?? []) found.push({ queueUrl, queueName: queueUrl.slice(queueUrl.lastIndexOf('/') + 1) });
    NextToken = page.NextToken;
  } while (NextToken);
  return found;
}

/**
 * Heartbeat expiry (ms) per node id: the node items, read with one consistent
 * Query on pk `nodes`, or only the item of `nodeId` (a re-check just before a removal).
 */
export async function readHeartbeats(dynamo: DynamoDBClient, tableName: string, nodeId?: string): Promise<Map<string, number>> {
  const heartbeats = new Map<string, number>();
  const one = nodeId === undefined ? undefined : keys.node(nodeId)[TABLE.sortKey];
  let ExclusiveStartKey: Item | undefined;
  do {
    const page = await call('dynamodb.query', () =>
      dynamo.send(
        new QueryCommand({
          TableName: tableName,
          KeyConditionExpression: one === undefined ? '#pk = :pk' : '#pk = :pk AND #sk = :sk',
          ExpressionAttributeNames: { '#pk': TABLE.partitionKey, ...(one === undefined ? {} : { '#sk': TABLE.sortKey }) },
          ExpressionAttributeValues: { ':pk': s(keys.nodesPk), ...(one === undefined ? {} : { ':sk': one }) },
          ConsistentRead: true,
          ExclusiveStartKey,
        }),
      ),
    );
    for (const item of page.Items ?? []) {
      const node = readNodeItem(item);
      heartbeats.set(node.nodeId, node.expiresAtMs);
    }
    ExclusiveStartKey = page.LastEvaluatedKey;
  } while (ExclusiveStartKey);
  return heartbeats;
}
