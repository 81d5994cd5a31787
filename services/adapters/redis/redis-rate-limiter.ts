import { systemClock, type Clock } from '../../ports/clock';
import type { RateBudget, RateDecision, RateLimiter } from '../../ports/rate-limiter';
import { assertBudget } from '../../shared/token-bucket';
import { luaScript, type RedisCommands } from './redis-connection';
import { DEFAULT_KEY_PREFIX, redisKeys, type RedisKeys } from './redis-keys';

/**
 * One take, GCRA: `tat` is the theoretical arrival time in ms (`tat ≤ now` is
 * a full bucket). A take of cost c fits iff max(tat, now) ≤ limit, with limit
 * = now + (burst − c)·T computed by the caller; then tat moves on by c·T.
 * A denial writes nothing and answers max(tat, now) for the wait. `tat` is
 * written with %.17g: Lua's default tostring keeps 14 digits, which would
 * drop the fraction of a 13-digit epoch and let rounding pile up.
 * KEYS: the bucket. ARGV: now, cost·T, limit, ttl margin ms.
 */
const TAKE = luaScript(
  'rate-take',
  `local now = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
if tat > tonumber(ARGV[3]) then return {0, string.format('%.17g', tat)} end
local next = tat + tonumber(ARGV[2])
redis.call('SET', KEYS[1], string.format('%.17g', next), 'PX', math.ceil(next - now + tonumber(ARGV[4])))
return {1}`,
);

/** Kept this long past the moment the bucket is full again; a vanished bucket reads as full anyway. */
const TTL_MARGIN_MS = 60_000;
/**
 * Grace for float rounding, as in DynamoRateLimiter: `limit` is computed in
 * binary floating point on epoch milliseconds, so an exact fit could miss
 * by a rounding. At most 1 µs worth of tokens early, never accumulating.
 */
const EPSILON_MS = 0.001;

export interface RedisRateLimiterOptions {
  /** Shared with the rest of the process: `close()` leaves it open. */
  readonly redis: RedisCommands;
  readonly budget: RateBudget;
  /** @default 'herald:' */
  readonly keyPrefix?: string;
  /** Its time is passed to the script, so that every process of a fleet decides by the same kind of clock. @default the system clock */
  readonly clock?: Clock;
}

/**
 * `RateLimiter` on Redis: one key per budget key, `{rate:<key>}`, holding the
 * GCRA `tat`, and one script call per take, so concurrent takes (from every
 * process of a fleet) are serialised by Redis and never overspend. It grants
 * exactly what the shared token bucket grants: a fresh key spends `burst` at
 * once, then refills at `perSecond`.
 */
export class RedisRateLimiter implements RateLimiter {
  private readonly redis: RedisCommands;
  private readonly keys: RedisKeys;
  private readonly budget: RateBudget;
  private readonly clock: Clock;
  /** ms per token */
  private readonly intervalMs: number;

  constructor(options: RedisRateLimiterOptions) {
    assertBudget(options.budget);
    this.redis = options.redis;
    this.keys = redisKeys(options.keyPrefix ?? DEFAULT_KEY_PREFIX);
    this.budget = options.budget;
    this.clock = options.clock ?? systemClock;
    this.intervalMs = 1000 / options.budget.perSecond;
  }

  async take(key: string, cost = 1): Promise<RateDecision> {
    // A negative cost would move `tat` back and hand out budget.
    if (!(cost >= 0 && Number.isFinite(cost))) throw new Error(`a rate take needs a finite cost >= 0; got ${cost}`);
    const now = this.clock();
    const { burst } = this.budget;
    // A take above the burst never fits (a limit below every `tat`); its wait is that of a whole burst, as the memory adapter answers.
    const limit = cost > burst ? -1 : now + (burst - cost) * this.intervalMs + EPSILON_MS;
    const reply = await this.redis.script(TAKE, [this.keys.rate(key)], [String(now), String(cost * this.intervalMs), String(limit), String(TTL_MARGIN_MS)]);
    if (!Array.isArray(reply)) throw new Error(`rate-take answered ${JSON.stringify(reply)}`);
    if (reply[0] === 1) return { allowed: true };
    const tat = Number(reply[1]);
    if (!Number.isFinite(tat)) throw new Error(`rate-take answered ${JSON.stringify(reply)}`);
    const waitMs = tat - now + (Math.min(cost, burst) - burst) * this.intervalMs;
    return { allowed: false, retryAfterMs: Math.max(1, Math.ceil(waitMs - EPSILON_MS)) };
  }

  /** The connection belongs to the composition root; this adapter holds nothing else. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}
