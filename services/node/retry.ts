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
  let pause = options.firstMs;
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (error) {
      if (Date.now() - started + pause > options.giveUpAfterMs || options.stopped?.() === true) throw error;
      onRetry?.(error, n);
      await new Promise((resolve) => setTimeout(resolve, pause / 2 + Math.random() * (pause / 2)));
      pause = Math.min(options.maxMs, pause * 2);
    }
  }
}
