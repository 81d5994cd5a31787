import { backoffCeiling, delay, equalJitter } from '../shared/backoff';

/**
 * Runs `attempt` until it resolves, waiting a jittered, doubling pause between
 * failures (`firstMs` up to `maxMs`), and gives up — rethrowing the last error —
 * once `giveUpAfterMs` have passed or `stopped()` says the caller went away.
 */
export async function retryWithBackoff<T>(
  attempt: () => Promise<T>,
  options: { readonly firstMs: number; readonly maxMs: number; readonly giveUpAfterMs: number; readonly stopped?: () => boolean },
  onRetry?: (error: unknown, attempt: number) => void,
): Promise<T> {
  const started = Date.now();
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (error) {
      const pause = backoffCeiling(n - 1, options);
      if (Date.now() - started + pause > options.giveUpAfterMs || options.stopped?.() === true) throw error;
      onRetry?.(error, n);
      await delay(equalJitter(pause));
    }
  }
}
