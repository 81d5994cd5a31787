/**
 * The publisher library: any Node service with IAM rights on the topic and the
 * table publishes as the Lambda and `POST /publish` do — the same schema, the
 * same `publish()` with its delivery ordering, the same per-publisher budget.
 * On the stack its role must also be one the bus topic lets publish
 * (`busPublisherRoleArns`).
 */
import { DynamoHistory } from '../adapters/aws/dynamo-history';
import { DynamoOwners } from '../adapters/aws/dynamo-owners';
import { DynamoRateLimiter } from '../adapters/aws/dynamo-rate-limiter';
import { createPublishClients, type PublishClients } from '../adapters/aws/publish-clients';
import { SnsBus } from '../adapters/aws/sns-bus';
import { parseEnvelope, parsePublishBody, type EnvelopeOptions, type HeraldEvent } from '../protocol/envelope';
import { MAX_DATA_BYTES_CEILING, MAX_TTL_SECONDS } from '../protocol/limits';
import { silentLogger, type Logger } from '../shared/log';
import { LeasedRateLimiter } from '../shared/leased-rate-limiter';
import { EnvReader, readPublishSettings, type PublishSettings } from '../shared/settings';
import type { PublishDeps, PublishResult } from './publish';
import { publishWithRetry, type RetryPolicy } from './retrying-publish';

export type { PublishResult } from './publish';

/** A publisher's rate-budget key: what the Lambda accepts as `publisher`, and `publisherId` here. */
export const PUBLISHER_ID_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;

export interface PublisherOptions {
  readonly topicArn: string;
  readonly tableName: string;
  /**
   * The SDK clients, which stay open on `close()`. A publisher never touches a
   * queue, so it takes no SQS client (and `@aws-sdk/client-sqs` is no
   * dependency of it); the node's `AwsClients` fits as it is.
   * @default clients from the environment: createPublishClients(process.env) (then close() destroys them)
   */
  readonly clients?: PublishClients;
  /** Limits and retention; @default readPublishSettings of an empty environment (the defaults) */
  readonly settings?: Partial<PublishSettings>;
  /** The key of this publisher's rate budget. @default 'default' */
  readonly publisherId?: string;
  /** @default silent */
  readonly log?: Logger;
}

export interface Publisher {
  /**
   * Validates one envelope (a refusal throws its HeraldError: `code`, `details.field`)
   * and publishes it. Transient faults are retried with the same id, then
   * thrown as `unavailable`; a denial of the budget throws `rate_limited` with `retryAfterMs`.
   */
  publish(envelope: unknown): Promise<PublishResult>;
  /** Up to 100 envelopes, all validated before any is published (a refusal names `details.index`); results in order. */
  publishBatch(envelopes: readonly unknown[]): Promise<PublishResult[]>;
  close(): Promise<void>;
}

export function createPublisher(options: PublisherOptions): Publisher {
  const publisherId = options.publisherId ?? 'default';
  if (!PUBLISHER_ID_PATTERN.test(publisherId)) throw new RangeError(`publisherId "${publisherId}" is not 1-64 characters of A-Z a-z 0-9 _ . : -`);
  const pipeline = createAwsPublishing(options);
  let closed = false;
  const guard = (): void => {
    if (closed) throw new Error('this publisher is closed');
  };
  return {
    publish: async (envelope) => {
      guard();
      const [result] = await pipeline.publish([parseEnvelope(envelope, pipeline.envelope)], publisherId, false);
      return result!;
    },
    publishBatch: async (envelopes) => {
      guard();
      return pipeline.publish(parsePublishBody({ notifications: envelopes }, pipeline.envelope), publisherId, true);
    },
    close: () => {
      closed = true;
      return pipeline.close();
    },
  };
}

/** What the library and the Lambda share once input is validated: the adapters, the settings and the retries. */
export interface AwsPublishing {
  /** Validation options from the settings; parse with them, fresh per call (ids take the time of the call). */
  readonly envelope: Pick<EnvelopeOptions, 'maxDataBytes' | 'defaultTtlSeconds'>;
  publish(events: readonly HeraldEvent[], publisherId: string, batch: boolean): Promise<PublishResult[]>;
  close(): Promise<void>;
}

export interface AwsPublishingOptions extends Omit<PublisherOptions, 'publisherId'> {
  /** @default DEFAULT_RETRY */
  readonly retry?: RetryPolicy;
}

export function createAwsPublishing(options: AwsPublishingOptions): AwsPublishing {
  const settings = resolveSettings(options.settings);
  const owned = options.clients === undefined ? createPublishClients(process.env) : undefined;
  const { sns, dynamo } = options.clients ?? owned!;
  const { topicArn, tableName } = options;
  const log = options.log ?? silentLogger;
  const deps = {
    history: new DynamoHistory({ client: dynamo, tableName, maxEventsPerStream: settings.historyPerUser }),
    owners: new DynamoOwners({ client: dynamo, tableName }),
    bus: new SnsBus({ sns, topicArn }),
    limiter: new LeasedRateLimiter({ shared: new DynamoRateLimiter({ client: dynamo, tableName, budget: settings.publishRate }), budget: settings.publishRate }),
  } satisfies PublishDeps;
  return {
    envelope: { maxDataBytes: settings.maxDataBytes, defaultTtlSeconds: settings.defaultTtlSeconds },
    publish: (events, publisherId, batch) => publishWithRetry(events, deps, publisherId, { batch, log, ...(options.retry ? { retry: options.retry } : {}) }),
    close: async () => {
      await Promise.all([deps.bus.close(), deps.history.close(), deps.owners.close(), deps.limiter.close()]);
      if (owned) for (const client of [owned.sns, owned.dynamo]) client.destroy();
    },
  };
}

/** The defaults, overridden field by field; a value the node would refuse is refused here too. */
function resolveSettings(given: Partial<PublishSettings> = {}): PublishSettings {
  const settings = { ...readPublishSettings(new EnvReader({})), ...given };
  const wholeIn = (name: string, value: number, min: number, max: number): void => {
    if (!Number.isInteger(value) || value < min || value > max) throw new RangeError(`settings.${name} must be a whole number from ${min} to ${max}, got ${value}`);
  };
  wholeIn('maxDataBytes', settings.maxDataBytes, 1, MAX_DATA_BYTES_CEILING);
  wholeIn('defaultTtlSeconds', settings.defaultTtlSeconds, 0, MAX_TTL_SECONDS);
  wholeIn('historyPerUser', settings.historyPerUser, 1, 100_000);
  return settings;
}
