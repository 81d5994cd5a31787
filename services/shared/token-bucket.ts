import type { RateBudget, RateDecision } from '../ports/rate-limiter';

/** A bucket as stored: tokens left at an instant. */
export interface BucketState {
  readonly tokens: number;
  readonly updatedAtMs: number;
}

/**
 * The token-bucket arithmetic every `RateLimiter` adapter shares, so the memory
 * and DynamoDB adapters grant exactly the same budget: a fresh bucket is full,
 * and it refills at `perSecond` up to `burst`.
 */
export function tokensAt(state: BucketState | undefined, nowMs: number, budget: RateBudget): number {
  if (!state) return budget.burst;
  return Math.min(budget.burst, state.tokens + (Math.max(0, nowMs - state.updatedAtMs) / 1000) * budget.perSecond);
}

/** The denial for a take of `cost` with `tokens` left: how long until it would succeed. */
export function denial(tokens: number, cost: number, budget: RateBudget): Extract<RateDecision, { allowed: false }> {
  const missing = Math.min(cost, budget.burst) - tokens;
  return { allowed: false, retryAfterMs: Math.max(1, Math.ceil((missing / budget.perSecond) * 1000)) };
}

export function assertBudget(budget: RateBudget): void {
  if (!(budget.perSecond > 0) || !(budget.burst >= 1)) throw new Error('rate budget needs perSecond > 0 and burst >= 1');
}
