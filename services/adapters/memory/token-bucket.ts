import { assertBudget, denial, tokensAt } from '../../shared/token-bucket';
import type { RateBudget, RateDecision, RateLimiter } from '../../ports/rate-limiter';
import { systemClock, type Clock } from '../../ports/clock';

interface Bucket {
  tokens: number;
  updatedAtMs: number;
}

/** Past this many keys, buckets that have refilled are forgotten (a fresh bucket is full anyway). */
const SWEEP_THRESHOLD = 10_000;

export class TokenBucketLimiter implements RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly budget: RateBudget,
    private readonly clock: Clock = systemClock,
  ) {
    assertBudget(budget);
  }

  take(key: string, cost = 1): Promise<RateDecision> {
    return Promise.resolve(this.takeNow(key, cost));
  }

  /** Synchronous form for hot paths such as accepting a connection. */
  takeNow(key: string, cost = 1): RateDecision {
    const now = this.clock();
    const bucket = this.refill(key, now);
    if (bucket.tokens >= cost) {
      bucket.tokens -= cost;
      return { allowed: true };
    }
    return denial(bucket.tokens, cost, this.budget);
  }

  close(): Promise<void> {
    this.buckets.clear();
    return Promise.resolve();
  }

  private refill(key: string, now: number): Bucket {
    let bucket = this.buckets.get(key);
    if (!bucket) {
      if (this.buckets.size >= SWEEP_THRESHOLD) this.sweep(now);
      bucket = { tokens: this.budget.burst, updatedAtMs: now };
      this.buckets.set(key, bucket);
      return bucket;
    }
    bucket.tokens = tokensAt(bucket, now, this.budget);
    bucket.updatedAtMs = now;
    return bucket;
  }

  private sweep(now: number): void {
    const fullAfterMs = (this.budget.burst / this.budget.perSecond) * 1000;
    for (const [key, bucket] of this.buckets) {
      if (now - bucket.updatedAtMs >= fullAfterMs) this.buckets.delete(key);
    }
  }
}
