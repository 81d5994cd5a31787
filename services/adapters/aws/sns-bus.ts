import { PublishBatchCommand, PublishCommand, type PublishBatchRequestEntry, type SNSClient } from '@aws-sdk/client-sns';
import { BusBatchError, type BusEntry, type BusMessage, type BusSender, type BusTarget } from '../../ports/bus';
import { ALL_NODES, encodeBusMessageWithin, isNodeId } from '../../protocol/bus-message';
import { unavailable } from '../../protocol/faults';
import { utf8Length } from '../../protocol/utf8';
import { NODE_ATTRIBUTE } from './bus-naming';
import { backoff, mapLimit } from './pacing';
import { isTransient, wrapSdkError } from './sdk-errors';

/**
 * SNS's limit is 256 KiB per message, attributes included (one `node` attribute
 * of at most 50 bytes here); the rest of the margin is for safety.
 */
const MAX_BODY_BYTES = 256 * 1024 - 1024;

/**
 * Publishes one bus message to the topic: usually one SNS message, several when
 * a deliver is too big for one (split by recipients). The `node` attribute is
 * what each node's subscription filters on (docs/architecture.md, "Shapes", AWS).
 * Shared by `SnsSqsBus` (nodes) and `SnsBus` (publishers), so both write the
 * same wire format.
 */
export async function publishToTopic(sns: SNSClient, topicArn: string, message: BusMessage, target: BusTarget): Promise<void> {
  const node = routeOf(target);
  for (const body of encodeBusMessageWithin(message, MAX_BODY_BYTES)) await publishBody(sns, topicArn, body, node);
}

function routeOf(target: BusTarget): string {
  const node = target === 'all' ? ALL_NODES : target.node;
  if (target !== 'all' && !isNodeId(node)) throw new Error(`cannot send to node "${node}": not a node id`);
  return node;
}

/** SNS's limits on one PublishBatch request: 10 entries, 256 KiB of payload in all. */
const BATCH_ENTRIES = 10;
const BATCH_PAYLOAD_BYTES = 256 * 1024;
/** Room for an entry's attribute and id within the request's payload limit. */
const ENTRY_OVERHEAD_BYTES = 128;
/** PublishBatch requests of one call in flight together. */
const BATCH_CONCURRENCY = 4;
/** Entries SNS refused for a passing reason (throttled, internal) are sent again this often. */
const BATCH_ATTEMPTS = 3;

interface Body {
  /** The entry it carries (an entry too big for one message has several bodies). */
  readonly entry: number;
  readonly body: string;
  readonly node: string;
  readonly bytes: number;
}

/**
 * Publishes several bus messages in as few requests as SNS allows: one
 * Publish for a single body, else PublishBatch requests of up to 10 bodies
 * and 256 KiB. SNS bills each 64 KiB of a request's payload as one request,
 * so packing small messages saves both round trips and money. Entries SNS
 * refused for a passing reason are retried; what still failed is reported
 * by entry index (`BusBatchError`), everything else was accepted.
 */
export async function publishBatchToTopic(sns: SNSClient, topicArn: string, entries: readonly BusEntry[]): Promise<void> {
  const bodies: Body[] = entries.flatMap(({ message, target }, entry) => {
    const node = routeOf(target);
    return encodeBusMessageWithin(message, MAX_BODY_BYTES).map((body) => ({ entry, body, node, bytes: utf8Length(body) + ENTRY_OVERHEAD_BYTES }));
  });
  if (bodies.length === 0) return;
  if (bodies.length === 1) {
    const [only] = bodies as [Body];
    try {
      await publishBody(sns, topicArn, only.body, only.node);
    } catch (error) {
      throw new BusBatchError([only.entry], error);
    }
    return;
  }
  const failed = new Set<number>();
  let lastError: unknown;
  await mapLimit(packRequests(bodies), BATCH_CONCURRENCY, async (request) => {
    let pending = request;
    for (let attempt = 0; pending.length > 0; attempt++) {
      if (attempt > 0) await backoff(attempt, 50, 1_000);
      const outcome = await publishBatch(sns, topicArn, pending);
      if (outcome.error !== undefined) lastError = outcome.error;
      const retry = pending.filter((_, i) => outcome.retryable.has(i));
      for (const [i, body] of pending.entries()) if (outcome.permanent.has(i) || (outcome.retryable.has(i) && attempt + 1 >= BATCH_ATTEMPTS)) failed.add(body.entry);
      pending = attempt + 1 >= BATCH_ATTEMPTS ? [] : retry;
    }
  });
  if (failed.size > 0) throw new BusBatchError([...failed].sort((a, b) => a - b), lastError);
}

/** Bodies in order, packed greedily into requests within SNS's per-request limits. */
function packRequests(bodies: readonly Body[]): Body[][] {
  const requests: Body[][] = [];
  let current: Body[] = [];
  let bytes = 0;
  for (const body of bodies) {
    if (current.length === BATCH_ENTRIES || (current.length > 0 && bytes + body.bytes > BATCH_PAYLOAD_BYTES)) {
      requests.push(current);
      current = [];
      bytes = 0;
    }
    current.push(body);
    bytes += body.bytes;
  }
  if (current.length > 0) requests.push(current);
  return requests;
}

/** One PublishBatch request: which of its bodies may be sent again, which never can, and the fault seen. */
async function publishBatch(
  sns: SNSClient,
  topicArn: string,
  bodies: readonly Body[],
): Promise<{ retryable: Set<number>; permanent: Set<number>; error?: unknown }> {
  const request: PublishBatchRequestEntry[] = bodies.map((b, i) => ({
    Id: String(i),
    Message: b.body,
    MessageAttributes: { [NODE_ATTRIBUTE]: { DataType: 'String', StringValue: b.node } },
  }));
  try {
    const { Failed } = await sns.send(new PublishBatchCommand({ TopicArn: topicArn, PublishBatchRequestEntries: request }));
    const retryable = new Set<number>();
    const permanent = new Set<number>();
    for (const f of Failed ?? []) {
      const i = Number(f.Id);
      if (!Number.isInteger(i) || i < 0 || i >= bodies.length) continue;
      (f.SenderFault === true ? permanent : retryable).add(i);
    }
    const error = Failed && Failed.length > 0 ? unavailable(`sns.publishBatch: ${Failed.length} entries failed (${Failed[0]?.Code ?? 'unknown'})`) : undefined;
    return { retryable, permanent, ...(error ? { error } : {}) };
  } catch (error) {
    // The whole request failed: nothing of it was published.
    const all = new Set(bodies.map((_, i) => i));
    const wrapped = wrapSdkError(error, 'sns.publishBatch');
    return isTransient(error) ? { retryable: all, permanent: new Set(), error: wrapped } : { retryable: new Set(), permanent: all, error: wrapped };
  }
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
 * The send-only bus of a publisher (the library, the Lambda): SNS Publish and
 * PublishBatch, nothing else. A publisher has no queue to receive on, so it
 * needs neither an SQS client nor a queue prefix nor the rights to make queues.
 */
export class SnsBus implements BusSender {
  private closed = false;

  constructor(private readonly options: SnsBusOptions) {}

  async send(message: BusMessage, target: BusTarget): Promise<void> {
    if (this.closed) throw unavailable('bus is closed');
    await publishToTopic(this.options.sns, this.options.topicArn, message, target);
  }

  async sendBatch(entries: readonly BusEntry[]): Promise<void> {
    if (this.closed) throw unavailable('bus is closed');
    await publishBatchToTopic(this.options.sns, this.options.topicArn, entries);
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}
