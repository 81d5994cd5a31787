import { assertBudget, denial, tokensAt } from '../../shared/token-bucket';
import { GetItemCommand, PutItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { systemClock, type Clock } from '../../ports/clock';
import type { RateBudget, RateDecision, RateLimiter } from '../../ports/rate-limiter';
import { unavailable } from '../../protocol/faults';
import { CONDITION_FAILED, backoff, call, conditional, keys, n, readNumber, ttlAt, type Item } from './dynamo-items';
import { TABLE } from './table';

export interface DynamoRateLimiterOptions {
  /** Shared with the rest of the process: `close()` leaves it open. */
  readonly client: DynamoDBClient;
  readonly tableName: string;
  readonly budget: RateBudget;
  /** @default the system clock */
  readonly clock?: Clock;
}

/**
 * Each take that lost a race retries; a loss means another take was written,
 * so on a fresh key no take loses more than `burst` times.
 */
const MAX_ATTEMPTS = 12;
/** Kept this long past the moment the bucket is full again; a deleted bucket reads as full anyway. */
const TTL_MARGIN_MS = 60_000;
const BUCKET = 'rate bucket';

/**
 * `RateLimiter` on the single table (table.ts): a token bucket per key, item
 * pk `rate#<key>` with `tokens` and `updatedAtMs`, the same arithmetic as the
 * memory adapter's. Shared by every publisher instance, so the budget holds
 * across Lambdas and nodes.
 *
 * The refill depends on elapsed time, which an UpdateExpression cannot
 * multiply, so a take is read–compute–conditional write, retried on conflict.
 * A denial writes nothing, so it spends nothing.
 */
export class DynamoRateLimiter implements RateLimiter {
  private readonly client: DynamoDBClient;
  private readonly tableName: string;
  private readonly budget: RateBudget;
  private readonly clock: Clock;

  constructor(options: DynamoRateLimiterOptions) {
    const { budget } = options;
    assertBudget(budget);
    this.client = options.client;
    this.tableName = options.tableName;
    this.budget = budget;
    this.clock = options.clock ?? systemClock;
  }

  async take(key: string, cost = 1): Promise<RateDecision> {
    const { perSecond, burst } = this.budget;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      if (attempt > 0) await backoff(attempt);
      const { Item } = await call('dynamodb.getItem', () =>
        this.client.send(new GetItemCommand({ TableName: this.tableName, Key: keys.rate(key), ConsistentRead: true })),
      );
      const now = this.clock();
      const stored = Item ? { tokens: readNumber(Item, 'tokens', BUCKET), updatedAtMs: readNumber(Item, 'updatedAtMs', BUCKET) } : undefined;
      const tokens = tokensAt(stored, now, this.budget);
      if (tokens < cost) return denial(tokens, cost, this.budget);
      const left = tokens - cost;
      // Never backwards: an instance whose clock lags must not hand out the refill twice.
      const updatedAtMs = Math.max(now, stored?.updatedAtMs ?? now);
      const fullAtMs = updatedAtMs + ((burst - left) / perSecond) * 1000;
      const item: Item = { ...keys.rate(key), tokens: n(left), updatedAtMs: n(updatedAtMs), ttl: ttlAt(fullAtMs + TTL_MARGIN_MS) };
      const written = await conditional('dynamodb.putItem', () =>
        this.client.send(new PutItemCommand({ TableName: this.tableName, Item: item, ...unchangedSince(Item) })),
      );
      if (written !== CONDITION_FAILED) return { allowed: true };
    }
    throw unavailable(`rate bucket kept colliding with concurrent takes (${MAX_ATTEMPTS} attempts)`);
  }

  /** The shared client belongs to the composition root; this adapter holds nothing else. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * The write's condition: the bucket is exactly as read. Both attributes, as
 * read (the same number strings): two takes in one millisecond leave
 * `updatedAtMs` alone, so it alone would let both spend the same token; and at
 * one `updatedAtMs` tokens only go down, so the pair never repeats.
 */
function unchangedSince(read: Item | undefined): {
  ConditionExpression: string;
  ExpressionAttributeNames: Record<string, string>;
  ExpressionAttributeValues?: Item;
} {
  if (!read) return { ConditionExpression: 'attribute_not_exists(#pk)', ExpressionAttributeNames: { '#pk': TABLE.partitionKey } };
  return {
    ConditionExpression: '#t = :t AND #u = :u',
    ExpressionAttributeNames: { '#t': 'tokens', '#u': 'updatedAtMs' },
    ExpressionAttributeValues: { ':t': read.tokens!, ':u': read.updatedAtMs! },
  };
}
