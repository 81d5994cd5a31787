import type { Bus, MissedHandler } from '../ports/bus';
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
import { RedisBus } from '../adapters/redis/redis-bus';
import { connectRedis } from '../adapters/redis/redis-connection';
import { RedisHistory } from '../adapters/redis/redis-history';
import { RedisLiveness } from '../adapters/redis/redis-liveness';
import { RedisOwners } from '../adapters/redis/redis-owners';
import { RedisRateLimiter } from '../adapters/redis/redis-rate-limiter';
import type { Logger } from '../shared/log';
import { LeasedRateLimiter } from '../shared/leased-rate-limiter';
import type { AwsConfig, Config, RedisConfig } from './config';
import type { HealthSource } from './health';
import type { AwsUsageSource } from './metrics';

export interface Ports {
  readonly bus: Bus;
  readonly owners: Owners;
  readonly history: History;
  readonly publishLimiter: RateLimiter;
  /** Frees what the composition itself owns (SDK clients, Redis connections), once every adapter has closed. */
  readonly release?: () => void | Promise<void>;
  /** aws mode: counts the AWS requests of the clients above, rendered at `/metrics`. */
  readonly awsUsage?: AwsUsageSource;
  /** redis mode: whether Redis can be reached, for `/healthz`. */
  readonly health?: HealthSource;
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

/**
 * Reader backoff of the redis bus: after an outage a reader tries again
 * within a second, so delivery resumes about when `/healthz` says it does.
 */
const REDIS_BUS_BACKOFF = { firstMs: 100, maxMs: 1_000 };
/** At most one warning a while for the connection errors the Redis client reports. */
const CLIENT_ERROR_REPORT_MS = 10_000;

/**
 * Redis for everything: Streams between nodes, a hash per user for owners,
 * sorted sets for history, GCRA for the shared publish budget. Connects
 * (rejecting, `unavailable`, when Redis does not answer within its connect
 * timeout) and starts watching Redis, whose emptying the node handles as a
 * bus that may have missed messages: the resync makes every stream claim
 * again and replay from its position.
 */
export async function composeRedis(config: Config, redisConfig: RedisConfig, log: Logger): Promise<Ports> {
  const { target, keyPrefix } = redisConfig;
  // The client reports every failed reconnect while Redis is away: the cause (refused,
  // WRONGPASS, TLS) is worth a line, not one every reconnect.
  let lastReportedMs = Number.NEGATIVE_INFINITY;
  let lastClientError: unknown;
  const onError = (error: unknown): void => {
    lastClientError = error;
    const now = Date.now();
    if (now - lastReportedMs < CLIENT_ERROR_REPORT_MS) return log.debug('redis.client_error', { error });
    lastReportedMs = now;
    log.warn('redis.client_error', { error });
  };
  const connection = target.kind === 'server' ? { url: target.url, cluster: false } : { url: target.seeds, cluster: true };
  const redis = await connectRedis({ ...connection, onError }).catch((error: unknown) => {
    // A connect that timed out says only that; the client's own error says why.
    log.error('redis.connect_failed', { error, clientError: lastClientError });
    throw error;
  });
  const liveness = new RedisLiveness({ redis, log, keyPrefix });
  try {
    await liveness.start();
  } catch (error) {
    await redis.close();
    throw error;
  }
  return {
    bus: alsoMissedWhenEmptied(new RedisBus({ redis, log, keyPrefix, backoff: REDIS_BUS_BACKOFF }), liveness),
    owners: new RedisOwners({ redis, keyPrefix }),
    history: new RedisHistory({ redis, keyPrefix, maxEventsPerStream: config.historyPerUser, detectEmptied: true }),
    publishLimiter: new LeasedRateLimiter({ shared: new RedisRateLimiter({ redis, keyPrefix, budget: config.publishRate }), budget: config.publishRate }),
    health: { name: 'redis', reachable: () => liveness.state() === 'ok' },
    release: async () => {
      await liveness.stop();
      await redis.close();
    },
  };
}

/**
 * The bus, whose missed handler also runs when Redis was emptied. Its own
 * readers notice that only for a stream that had messages before; the claims
 * and the heartbeat went as well, and only the resync puts them back.
 */
function alsoMissedWhenEmptied(bus: Bus, liveness: RedisLiveness): Bus {
  return {
    start: (nodeId, onMessage, onMissed?: MissedHandler) => {
      if (onMissed) liveness.onEmptied(onMissed);
      return bus.start(nodeId, onMessage, onMissed);
    },
    send: (message, target) => bus.send(message, target),
    sendBatch: (entries) => bus.sendBatch(entries),
    close: () => bus.close(),
  };
}
