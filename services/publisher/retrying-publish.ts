import type { Bus, BusMessage, BusTarget } from '../ports/bus';
import type { AppendResult, History } from '../ports/history';
import type { RateLimiter } from '../ports/rate-limiter';
import type { HeraldEvent } from '../protocol/envelope';
import { isHeraldError } from '../protocol/errors';
import type { Logger } from '../shared/log';
import { publish, type PublishDeps, type PublishResult } from './publish';

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  readonly attempts: number;
  /** Ceiling of the first pause; it doubles for each further one, up to `maxDelayMs`. */
  readonly firstDelayMs: number;
  readonly maxDelayMs: number;
}

/** A few quick attempts: well inside a Lambda's timeout, long enough for a throttle or a dropped connection. */
export const DEFAULT_RETRY: RetryPolicy = { attempts: 3, firstDelayMs: 100, maxDelayMs: 1_000 };

export interface RetryingPublishOptions {
  readonly batch: boolean;
  readonly log: Logger;
  /** @default DEFAULT_RETRY */
  readonly retry?: RetryPolicy;
}

/**
 * `publish()` with transient faults (`unavailable`) retried on the very same
 * events, whose ids were minted once at validation: a retry is idempotent,
 * since history dedupes an id it already stored. Anything else (a refusal, a
 * bug) and the last fault are thrown as they are.
 *
 * Each retry runs the whole of `publish()` again, the delivery ordering
 * included, but the steps an earlier attempt completed are remembered instead
 * of repeated (`rememberCompleted`): the budget is charged once, a stored
 * event is not appended again (so its `duplicate` stays what the first append
 * said), and a bus message that was accepted is not sent twice. Owners are
 * looked up afresh: that is the presence the answer reports.
 */
export async function publishWithRetry(
  events: readonly HeraldEvent[],
  deps: PublishDeps,
  publisherId: string,
  options: RetryingPublishOptions,
): Promise<PublishResult[]> {
  const retry = options.retry ?? DEFAULT_RETRY;
  const steps = rememberCompleted(deps);
  for (let attempt = 1; ; attempt++) {
    try {
      return await publish(events, steps, publisherId, { batch: options.batch });
    } catch (error) {
      if (!isHeraldError(error) || error.code !== 'unavailable' || attempt >= retry.attempts) throw error;
      const { index } = error.details;
      options.log.warn('publish.retrying', { publisherId, attempt, notifications: events.length, ...(index === undefined ? {} : { index }), error });
      await pause(attempt, retry);
    }
  }
}

/**
 * The ports, wrapped to remember what succeeded across the attempts of one
 * call. Keyed by the event objects themselves, which every attempt shares, so
 * two notifications of one batch that carry the same id stay apart.
 */
function rememberCompleted(deps: PublishDeps): PublishDeps {
  const appended = new Map<HeraldEvent, AppendResult>();
  const sent = new Map<HeraldEvent, Set<string>>();
  let charged = false;

  const history: History = {
    append: async (event) => {
      const known = appended.get(event);
      if (known) return known;
      const result = await deps.history.append(event);
      appended.set(event, result);
      return result;
    },
    since: (userId, lastEventId, limit) => deps.history.since(userId, lastEventId, limit),
    close: () => deps.history.close(),
  };

  const bus: Bus = {
    start: (nodeId, onMessage) => deps.bus.start(nodeId, onMessage),
    send: async (message: BusMessage, target: BusTarget) => {
      if (message.kind !== 'deliver') return deps.bus.send(message, target);
      const to = target === 'all' ? 'all' : `node:${target.node}`;
      const done = sent.get(message.event) ?? new Set<string>();
      if (done.has(to)) return;
      await deps.bus.send(message, target);
      done.add(to);
      sent.set(message.event, done);
    },
    close: () => deps.bus.close(),
  };

  const inner = deps.limiter;
  const limiter: RateLimiter | undefined = inner && {
    take: async (key, cost) => {
      if (charged) return { allowed: true };
      const decision = await inner.take(key, cost);
      if (decision.allowed) charged = true;
      return decision;
    },
    close: () => inner.close(),
  };

  return { history, owners: deps.owners, bus, ...(limiter ? { limiter } : {}) };
}

/** Half fixed, half random: publishers that failed together do not retry together. */
function pause(attempt: number, retry: RetryPolicy): Promise<void> {
  const ceiling = Math.min(retry.maxDelayMs, retry.firstDelayMs * 2 ** (attempt - 1));
  return new Promise((resolve) => setTimeout(resolve, ceiling / 2 + Math.random() * (ceiling / 2)));
}
