/**
 * Pauses between retries, in one place for the node, the adapters, the
 * publishers and the browser client: a ceiling that starts at `firstMs` and
 * doubles with each failure up to `maxMs`, and a jittered draw under it, so
 * that callers that failed together do not retry together. No imports: the
 * browser client bundles it.
 */
export interface BackoffPolicy {
  /** Ceiling before the first retry. */
  readonly firstMs: number;
  /** Largest ceiling, however many failures in a row. */
  readonly maxMs: number;
}

/** The ceiling before retry `n`, counted from 0. */
export function backoffCeiling(n: number, policy: BackoffPolicy): number {
  return Math.min(policy.maxMs, policy.firstMs * 2 ** Math.min(Math.max(0, n), 30));
}

/** Between half the ceiling and the ceiling ("equal jitter"): spread out, and never much sooner than asked. */
export function equalJitter(ceiling: number, random: () => number = Math.random): number {
  return ceiling / 2 + random() * (ceiling / 2);
}

/** Anywhere up to the ceiling ("full jitter"): for writers that collided on one item and must not collide again. */
export function fullJitter(ceiling: number, random: () => number = Math.random): number {
  return random() * ceiling;
}

/** Resolves after `ms`. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
