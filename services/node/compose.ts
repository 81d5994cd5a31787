import type { Bus } from '../ports/bus';
import type { History } from '../ports/history';
import type { Owners } from '../ports/owners';
import type { RateLimiter } from '../ports/rate-limiter';
import { MemoryBus, MemoryNetwork } from '../adapters/memory/memory-bus';
import { MemoryHistory } from '../adapters/memory/memory-history';
import { MemoryOwners } from '../adapters/memory/memory-owners';
import { TokenBucketLimiter } from '../adapters/memory/token-bucket';
import { DynamoHistory } from '../adapters/aws/dynamo-history';
import { DynamoOwners } from '../adapters/aws/dynamo-owners';
import { DynamoRateLimiter } from '../adapters/aws/dynamo-rate-limiter';
import type { AwsClients } from '../adapters/aws/sdk-clients';
import { SnsSqsBus } from '../adapters/aws/sns-sqs-bus';
import type { Logger } from '../shared/log';
import { LeasedRateLimiter } from '../shared/leased-rate-limiter';
import type { AwsConfig, Config } from './config';
import type { AwsUsageSource } from './metrics';

export interface Ports {
  readonly bus: Bus;
  readonly owners: Owners;
  readonly history: History;
  readonly publishLimiter: RateLimiter;
  /** Frees what the composition itself owns (SDK clients), once every adapter has closed. */
  readonly release?: () => void;
  /** aws mode: counts the AWS requests of the clients above, rendered at `/metrics`. */
  readonly awsUsage?: AwsUsageSource;
}

/*
 * The composition root: the one place that picks adapters for a mode. Nothing
 * else imports an adapter.
 */

/** Everything in memory: one process, the embedded default. */
export function composeLocal(config: Config, log: Logger, network: MemoryNetwork = new MemoryNetwork()): Ports {
  return {
    bus: new MemoryBus(network, {
      onHandlerError: (error, message) => log.error('bus.handler_failed', { kind: message.kind, error }),
    }),
    owners: new MemoryOwners(),
    history: new MemoryHistory({ maxEventsPerStream: config.historyPerUser, maxBytes: config.historyMaxBytes }),
    publishLimiter: new TokenBucketLimiter(config.publishRate),
  };
}

/** SNS → per-node SQS between nodes, DynamoDB for owners, history and the publish budget. */
export function composeAws(config: Config, aws: AwsConfig, clients: AwsClients, log: Logger): Ports {
  const { topicArn, tableName, queuePrefix } = aws;
  return {
    bus: new SnsSqsBus({ sns: clients.sns, sqs: clients.sqs, topicArn, queuePrefix, log }),
    owners: new DynamoOwners({ client: clients.dynamo, tableName }),
    history: new DynamoHistory({ client: clients.dynamo, tableName, maxEventsPerStream: config.historyPerUser }),
    publishLimiter: new LeasedRateLimiter({ shared: new DynamoRateLimiter({ client: clients.dynamo, tableName, budget: config.publishRate }), budget: config.publishRate }),
    awsUsage: clients.meter,
    release: () => {
      clients.sns.destroy();
      clients.sqs.destroy();
      clients.dynamo.destroy();
    },
  };
}
