/**
 * Every wait (in a test, in `npm run cluster`) has a deadline and a label, so
 * a missing event fails with "timed out after 2000 ms waiting for `replaced`
 * on tab 1" instead of hanging until the test timeout.
 */
export async function withDeadline<T>(promise: Promise<T>, ms: number, label: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${label}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `check` until it returns true; for state that has no event to wait on (a metric, a map size). */
export async function eventually(check: () => boolean | Promise<boolean>, ms: number, label: string): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${label}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
