/**
 * The Lambda publisher that chat and job code invoke (DESIGN.md, "Publishing
 * paths"). The event is one envelope or `{ "notifications": [...] }`, with an
 * optional top-level `"publisher"` naming the rate budget to charge.
 *
 * Refusals are answers, not errors: a retry cannot fix them, so they come back
 * as `{ ok: false, error, message, field?, index? }`. Transient faults are
 * retried here with the same ids, then thrown, so the caller's retry (or
 * Lambda's own, for an async invoke) applies and history dedupes what was stored.
 */
import { createAwsClients, type AwsClientOptions, type AwsClients } from '../adapters/aws/sdk-clients';
import { parsePublishBody, type HeraldEvent } from '../protocol/envelope';
import { HeraldError, isHeraldError, type ErrorCode } from '../protocol/errors';
import { createLogger, isLogLevel, type Logger } from '../shared/log';
import { ConfigError, EnvReader, readAwsSettings, readPublishSettings, type Env } from '../shared/settings';
import { PUBLISHER_ID_PATTERN, createAwsPublishing, type AwsPublishing } from './create-publisher';
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

export type PublishHandler = (event: unknown, context?: LambdaContext) => Promise<LambdaPublishResult>;

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
  return async (event, context) => {
    ready ??= configure(env, overrides);
    if (ready instanceof Error) throw ready;
    return invoke(ready, event, context?.awsRequestId);
  };
}

let fromEnvironment: PublishHandler | undefined;

/** The Lambda entry point (NodejsFunction entry services/publisher/lambda.ts, export `handler`). */
export async function handler(event: unknown, context?: LambdaContext): Promise<LambdaPublishResult> {
  fromEnvironment ??= createHandler(process.env);
  return fromEnvironment(event, context);
}

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

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The invocation event: an envelope or a batch, with `publisher` taken off before the envelope schema sees it. */
function readInvocation(event: unknown, ready: Ready): { events: HeraldEvent[]; publisherId: string; batch: boolean } {
  let body = event;
  let publisherId = ready.defaultPublisher;
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
