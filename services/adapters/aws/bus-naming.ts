/**
 * The names the SNS→SQS bus routes by: the SNS message attribute that carries
 * a message's node (the protocol's `BusAttributes.node`), and the node queues,
 * `<prefix>_<nodeId>`, that each node makes for itself at start
 * (node-queue.ts). Read by the bus (sns-bus.ts, sns-sqs-bus.ts, node-queue.ts),
 * the janitor, the settings that read HERALD_QUEUE_PREFIX and the CDK stack
 * (lib/constructs/node-bus.ts), which names the queues in IAM before they
 * exist. No AWS SDK here: the CDK app imports it.
 */
import { isNodeId } from '../../protocol/bus-message';

/** The SNS message attribute that routes a message: a node id, or `all` (`ALL_NODES`). */
export const NODE_ATTRIBUTE = 'node';

/**
 * Between the queue prefix and the node id in a node queue's name:
 * `<prefix>_<nodeId>`. A prefix cannot contain it, nor can a CloudFormation
 * stack name (the default prefix), so the queues of a stack `Herald` (`Herald_…`)
 * never share a name prefix with those of `Herald-prod` (`Herald-prod_…`), and
 * IAM, alarms and the janitor can select one deployment's queues by `<prefix>_`.
 * Node ids may contain `_`: the node id is what follows the first one.
 */
export const NODE_QUEUE_SEPARATOR = '_';

/**
 * A queue prefix: 1-39 of A-Z a-z 0-9 - (no `_`), which leaves the node id
 * (at most 40 characters: the protocol's NODE_ID_PATTERN) 40 of SQS's 80.
 */
export const QUEUE_PREFIX_PATTERN = /^[A-Za-z0-9-]{1,39}$/;

/**
 * `<prefix>_<nodeId>`. SQS names are at most 80 characters; the prefix (≤ 39,
 * no `_`: QUEUE_PREFIX_PATTERN) and node id (≤ 40) are validated upstream.
 */
export function nodeQueueName(queuePrefix: string, nodeId: string): string {
  return `${nodeQueueNamePrefix(queuePrefix)}${nodeId}`;
}

/**
 * What every node queue name of one deployment starts with, and no other
 * deployment's: `<prefix>_`. For ListQueues, IAM resources (`<prefix>_*`) and alarms.
 */
export function nodeQueueNamePrefix(queuePrefix: string): string {
  return `${queuePrefix}${NODE_QUEUE_SEPARATOR}`;
}

/** The node id of a queue named `<prefix>_<nodeId>` (what follows the first `_`), or undefined for any other name. */
export function nodeIdOfQueueName(queuePrefix: string, queueName: string): string | undefined {
  const head = nodeQueueNamePrefix(queuePrefix);
  if (!queueName.startsWith(head)) return undefined;
  const nodeId = queueName.slice(head.length);
  return isNodeId(nodeId) ? nodeId : undefined;
}
