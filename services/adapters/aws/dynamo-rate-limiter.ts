import { GetItemCommand, UpdateItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { systemClock, type Clock } from '../../ports/clock';
import type { RateBudget, RateDecision, RateLimiter } from '../../ports/rate-limiter';
import { unavailable } from '../../protocol/faults';
import { assertBudget } from '../../shared/token-bucket';
import { CONDITION_FAILED, call, conditional, keys, n, readNumber, ttlAt, type Item } from './dynamo-items';

export interface DynamoRateLimiterOptions {
  /** Shared with the rest of the process: `close()` leaves it open. */
  readonly client: DynamoDBClient;
  readonly tableName: string;
  readonly budget: RateBudget;
  /** @default the system clock */
  readonly clock?: Clock;
}

/** Kept this long past the latest moment the bucket can be full again; a deleted bucket reads as full anyway. */
const TTL_MARGIN_MS = 60_000;
/**
 * Grace for float rounding: `:limit` is computed in binary floating point on
 * epoch milliseconds (ulp ≈ 0.25 µs) while DynamoDB sums `tat` in decimal, so
 * an exact fit could otherwise miss by a rounding. It never accumulates: at
 * most 1 µs worth of tokens early.
 */
const EPSILON_MS = 0.001;
/** Keys whose last `tat` this instance remembers, to pick the right write first. */
const HINT_LIMIT = 10_000;
const BUCKET = 'rate bucket';

/**
 * `RateLimiter` on the single table (table.ts): GCRA, the exact equivalent of
 * the shared token bucket, item pk `rate#<key>` holding `tat`, the theoretical
 * arrival time in ms (`tat ≤ now` is a full bucket). With T = 1000/perSecond,
 * a take of cost c is allowed iff max(tat, now) + c·T − now ≤ burst·T.
 *
 * A take is conditional UpdateItems, never a read–modify–write, so concurrent
 * takes never collide: DynamoDB serialises them on the item.
 * - busy: `tat = tat + c·T` if `now < tat ≤ limit` (limit = now + (burst − c)·T)
 * - idle: `tat = now + c·T` if `tat` is absent or `≤ now`
 * Every write moves `tat` forward, so once idle has failed, `tat > now` for
 * good and busy can only fail on a real denial: a take needs at most two
 * writes, and the remembered `tat` (a lower bound of the stored one) picks the
 * right write first, so the usual take is one request (two when another
 * instance made an idle bucket busy since this one looked). A denial writes
 * nothing; it reads `tat` for `retryAfterMs` (denials are rare, and dynalite
 * does not support ReturnValuesOnConditionCheckFailure).
 *
 * Items written by the read–modify–write version (`tokens`, `updatedAtMs`, no
 * `tat`) read as a full bucket: the first take after a deploy takes the idle
 * write.
 */
export class DynamoRateLimiter implements RateLimiter {
  private readonly client: DynamoDBClient;
  private readonly tableName: string;
  private readonly budget: RateBudget;
  private readonly clock: Clock;
  /** ms per token */
  private readonly intervalMs: number;
  /** The last `tat` seen per key: only ever lower than the stored one, since `tat` only grows. */
  private readonly hints = new Map<string, number>();

  constructor(options: DynamoRateLimiterOptions) {
    const { budget } = options;
    assertBudget(budget);
    this.client = options.client;
    this.tableName = options.tableName;
    this.budget = budget;
    this.clock = options.clock ?? systemClock;
    this.intervalMs = 1000 / budget.perSecond;
  }

  async take(key: string, cost = 1): Promise<RateDecision> {
    // A negative cost would move `tat` back, and every "at most two writes" argument with it.
    if (!(cost >= 0 && Number.isFinite(cost))) throw new Error(`a rate take needs a finite cost >= 0; got ${cost}`);
    const now = this.clock();
    if (cost > this.budget.burst) return this.denial(await this.read(key), now, cost);
    const limit = now + (this.budget.burst - cost) * this.intervalMs + EPSILON_MS;
    // Twice at most: the second round only runs when the read contradicts the hint (the item
    // expired under it), never for contention, since concurrent writes only move `tat` forward.
    for (let round = 0; round < 2; round++) {
      const hint = this.hints.get(key) ?? Number.NEGATIVE_INFINITY;
      if (hint <= limit) {
        const busy = (): Promise<number | typeof CONDITION_FAILED> => this.busy(key, now, cost, limit);
        const writes = hint > now ? [busy] : [() => this.idle(key, now, cost), busy];
        for (const write of writes) {
          const tat = await write();
          if (tat !== CONDITION_FAILED) {
            this.remember(key, tat);
            return { allowed: true };
          }
        }
      }
      const tat = await this.read(key);
      if (tat > limit) return this.denial(tat, now, cost);
    }
    throw unavailable('rate bucket changed under every write (its item expired while in use?)');
  }

  /** The shared client belongs to the composition root; this adapter holds nothing else. */
  close(): Promise<void> {
    this.hints.clear();
    return Promise.resolve();
  }

  private busy(key: string, now: number, cost: number, limit: number): Promise<number | typeof CONDITION_FAILED> {
    return this.update(key, now, 'SET #tat = #tat + :cost, #ttl = :ttl', '#tat > :now AND #tat <= :limit', {
      ':cost': n(cost * this.intervalMs),
      ':now': n(now),
      ':limit': n(limit),
    });
  }

  private idle(key: string, now: number, cost: number): Promise<number | typeof CONDITION_FAILED> {
    return this.update(key, now, 'SET #tat = :tat, #ttl = :ttl', 'attribute_not_exists(#tat) OR #tat <= :now', {
      ':tat': n(now + cost * this.intervalMs),
      ':now': n(now),
    });
  }

  /** Both writes leave `tat ≤ now + burst·T`, so the bucket is full by then; `ttl` is that plus the margin. */
  private async update(key: string, now: number, set: string, condition: string, values: Item): Promise<number | typeof CONDITION_FAILED> {
    const out = await conditional('dynamodb.updateItem', () =>
      this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: keys.rate(key),
          UpdateExpression: set,
          ConditionExpression: condition,
          ExpressionAttributeNames: { '#tat': 'tat', '#ttl': 'ttl' },
          ExpressionAttributeValues: { ...values, ':ttl': ttlAt(now + this.budget.burst * this.intervalMs + TTL_MARGIN_MS) },
          ReturnValues: 'UPDATED_NEW',
        }),
      ),
    );
    if (out === CONDITION_FAILED) return out;
    return readNumber(out.Attributes ?? {}, 'tat', BUCKET);
  }

  /** The stored `tat`; an absent bucket is full, which `-Infinity` says for every `now`. */
  private async read(key: string): Promise<number> {
    const { Item } = await call('dynamodb.getItem', () =>
      this.client.send(new GetItemCommand({ TableName: this.tableName, Key: keys.rate(key), ConsistentRead: true })),
    );
    // No item, or one from before `tat` (see above): a full bucket.
    if (Item?.tat === undefined) {
      this.hints.delete(key);
      return Number.NEGATIVE_INFINITY;
    }
    const tat = readNumber(Item, 'tat', BUCKET);
    this.remember(key, tat);
    return tat;
  }

  /**
   * The wait until a take of `cost` (at most the burst: a larger one never
   * fits, and the memory adapter answers it the same way) would fit, rounded
   * up to whole ms.
   */
  private denial(tat: number, now: number, cost: number): RateDecision {
    const { burst } = this.budget;
    const waitMs = Math.max(tat, now) - now + (Math.min(cost, burst) - burst) * this.intervalMs;
    return { allowed: false, retryAfterMs: Math.max(1, Math.ceil(waitMs - EPSILON_MS)) };
  }

  private remember(key: string, tat: number): void {
    this.hints.delete(key);
    if (this.hints.size >= HINT_LIMIT) this.hints.delete(this.hints.keys().next().value!);
    this.hints.set(key, tat);
  }
}
