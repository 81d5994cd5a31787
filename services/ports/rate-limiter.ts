export type RateDecision = { readonly allowed: true } | { readonly allowed: false; readonly retryAfterMs: number };

export interface RateBudget {
  /** Sustained rate. */
  readonly perSecond: number;
  /** Most that may be spent at once after a quiet period. */
  readonly burst: number;
}

/**
 * A send budget per key (a publisher, a client address).
 *
 * Contract (every adapter passes `test/contract/rate-limiter.contract.ts`):
 * - A fresh key may spend up to `burst` at once; past that, `take` answers
 *   `{ allowed: false, retryAfterMs }` with a positive wait, and spends nothing.
 * - Budget comes back at `perSecond`; keys are independent.
 * - A denial is a value, never an exception. Faults reject with `unavailable`.
 */
export interface RateLimiter {
  take(key: string, cost?: number): Promise<RateDecision>;
  close(): Promise<void>;
}
