import type { Bus, BusTarget } from '../ports/bus';
import type { History } from '../ports/history';
import type { Owners } from '../ports/owners';
import type { RateLimiter } from '../ports/rate-limiter';
import type { HeraldEvent } from '../protocol/envelope';
import { HeraldError } from '../protocol/errors';

export interface PublishDeps {
  readonly history: History;
  readonly owners: Owners;
  readonly bus: Bus;
  /** Per-publisher budget; absent means unlimited (e.g. a trusted in-process caller). */
  readonly limiter?: RateLimiter;
}

export interface PublishResult {
  readonly id: string;
  /** How many users it was addressed to, or `'all'` for a broadcast. */
  readonly recipients: number | 'all';
  /** Recipients with an open stream when it was published (null for broadcasts). */
  readonly online: number | null;
  /** Recipients without one: the users to reach by e-mail or mobile push instead. */
  readonly offline: readonly string[];
  /** The id was already in history (a retried publish): it was delivered again, not stored twice. */
  readonly duplicate: boolean;
}

/**
 * Past this many owning nodes one message to every node is cheaper than one
 * per node; every node drops the users it does not hold.
 */
export const MAX_TARGETED_NODES = 8;

/**
 * Publishes validated events, in order, for one publisher.
 *
 * The order inside is the delivery rule of DESIGN.md ("Delivery without loss
 * across reconnects"): history is written before owners are looked up, and a
 * node claims ownership before it reads the replay. Whichever of the two a
 * reconnecting tab sees second, it gets the event: either the lookup finds the
 * new stream, or the replay finds the event. Do not reorder these awaits.
 */
export interface PublishOptions {
  /** The events came as a batch: a fault names the failing index even in a batch of one. */
  readonly batch?: boolean;
}

export async function publish(
  events: readonly HeraldEvent[],
  deps: PublishDeps,
  publisherId: string,
  options: PublishOptions = {},
): Promise<PublishResult[]> {
  if (deps.limiter) {
    const decision = await deps.limiter.take(publisherId, events.length);
    if (!decision.allowed) {
      throw new HeraldError('rate_limited', 'publish rate exceeded for this publisher', { retryAfterMs: decision.retryAfterMs });
    }
  }
  const results: PublishResult[] = [];
  // One at a time: a user's events reach the bus in the order they were given.
  for (const [index, event] of events.entries()) {
    try {
      results.push(await publishOne(event, deps));
    } catch (error) {
      throw options.batch === true || events.length > 1 ? atIndex(error, index) : error;
    }
  }
  return results;
}

/**
 * A fault part-way through a batch: the notifications before `index` were
 * published, this one may have been stored, the rest were not. Saying where is
 * what lets the caller retry the rest, with the same ids.
 */
function atIndex(error: unknown, index: number): unknown {
  if (!(error instanceof HeraldError)) return error;
  return new HeraldError(error.code, `${error.message} (notifications before index ${index} were published)`, { ...error.details, index });
}

async function publishOne(event: HeraldEvent, deps: PublishDeps): Promise<PublishResult> {
  const { duplicate } = await deps.history.append(event);

  if ('all' in event.to) {
    await deps.bus.send({ kind: 'deliver', event }, 'all');
    return { id: event.id, recipients: 'all', online: null, offline: [], duplicate };
  }

  const users = event.to.users;
  const located = await deps.owners.locate(users);
  const nodes = new Set<string>();
  for (const held of located.values()) for (const node of held) nodes.add(node);
  const targets: BusTarget[] = nodes.size > MAX_TARGETED_NODES ? ['all'] : [...nodes].map((node) => ({ node }));
  // Users offline now get nothing live; if they reconnect with a position, the replay has the event.
  await Promise.all(targets.map((target) => deps.bus.send({ kind: 'deliver', event }, target)));

  return {
    id: event.id,
    recipients: users.length,
    online: located.size,
    offline: users.filter((u) => !located.has(u)),
    duplicate,
  };
}
