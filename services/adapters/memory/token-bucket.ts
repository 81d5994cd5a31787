import { assertBudget, denial, tokensAt } from '../../shared/token-bucket';
import type { RateBudget, RateDecision, RateLimiter } from '../../ports/rate-limiter';
import { systemClock, type Clock } from '../../ports/clock';

interface Bucket {
  tokens: number;
  updatedAtMs: number;
}

/**
 * Keys held at most. The connect limiter is keyed by client address and runs
 * before authentication, so anyone can make new keys: the map must be bounded
 * whatever the traffic. About 100 bytes a key.
 */
export const DEFAULT_MAX_KEYS = 50_000;

export interface TokenBucketOptions {
  /** @default DEFAULT_MAX_KEYS */
  readonly maxKeys?: number;
}

/**
 * Token buckets in memory, one per key. The map is kept in the order keys
 * were last used (a used key moves to the end), so the buckets that have had
 * time to refill are always at the front: each new key drops those first,
 * one at a time, and every key is dropped at most once after each use. That
 * is constant work per admission, amortised, where a scan of the whole map
 * per new key stalled the event loop for seconds under a flood of addresses.
 * A refilled bucket is forgotten with nothing lost: a fresh one is full too.
 * At `maxKeys`, the least recently used key is dropped even if it had not
 * refilled: it is the one that was quiet longest, and forgetting it can only
 * be lenient to it, never refuse anyone.
 */
export class TokenBucketLimiter implements RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  /** The key at the end of the map: the one used last. */
  private lastKey: string | undefined;
  private readonly maxKeys: number;
  private readonly fullAfterMs: number;

  constructor(
    private readonly budget: RateBudget,
    private readonly clock: Clock = systemClock,
    options: TokenBucketOptions = {},
  ) {
    assertBudget(budget);
    this.maxKeys = options.maxKeys ?? DEFAULT_MAX_KEYS;
    if (!Number.isInteger(this.maxKeys) || this.maxKeys < 1) throw new RangeError(`maxKeys must be a whole number of at least 1, got ${this.maxKeys}`);
    this.fullAfterMs = (budget.burst / budget.perSecond) * 1000;
  }

  /** Keys held now, for tests and metrics. */
  get size(): number {
    return this.buckets.size;
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
    this.lastKey = undefined;
    return Promise.resolve();
  }

  private refill(key: string, now: number): Bucket {
    let bucket = this.buckets.get(key);
    if (bucket) {
      bucket.tokens = tokensAt(bucket, now, this.budget);
      bucket.updatedAtMs = now;
      // To the end of the map, so the front stays the least recently used;
      // the key used last is there already (one publisher in a row, one client).
      if (key !== this.lastKey) {
        this.buckets.delete(key);
        this.buckets.set(key, bucket);
        this.lastKey = key;
      }
      return bucket;
    }
    this.dropRefilled(now);
    if (this.buckets.size >= this.maxKeys) this.dropOldest();
    bucket = { tokens: this.budget.burst, updatedAtMs: now };
    this.buckets.set(key, bucket);
    this.lastKey = key;
    return bucket;
  }

  /** Drops buckets from the front while they have refilled; stops at the first that has not. */
  private dropRefilled(now: number): void {
    for (const [key, bucket] of this.buckets) {
      if (now - bucket.updatedAtMs < this.fullAfterMs) return;
      this.buckets.delete(key);
    }
  }

  private dropOldest(): void {
    const oldest = this.buckets.keys().next();
    if (oldest.done !== true) this.buckets.delete(oldest.value);
  }
}
