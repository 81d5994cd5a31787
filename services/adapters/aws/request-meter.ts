/**
 * Counts what Herald's own SDK clients ask of AWS, by service and operation,
 * in the units AWS bills: requests (retries included), SNS/SQS requests as
 * billed (each 64 KiB chunk of a request's payload is one request), and the
 * DynamoDB read and write request units each call consumed, as DynamoDB itself
 * reports them (`ReturnConsumedCapacity: 'TOTAL'`, added here). The bench
 * prices a notification from it; an operator reads it at `/metrics`.
 */
import { Buffer } from 'node:buffer';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { SNSClient } from '@aws-sdk/client-sns';
import type { SQSClient } from '@aws-sdk/client-sqs';

export interface OperationUsage {
  /** HTTP requests sent, each retry one more (the SDK's `$metadata.attempts`). */
  readonly requests: number;
  /**
   * Requests as billed: SNS and SQS charge each 64 KiB chunk of a request's
   * payload as one request (SNS FAQ: "Each 64KB chunk of published data is
   * billed as 1 request"; a PublishBatch is billed by its payload, not per
   * entry). Equal to `requests` elsewhere.
   */
  readonly billedRequests: number;
  /** DynamoDB read request units consumed. */
  readonly readUnits: number;
  /** DynamoDB write request units consumed. */
  readonly writeUnits: number;
  /** Messages carried: received by ReceiveMessage, entries of a batch call, 1 for Publish / SendMessage. */
  readonly messages: number;
  /** ReceiveMessage answers with no message (empty long polls): a node's fixed cost, not a notification's. */
  readonly emptyReceives: number;
}

/** Usage so far, keyed `service.operation` (`DynamoDB.PutItem`, `SNS.PublishBatch`, `SQS.ReceiveMessage`). */
export type UsageSnapshot = Readonly<Record<string, OperationUsage>>;

type Meterable = SNSClient | SQSClient | DynamoDBClient;
type Mutable<T> = { -readonly [K in keyof T]: T[K] };

const CHUNK_BYTES = 64 * 1024;

/** The DynamoDB operations that take `ReturnConsumedCapacity`. */
const REPORTS_CAPACITY = new Set(['GetItem', 'PutItem', 'UpdateItem', 'DeleteItem', 'Query', 'Scan', 'BatchGetItem', 'BatchWriteItem', 'TransactGetItems', 'TransactWriteItems']);
/** Those whose units are read units when DynamoDB reports a bare `CapacityUnits` (dynalite only ever does). */
const READS = new Set(['GetItem', 'Query', 'Scan', 'BatchGetItem', 'TransactGetItems']);
const CONDITIONAL_WRITES = new Set(['PutItem', 'UpdateItem', 'DeleteItem']);

interface Capacity {
  readonly CapacityUnits?: number;
  readonly ReadCapacityUnits?: number;
  readonly WriteCapacityUnits?: number;
}

interface Attribute {
  readonly DataType?: string;
  readonly StringValue?: string;
  readonly BinaryValue?: Uint8Array;
}

/** A message attribute counts toward the payload by its name, type and value (SNS and SQS alike). */
function attributesBytes(attributes: Readonly<Record<string, Attribute>> | undefined): number {
  let bytes = 0;
  for (const [name, a] of Object.entries(attributes ?? {})) {
    bytes += Buffer.byteLength(name) + Buffer.byteLength(a.DataType ?? '') + Buffer.byteLength(a.StringValue ?? '') + (a.BinaryValue?.byteLength ?? 0);
  }
  return bytes;
}

interface MessageLike {
  readonly Message?: string;
  readonly MessageBody?: string;
  readonly Body?: string;
  readonly Subject?: string;
  readonly MessageAttributes?: Readonly<Record<string, Attribute>>;
}

function messageBytes(m: MessageLike): number {
  return Buffer.byteLength(m.Message ?? m.MessageBody ?? m.Body ?? '') + Buffer.byteLength(m.Subject ?? '') + attributesBytes(m.MessageAttributes);
}

interface Traffic {
  /** The billed payload: messages and their attributes, not the request's framing. */
  readonly payloadBytes: number;
  readonly messages: number;
}

/** What an SNS or SQS call carried, from its input (sends) or its output (receives). */
function traffic(operation: string, input: Record<string, unknown>, output: Record<string, unknown> | undefined): Traffic {
  const entries = (key: string, from: Record<string, unknown> | undefined): readonly MessageLike[] => (Array.isArray(from?.[key]) ? (from[key] as MessageLike[]) : []);
  const sum = (list: readonly MessageLike[]): Traffic => ({ payloadBytes: list.reduce((total, m) => total + messageBytes(m), 0), messages: list.length });
  switch (operation) {
    case 'Publish':
    case 'SendMessage':
      return { payloadBytes: messageBytes(input), messages: 1 };
    case 'PublishBatch':
      return sum(entries('PublishBatchRequestEntries', input));
    case 'SendMessageBatch':
      return sum(entries('Entries', input));
    case 'ReceiveMessage':
      return sum(entries('Messages', output));
    case 'DeleteMessageBatch':
    case 'ChangeMessageVisibilityBatch':
      return { payloadBytes: 0, messages: entries('Entries', input).length };
    default:
      return { payloadBytes: 0, messages: 0 };
  }
}

function capacities(output: Record<string, unknown> | undefined): readonly Capacity[] {
  const consumed = output?.ConsumedCapacity as Capacity | Capacity[] | undefined;
  if (consumed === undefined) return [];
  // BatchGetItem and BatchWriteItem report one entry per table; the single-item calls one object.
  return Array.isArray(consumed) ? consumed : [consumed];
}

function attemptsOf(metadata: unknown): number {
  const attempts = (metadata as { attempts?: unknown } | undefined)?.attempts;
  return typeof attempts === 'number' && attempts > 0 ? attempts : 1;
}

/** The minimal middleware stack the three clients share: one `initialize` step. */
type Handler = (args: { input: Record<string, unknown> }) => Promise<{ output: Record<string, unknown> }>;
interface Stack {
  add(middleware: (next: Handler, context: { clientName?: string; commandName?: string }) => Handler, options: { step: 'initialize'; name: string }): void;
}

/**
 * One meter for any number of SNS, SQS and DynamoDB clients. `attach` adds a
 * middleware to a client: it sees every command the code sends through it,
 * after the SDK's retries (so `$metadata.attempts` is final).
 */
export class RequestMeter {
  private readonly usage = new Map<string, Mutable<OperationUsage>>();

  attach(client: Meterable): void {
    (client.middlewareStack as unknown as Stack).add(
      (next, context) => async (args) => {
        const service = (context.clientName ?? 'unknown').replace(/Client$/, '');
        const operation = (context.commandName ?? 'unknown').replace(/Command$/, '');
        const dynamo = service === 'DynamoDB';
        // The caller's own choice stands; its input object is never changed.
        const sent = dynamo && REPORTS_CAPACITY.has(operation) && args.input.ReturnConsumedCapacity === undefined ? { ...args, input: { ...args.input, ReturnConsumedCapacity: 'TOTAL' } } : args;
        try {
          const result = await next(sent);
          this.record(service, operation, sent.input, result.output, attemptsOf(result.output.$metadata));
          return result;
        } catch (error) {
          this.record(service, operation, sent.input, undefined, attemptsOf((error as { $metadata?: unknown }).$metadata));
          // DynamoDB charges a write whose condition failed (at least one unit: it bills by the stored
          // item's size) but reports no ConsumedCapacity with the error: counted as the minimum, 1.
          if (dynamo && CONDITIONAL_WRITES.has(operation) && (error as { name?: unknown }).name === 'ConditionalCheckFailedException') this.entry(service, operation).writeUnits += 1;
          throw error;
        }
      },
      { step: 'initialize', name: 'heraldRequestMeter' },
    );
  }

  /** A copy of the counts so far. */
  snapshot(): UsageSnapshot {
    return Object.fromEntries([...this.usage].map(([key, usage]) => [key, { ...usage }]));
  }

  private entry(service: string, operation: string): Mutable<OperationUsage> {
    const key = `${service}.${operation}`;
    let usage = this.usage.get(key);
    if (usage === undefined) {
      usage = { requests: 0, billedRequests: 0, readUnits: 0, writeUnits: 0, messages: 0, emptyReceives: 0 };
      this.usage.set(key, usage);
    }
    return usage;
  }

  private record(service: string, operation: string, input: Record<string, unknown>, output: Record<string, unknown> | undefined, attempts: number): void {
    const usage = this.entry(service, operation);
    usage.requests += attempts;
    if (service === 'SNS' || service === 'SQS') {
      const { payloadBytes, messages } = traffic(operation, input, output);
      // Every attempt carries the whole payload again.
      usage.billedRequests += attempts * Math.max(1, Math.ceil(payloadBytes / CHUNK_BYTES));
      usage.messages += messages;
      if (operation === 'ReceiveMessage' && output !== undefined && messages === 0) usage.emptyReceives++;
      return;
    }
    usage.billedRequests += attempts;
    for (const c of capacities(output)) {
      // Real DynamoDB may split the total into read and write units; dynalite reports CapacityUnits alone.
      if (c.ReadCapacityUnits !== undefined || c.WriteCapacityUnits !== undefined) {
        usage.readUnits += c.ReadCapacityUnits ?? 0;
        usage.writeUnits += c.WriteCapacityUnits ?? 0;
      } else if (READS.has(operation)) {
        usage.readUnits += c.CapacityUnits ?? 0;
      } else {
        usage.writeUnits += c.CapacityUnits ?? 0;
      }
    }
  }
}

/** `after` less `before`, per operation: what happened between two snapshots. */
export function usageBetween(before: UsageSnapshot, after: UsageSnapshot): UsageSnapshot {
  const out: Record<string, OperationUsage> = {};
  for (const [key, a] of Object.entries(after)) {
    const b = before[key];
    out[key] = b === undefined ? { ...a } : {
      requests: a.requests - b.requests,
      billedRequests: a.billedRequests - b.billedRequests,
      readUnits: a.readUnits - b.readUnits,
      writeUnits: a.writeUnits - b.writeUnits,
      messages: a.messages - b.messages,
      emptyReceives: a.emptyReceives - b.emptyReceives,
    };
  }
  return out;
}
