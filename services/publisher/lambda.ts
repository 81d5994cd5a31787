/**
 * The Lambda publisher that chat and job code invoke (docs/architecture.md,
 * "Shapes"). The event is one envelope or `{ "notifications": [...] }`, with an
 * optional top-level `"publisher"` naming the rate budget to charge.
 *
 * Refusals are answers, not errors: a retry cannot fix them, so they come back
 * as `{ ok: false, error, message, field?, index? }`. Transient faults are
 * retried here with the same ids, then thrown, so the caller's retry (or
 * Lambda's own, for an async invoke) applies and history dedupes what was stored.
 *
 * The same function consumes the ingest queue (ingest.ts): each message is
 * such an event, published to the ingest topic by a service. Nobody reads an
 * answer there, so a refusal is logged and the message dropped, and a fault
 * hands the message back to the queue to be delivered again.
 */
import { createAwsClients, type AwsClientOptions, type AwsClients } from '../adapters/aws/sdk-clients';
import { parsePublishBody, type HeraldEvent } from '../protocol/envelope';
import { HeraldError, isHeraldError, type ErrorCode } from '../protocol/errors';
import { createLogger, isLogLevel, type Logger } from '../shared/log';
import { ConfigError, EnvReader, readAwsSettings, readPublishSettings, type Env } from '../shared/settings';
import { malformedMessageFacts } from '../shared/malformed-message';
import { PUBLISHER_ID_PATTERN, createAwsPublishing, type AwsPublishing } from './create-publisher';
import { isIngestEvent, withStableIds, type IngestEvent, type IngestRecord, type IngestResponse } from './ingest';
import type { PublishResult } from './publish';
import type { RetryPolicy } from './retrying-publish';

export type LambdaPublishResult =
  | { readonly ok: true; readonly results: readonly PublishResult[] }
  | {
      readonly ok: false;
      readonly error: ErrorCode;
      readonly message: string;
      readonly field?: string;
      readonly index?: number;
      /** With `rate_limited`: when the budget allows this much again. */
      readonly retryAfterMs?: number;
    };

/** What Lambda passes as the second argument; only the request id is read, for the logs. */
export interface LambdaContext {
  readonly awsRequestId?: string;
}

/** A direct invocation is answered; a batch of the ingest queue is answered with the messages to deliver again. */
export interface PublishHandler {
  (event: IngestEvent, context?: LambdaContext): Promise<IngestResponse>;
  (event: unknown, context?: LambdaContext): Promise<LambdaPublishResult>;
}

/** The rate budget of ingest messages that name none. */
export const INGEST_PUBLISHER_ID = 'ingest';

/** For tests: what the environment would otherwise decide. */
export interface HandlerOverrides {
  /** @default JSON lines on stdout at HERALD_LOG_LEVEL */
  readonly log?: Logger;
  /** @default createAwsClients(env, clientOptions) */
  readonly clients?: Pick<AwsClients, 'sns' | 'dynamo'>;
  readonly clientOptions?: AwsClientOptions;
  /** @default DEFAULT_RETRY */
  readonly retry?: RetryPolicy;
}

interface Ready {
  readonly publishing: AwsPublishing;
  readonly defaultPublisher: string;
  readonly log: Logger;
}

/**
 * A handler configured from `env` on its first invocation (the cold start),
 * with clients and adapters kept for the container's life. A bad setting makes
 * that and every later invocation fail with a message naming the variable.
 */
export function createHandler(env: Env, overrides: HandlerOverrides = {}): PublishHandler {
  let ready: Ready | Error | undefined;
  const handle = async (event: unknown, context?: LambdaContext): Promise<LambdaPublishResult | IngestResponse> => {
    ready ??= configure(env, overrides);
    if (ready instanceof Error) throw ready;
    if (isIngestEvent(event)) return ingest(ready, event, context?.awsRequestId);
    return invoke(ready, event, context?.awsRequestId);
  };
  return handle as PublishHandler;
}

let fromEnvironment: PublishHandler | undefined;

/** The Lambda entry point (NodejsFunction entry services/publisher/lambda.ts, export `handler`). */
export const handler = ((event: unknown, context?: LambdaContext) => {
  fromEnvironment ??= createHandler(process.env);
  return fromEnvironment(event, context);
}) as PublishHandler;

function configure(env: Env, overrides: HandlerOverrides): Ready | Error {
  const level = env.HERALD_LOG_LEVEL?.trim() ?? '';
  const log = overrides.log ?? createLogger({ level: isLogLevel(level) ? level : 'info' });
  try {
    const read = new EnvReader(env);
    read.oneOf('HERALD_LOG_LEVEL', 'info', ['debug', 'info', 'warn', 'error']);
    const { topicArn, tableName } = readAwsSettings(read, 'for the Herald publisher Lambda');
    const settings = readPublishSettings(read);
    const defaultPublisher = read.raw('HERALD_PUBLISHER_ID') ?? 'lambda';
    if (!PUBLISHER_ID_PATTERN.test(defaultPublisher)) throw new ConfigError('HERALD_PUBLISHER_ID', 'is 1-64 characters of A-Z a-z 0-9 _ . : -');
    const clients = overrides.clients ?? createAwsClients(env, overrides.clientOptions);
    const publishing = createAwsPublishing({ topicArn, tableName, clients, settings, log, ...(overrides.retry ? { retry: overrides.retry } : {}) });
    log.info('publisher.configured', { tableName, defaultPublisher, maxDataBytes: settings.maxDataBytes });
    return { publishing, defaultPublisher, log };
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    log.error('config.invalid', { variable: error.variable, message: error.message });
    return new Error(`Herald publisher is misconfigured: ${error.message}`, { cause: error });
  }
}

async function invoke(ready: Ready, event: unknown, requestId: string | undefined): Promise<LambdaPublishResult> {
  const log = requestId === undefined ? ready.log : ready.log.child({ requestId });
  let request: { events: HeraldEvent[]; publisherId: string; batch: boolean };
  try {
    request = readInvocation(event, ready);
  } catch (error) {
    if (!isHeraldError(error)) throw error;
    log.info('publish.refused', { code: error.code, field: error.details.field, index: error.details.index });
    return refusal(error);
  }
  const { events, publisherId, batch } = request;
  const startedAt = Date.now();
  try {
    const results = await ready.publishing.publish(events, publisherId, batch);
    log.info('publish.done', {
      publisherId,
      notifications: results.length,
      duplicates: results.filter((r) => r.duplicate).length,
      offline: results.reduce((sum, r) => sum + r.offline.length, 0),
      ms: Date.now() - startedAt,
    });
    return { ok: true, results };
  } catch (error) {
    // unavailable (after the retries) and internal are faults: thrown, so a retry applies.
    if (isHeraldError(error) && error.code !== 'unavailable' && error.code !== 'internal') {
      log.info('publish.refused', { publisherId, code: error.code, field: error.details.field, index: error.details.index });
      return refusal(error);
    }
    log.error('publish.failed', { publisherId, notifications: events.length, error });
    throw error;
  }
}

/**
 * One batch of the ingest queue, a message at a time. A refusal would be
 * refused again, so its message is dropped (`ingest.refused`, with what
 * `bus.message_malformed` would say of it: never its content). A fault, or a
 * budget that is spent, hands the message back: SQS delivers it again after
 * its visibility timeout, and to the dead-letter queue after five tries. Its
 * notifications carry the same ids on every delivery, so nothing is stored or
 * shown twice.
 */
async function ingest(ready: Ready, event: IngestEvent, requestId: string | undefined): Promise<IngestResponse> {
  const log = requestId === undefined ? ready.log : ready.log.child({ requestId });
  const failures: { itemIdentifier: string }[] = [];
  for (const record of event.Records) {
    if (!(await ingestOne(ready, record, log))) failures.push({ itemIdentifier: record.messageId });
  }
  return { batchItemFailures: failures };
}

/** Whether the message is finished with: published, or refused for good. */
async function ingestOne(ready: Ready, record: IngestRecord, log: Logger): Promise<boolean> {
  const { messageId } = record;
  let request: { events: HeraldEvent[]; publisherId: string; batch: boolean };
  try {
    let body: unknown;
    try {
      body = JSON.parse(record.body);
    } catch {
      throw new HeraldError('json_invalid', 'the message is not JSON');
    }
    request = readInvocation(withStableIds(body, record), ready, INGEST_PUBLISHER_ID);
  } catch (error) {
    if (!isHeraldError(error)) throw error;
    log.warn('ingest.refused', { messageId, ...malformedMessageFacts(record.body, error) });
    return true;
  }
  const { events, publisherId, batch } = request;
  const startedAt = Date.now();
  try {
    const results = await ready.publishing.publish(events, publisherId, batch);
    log.info('publish.done', {
      source: 'ingest',
      messageId,
      publisherId,
      notifications: results.length,
      duplicates: results.filter((r) => r.duplicate).length,
      offline: results.reduce((sum, r) => sum + r.offline.length, 0),
      ms: Date.now() - startedAt,
    });
    return true;
  } catch (error) {
    if (isHeraldError(error) && error.code === 'rate_limited') {
      log.warn('ingest.rate_limited', { messageId, publisherId, retryAfterMs: error.details.retryAfterMs });
      return false;
    }
    if (isHeraldError(error) && error.code !== 'unavailable' && error.code !== 'internal') {
      log.warn('ingest.refused', { messageId, publisherId, ...malformedMessageFacts(record.body, error) });
      return true;
    }
    log.error('publish.failed', { source: 'ingest', messageId, publisherId, notifications: events.length, error });
    return false;
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The invocation event: an envelope or a batch, with `publisher` taken off before the envelope schema sees it. */
function readInvocation(event: unknown, ready: Ready, defaultPublisher = ready.defaultPublisher): { events: HeraldEvent[]; publisherId: string; batch: boolean } {
  let body = event;
  let publisherId = defaultPublisher;
  if (isPlainObject(event) && 'publisher' in event) {
    const { publisher, ...rest } = event;
    if (typeof publisher !== 'string' || !PUBLISHER_ID_PATTERN.test(publisher)) {
      throw new HeraldError('envelope_invalid', '`publisher` is 1-64 characters of A-Z a-z 0-9 _ . : -', { field: 'publisher' });
    }
    body = rest;
    publisherId = publisher;
  }
  const batch = isPlainObject(body) && 'notifications' in body;
  return { events: parsePublishBody(body, ready.publishing.envelope), publisherId, batch };
}

function refusal(error: HeraldError): LambdaPublishResult {
  const { error: code, ...rest } = error.toJSON();
  return { ok: false, error: code, ...rest };
}
