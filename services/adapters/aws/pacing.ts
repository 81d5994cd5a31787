/** Pacing shared by the aws adapters' batch loops and retries (DynamoDB and SNS alike). */
import { backoffCeiling, delay, fullJitter } from '../../shared/backoff';

/**
 * Full jitter (a random wait up to a doubling ceiling): writers that collided
 * on one item must not collide again on the retry.
 */
export function backoff(attempt: number, firstMs = 10, maxMs = 250): Promise<void> {
  return delay(fullJitter(backoffCeiling(attempt, { firstMs, maxMs })));
}

/** `fn` over `items` with at most `limit` in flight; results in input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
