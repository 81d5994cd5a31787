import type { HeraldEvent } from '../protocol/envelope';
import { isHeraldError, withIds } from '../protocol/errors';
import { backoffCeiling, delay, equalJitter } from '../shared/backoff';
import type { Logger } from '../shared/log';
import { PublishProgress, publish, type PublishDeps, type PublishResult } from './publish';

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
 * events, whose ids were minted once at validation. Every attempt shares one
 * `PublishProgress`, so a retry runs the whole of `publish()` again, the
 * delivery ordering included, but repeats none of what an earlier attempt
 * completed (the budget, a stored batch, an accepted delivery). Anything else
 * (a refusal, a bug) and the last fault are thrown as they are.
 */
export async function publishWithRetry(
  events: readonly HeraldEvent[],
  deps: PublishDeps,
  publisherId: string,
  options: RetryingPublishOptions,
): Promise<PublishResult[]> {
  const retry = options.retry ?? DEFAULT_RETRY;
  const progress = new PublishProgress();
  for (let attempt = 1; ; attempt++) {
    try {
      return await publish(events, deps, publisherId, { batch: options.batch, progress });
    } catch (error) {
      // Past the retries its fate is unknown: name the ids, minted ones included, for the caller's own retry.
      if (!isHeraldError(error) || error.code !== 'unavailable' || attempt >= retry.attempts) throw withIds(error, events.map((e) => e.id));
      const { index } = error.details;
      options.log.warn('publish.retrying', { publisherId, attempt, notifications: events.length, ...(index === undefined ? {} : { index }), error });
      await pause(attempt, retry);
    }
  }
}

/** Half fixed, half random: publishers that failed together do not retry together. */
function pause(attempt: number, retry: RetryPolicy): Promise<void> {
  return delay(equalJitter(backoffCeiling(attempt - 1, { firstMs: retry.firstDelayMs, maxMs: retry.maxDelayMs })));
}
