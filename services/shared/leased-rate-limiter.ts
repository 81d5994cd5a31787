import { systemClock, type Clock } from '../ports/clock';
import type { RateBudget, RateDecision, RateLimiter } from '../ports/rate-limiter';
import { assertBudget } from './token-bucket';

export interface LeasedRateLimiterOptions {
  /** The budget every process shares (DynamoDB in the AWS shape). `close()` closes it. */
  readonly shared: RateLimiter;
  /** The shared limiter's budget: it caps the chunk one process may hold. */
  readonly budget: RateBudget;
  /** How long leased tokens may be spent before they are discarded. @default 1000 */
  readonly leaseMs?: number;
  /** @default the system clock */
  readonly clock?: Clock;
}

/** Past this many keys, those holding nothing are forgotten. */
const SWEEP_THRESHOLD = 10_000;

interface Lease {
  /** Leased from the shared budget and not yet spent. */
  tokens: number;
  /** When `tokens` are discarded. */
  expiresAtMs: number;
  /** When the lease holding `tokens` was requested. */
  leasedAtMs: number;
  /** What a lease asks for beyond the take that needed it. */
  chunk: number;
  /** The one lease request in flight for this key; concurrent takes wait for it. */
  inFlight: Promise<void> | undefined;
  /** The shared budget refused `blockedCost` until then: a take needing as much is refused here. */
  blockedUntilMs: number;
  blockedCost: number;
}

/**
 * A `RateLimiter` over a shared one that leases tokens in chunks and spends
 * them locally, so a busy publisher costs the shared budget (a DynamoDB
 * write) one request per chunk, not one per publish.
 *
 * Per key: a take spends local tokens while they last. A take they cannot
 * cover leases its shortfall plus the chunk; if that is refused it asks for
 * the shortfall alone, and only then refuses, with the shared budget's
 * `retryAfterMs` (for the shortfall), local tokens untouched. Concurrent
 * takes on a key share one lease request. The chunk starts at the first
 * take's cost, doubles while leases run out within half their life, falls to
 * what was spent when a lease expires unspent, halves when refused, and is
 * capped at min(perSecond/20, burst/10), at least 1.
 *
 * Tolerance: leased tokens are never refunded and expire after `leaseMs`, so
 * no process spends a token the shared budget did not grant, and the global
 * limit is never exceeded: the sustained rate stays ≤ perSecond. A token may
 * be spent up to `leaseMs` after it was granted, so a short window can see
 * the tokens then held as well, at most processes × cap. A publisher can be
 * refused only while the budget less the unspent leases of other processes
 * (≤ processes × cap) is exhausted. The budget's contract holds otherwise,
 * except that `retryAfterMs` covers the shortfall: if the local tokens expire
 * meanwhile, the retry may be refused again.
 */
export class LeasedRateLimiter implements RateLimiter {
  private readonly shared: RateLimiter;
  private readonly budget: RateBudget;
  private readonly leaseMs: number;
  private readonly clock: Clock;
  private readonly maxChunk: number;
  private readonly leases = new Map<string, Lease>();

  constructor(options: LeasedRateLimiterOptions) {
    assertBudget(options.budget);
    this.shared = options.shared;
    this.budget = options.budget;
    this.leaseMs = options.leaseMs ?? 1000;
    if (!(this.leaseMs > 0)) throw new Error('a lease needs leaseMs > 0');
    this.clock = options.clock ?? systemClock;
    this.maxChunk = Math.max(1, Math.floor(Math.min(options.budget.perSecond / 20, options.budget.burst / 10)));
  }

  async take(key: string, cost = 1): Promise<RateDecision> {
    if (!(cost >= 0 && Number.isFinite(cost))) throw new Error(`a rate take needs a finite cost >= 0; got ${cost}`);
    for (;;) {
      const now = this.clock();
      const lease = this.current(key, now, cost);
      if (lease.tokens >= cost) {
        lease.tokens -= cost;
        return { allowed: true };
      }
      if (lease.inFlight) {
        // Its fault, if any, is this take's too: one failing request, not one per waiter.
        await lease.inFlight;
        continue;
      }
      const shortfall = cost - lease.tokens;
      if (now < lease.blockedUntilMs && shortfall >= lease.blockedCost) return { allowed: false, retryAfterMs: lease.blockedUntilMs - now };
      const request = this.lease(key, lease, shortfall, now);
      const inFlight = request.then(() => undefined).finally(() => {
        lease.inFlight = undefined;
      });
      lease.inFlight = inFlight;
      await inFlight;
      return request;
    }
  }

  close(): Promise<void> {
    this.leases.clear();
    return this.shared.close();
  }

  /**
   * Leases `shortfall` plus the chunk for a take that spends the local tokens
   * with it, so what is left is the chunk, valid from `now`: the old tokens are
   * spent, never carried past their own expiry.
   */
  private async lease(key: string, lease: Lease, shortfall: number, now: number): Promise<RateDecision> {
    if (lease.expiresAtMs > now && now - lease.leasedAtMs < this.leaseMs / 2) lease.chunk = Math.min(this.maxChunk, lease.chunk * 2);
    const reserved = lease.tokens;
    lease.tokens = 0;
    try {
      // Never more than the burst: the shared budget would refuse it outright.
      const extra = Math.max(0, Math.min(lease.chunk, this.budget.burst - shortfall));
      if (extra > 0 && (await this.shared.take(key, shortfall + extra)).allowed) {
        Object.assign(lease, { tokens: extra, leasedAtMs: now, expiresAtMs: now + this.leaseMs });
        return { allowed: true };
      }
      if (extra > 0) lease.chunk = Math.max(1, Math.floor(lease.chunk / 2));
      const decision = await this.shared.take(key, shortfall);
      if (decision.allowed) return decision;
      lease.tokens = reserved;
      Object.assign(lease, { blockedUntilMs: now + decision.retryAfterMs, blockedCost: shortfall });
      return decision;
    } catch (error) {
      lease.tokens = reserved;
      throw error;
    }
  }

  /** The key's lease as of `now`: expired tokens discarded, and the chunk cut to what was spent of them. */
  private current(key: string, now: number, cost: number): Lease {
    let lease = this.leases.get(key);
    if (!lease) {
      if (this.leases.size >= SWEEP_THRESHOLD) this.sweep(now);
      lease = {
        tokens: 0,
        expiresAtMs: now,
        leasedAtMs: Number.NEGATIVE_INFINITY,
        chunk: Math.min(this.maxChunk, Math.max(1, cost)),
        inFlight: undefined,
        blockedUntilMs: now,
        blockedCost: 0,
      };
      this.leases.set(key, lease);
    } else if (lease.expiresAtMs <= now && lease.tokens > 0 && !lease.inFlight) {
      lease.chunk = Math.max(1, lease.chunk - lease.tokens);
      lease.tokens = 0;
    }
    return lease;
  }

  private sweep(now: number): void {
    for (const [key, lease] of this.leases) {
      if (!lease.inFlight && (lease.tokens === 0 || lease.expiresAtMs <= now) && lease.blockedUntilMs <= now) this.leases.delete(key);
    }
  }
}
