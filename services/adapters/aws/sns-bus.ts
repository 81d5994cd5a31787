import { PublishCommand, type SNSClient } from '@aws-sdk/client-sns';
import type { Bus, BusMessage, BusTarget } from '../../ports/bus';
import { ALL_NODES, NODE_ATTRIBUTE, encodeBusMessageWithin, isNodeId } from '../../protocol/bus-message';
import { unavailable } from '../../protocol/faults';
import { wrapSdkError } from './sdk-errors';

/**
 * SNS's limit is 256 KiB per message, attributes included (one `node` attribute
 * of at most 50 bytes here); the rest of the margin is for safety.
 */
const MAX_BODY_BYTES = 256 * 1024 - 1024;

/**
 * Publishes one bus message to the topic: usually one SNS message, several when
 * a deliver is too big for one (split by recipients). The `node` attribute is
 * what each node's subscription filters on (DESIGN.md, "Targeted routing").
 * Shared by `SnsSqsBus` (nodes) and `SnsBus` (publishers), so both write the
 * same wire format.
 */
export async function publishToTopic(sns: SNSClient, topicArn: string, message: BusMessage, target: BusTarget): Promise<void> {
  const node = target === 'all' ? ALL_NODES : target.node;
  if (target !== 'all' && !isNodeId(node)) throw new Error(`cannot send to node "${node}": not a node id`);
  for (const body of encodeBusMessageWithin(message, MAX_BODY_BYTES)) await publishBody(sns, topicArn, body, node);
}

/** One SNS message: `body` as it is, routed by the `node` attribute (a node id, or `all`). */
export async function publishBody(sns: SNSClient, topicArn: string, body: string, node: string): Promise<void> {
  try {
    await sns.send(
      new PublishCommand({
        TopicArn: topicArn,
        Message: body,
        MessageAttributes: { [NODE_ATTRIBUTE]: { DataType: 'String', StringValue: node } },
      }),
    );
  } catch (error) {
    throw wrapSdkError(error, 'sns.publish');
  }
}

export interface SnsBusOptions {
  /** Shared with the rest of the process: `close()` leaves it open. */
  readonly sns: SNSClient;
  readonly topicArn: string;
}

/**
 * The send-only `Bus` of a publisher (the library, the Lambda): SNS Publish and
 * nothing else. A publisher has no queue to receive on, so it needs neither an
 * SQS client nor a queue prefix nor the rights to make queues; `start` refuses.
 */
export class SnsBus implements Bus {
  private closed = false;

  constructor(private readonly options: SnsBusOptions) {}

  start(): Promise<void> {
    return Promise.reject(new Error('SnsBus only sends; a node receives through SnsSqsBus'));
  }

  async send(message: BusMessage, target: BusTarget): Promise<void> {
    if (this.closed) throw unavailable('bus is closed');
    await publishToTopic(this.options.sns, this.options.topicArn, message, target);
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}
