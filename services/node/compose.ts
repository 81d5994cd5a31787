import { randomBytes } from 'node:crypto';
import type { Bus } from '../ports/bus';
import type { History } from '../ports/history';
import type { Owners } from '../ports/owners';
import type { RateLimiter } from '../ports/rate-limiter';
import { MemoryBus, MemoryNetwork } from '../adapters/memory/memory-bus';
import { MemoryHistory } from '../adapters/memory/memory-history';
import { MemoryOwners } from '../adapters/memory/memory-owners';
import { TokenBucketLimiter } from '../adapters/memory/token-bucket';
import type { Logger } from '../shared/log';
import type { Config } from './config';

export interface Ports {
  readonly bus: Bus;
  readonly owners: Owners;
  readonly history: History;
  readonly publishLimiter: RateLimiter;
}

/**
 * The composition root: the one place that picks adapters for a mode. Nothing
 * else imports an adapter.
 */
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

export function newNodeId(): string {
  return `n-${randomBytes(6).toString('hex')}`;
}
