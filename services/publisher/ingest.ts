/**
 * The ingest path (docs/architecture.md, "Publishers"): a service publishes a
 * `POST /publish` body to the ingest topic, SNS puts it as it is in the
 * ingest queue, and Lambda hands the publisher batches of that queue. This is
 * the shape of those batches and what makes their delivery safe to repeat.
 */
import { createHash } from 'node:crypto';
import { eventIdFloor } from '../protocol/event-id';

/** One SQS message, as a Lambda event source mapping passes it (only what Herald reads). */
export interface IngestRecord {
  readonly messageId: string;
  readonly body: string;
  readonly eventSource?: string;
  readonly attributes?: { readonly SentTimestamp?: string; readonly ApproximateReceiveCount?: string };
}

export interface IngestEvent {
  readonly Records: readonly IngestRecord[];
}

/** The partial batch response (`ReportBatchItemFailures`): these messages come back after their visibility timeout. */
export interface IngestResponse {
  readonly batchItemFailures: readonly { readonly itemIdentifier: string }[];
}

/** An event from the ingest queue, rather than a direct invocation: a `POST /publish` body has no `Records`. */
export function isIngestEvent(event: unknown): event is IngestEvent {
  if (typeof event !== 'object' || event === null || !('Records' in event)) return false;
  const { Records } = event;
  return Array.isArray(Records) && Records.every((r) => typeof r === 'object' && r !== null && (r as IngestRecord).eventSource === 'aws:sqs');
}

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/**
 * An event id for notification `index` of a message, the same on every
 * delivery of it: the time SQS received the message, then 80 bits of a hash
 * of its message id. SQS delivers at least once, and a Lambda that times out
 * after publishing sees the message again; with a fresh id each time, the
 * second delivery would be a second event, shown twice.
 */
export function ingestEventId(record: IngestRecord, index: number): string {
  const sentAtMs = Number(record.attributes?.SentTimestamp);
  // SQS always sets it; an event made by hand without it still gets a valid id, though not the same one twice.
  const time = eventIdFloor(Number.isSafeInteger(sentAtMs) && sentAtMs > 0 ? sentAtMs : Date.now()).slice(0, 10);
  const digest = createHash('sha256').update(`${record.messageId}#${index}`).digest();
  let random = '';
  for (let i = 0; i < 16; i++) random += ALPHABET.charAt((digest[i] ?? 0) & 31);
  return time + random;
}

const isPlainObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * The body with an `id` on every notification that had none (`ingestEventId`),
 * so a repeated delivery is stored once and written once to each stream.
 * Anything that is not an envelope is left as it is, for validation to refuse.
 */
export function withStableIds(body: unknown, record: IngestRecord): unknown {
  const stamp = (envelope: unknown, index: number): unknown =>
    isPlainObject(envelope) && !('id' in envelope) ? { ...envelope, id: ingestEventId(record, index) } : envelope;
  if (!isPlainObject(body)) return body;
  if ('notifications' in body) {
    const { notifications } = body;
    return Array.isArray(notifications) ? { ...body, notifications: notifications.map(stamp) } : body;
  }
  return stamp(body, 0);
}
