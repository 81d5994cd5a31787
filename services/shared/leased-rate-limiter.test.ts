import { describe, expect, it } from 'vitest';
import { TokenBucketLimiter } from '../adapters/memory/token-bucket';
import type { RateBudget, RateDecision, RateLimiter } from '../ports/rate-limiter';
import { unavailable } from '../protocol/faults';
import { LeasedRateLimiter } from './leased-rate-limiter';

function manualClock(startMs = 1_700_000_000_000): { now: () => number; advance: (ms: number) => void } {
  let nowMs = startMs;
  return { now: () => nowMs, advance: (ms) => (nowMs += ms) };
}

/** The shared budget: a memory token bucket that records every lease asked of it, and can hold them in flight. */
class SharedBudget implements RateLimiter {
  readonly bucket: TokenBucketLimiter;
  /** Cost of each take, in order, with its answer. */
  readonly takes: Array<{ cost: number; allowed: boolean }> = [];
  inFlight = 0;
  maxInFlight = 0;
  /** While set, takes wait for it. */
  gate: Promise<void> | undefined;
  /** Rejects the next take with this fault. */
  failNext: Error | undefined;

  constructor(budget: RateBudget, clock: () => number) {
    this.bucket = new TokenBucketLimiter(budget, clock);
  }

  async take(key: string, cost = 1): Promise<RateDecision> {
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await this.gate;
      const fault = this.failNext;
      this.failNext = undefined;
      if (fault) throw fault;
      const decision = await this.bucket.take(key, cost);
      this.takes.push({ cost, allowed: decision.allowed });
      return decision;
    } finally {
      this.inFlight -= 1;
    }
  }

  costs(): number[] {
    return this.takes.map((t) => t.cost);
  }

  close(): Promise<void> {
    return this.bucket.close();
  }
}

function setUp(budget: RateBudget, leaseMs = 1_000): { clock: ReturnType<typeof manualClock>; shared: SharedBudget; leased: LeasedRateLimiter } {
  const clock = manualClock();
  const shared = new SharedBudget(budget, clock.now);
  return { clock, shared, leased: new LeasedRateLimiter({ shared, budget, clock: clock.now, leaseMs }) };
}

async function takeMany(limiter: RateLimiter, count: number, key = 'publisher-1'): Promise<number> {
  let allowed = 0;
  for (let i = 0; i < count; i++) if ((await limiter.take(key)).allowed) allowed += 1;
  return allowed;
}

describe('LeasedRateLimiter', () => {
  it('leases the first take plus a chunk of its cost, and spends the chunk locally', async () => {
    const { shared, leased } = setUp({ perSecond: 1_000, burst: 2_000 });

    expect(await leased.take('publisher-1', 3)).toEqual({ allowed: true });
    expect(shared.costs()).toEqual([6]);
    expect(await leased.take('publisher-1', 2)).toEqual({ allowed: true });
    expect(await leased.take('publisher-1', 1)).toEqual({ allowed: true });
    expect(shared.costs()).toEqual([6]);
  });

  it('doubles the chunk while leases run out within half their life, up to perSecond/20', async () => {
    // Cap: min(1000/20, 2000/10) = 50.
    const { shared, leased } = setUp({ perSecond: 1_000, burst: 2_000 });

    expect(await takeMany(leased, 400)).toBe(400);

    // Each lease is the one token short plus the chunk: 1, 2, 4, … then 50 for good.
    expect(shared.costs().slice(0, 9)).toEqual([2, 3, 5, 9, 17, 33, 51, 51, 51]);
    expect(Math.max(...shared.costs())).toBe(51);
  });

  it('caps the chunk at burst/10 and at least one token', async () => {
    const byBurst = setUp({ perSecond: 1_000, burst: 100 });
    await takeMany(byBurst.leased, 200);
    expect(Math.max(...byBurst.shared.costs())).toBe(11);

    const tiny = setUp({ perSecond: 5, burst: 5 });
    await takeMany(tiny.leased, 5);
    // The last lease with the chunk is refused (one token left), the shortfall alone is not.
    expect(tiny.shared.costs()).toEqual([2, 2, 2, 1]);
  });

  it('keeps the chunk when a lease lasts past half its life', async () => {
    const { clock, shared, leased } = setUp({ perSecond: 1_000, burst: 2_000 });
    await leased.take('publisher-1', 4); // leases 4 + 4

    clock.advance(600);
    await takeMany(leased, 5); // 4 local, then one short: the lease lasted 600 of 1000 ms
    expect(shared.costs()).toEqual([8, 5]);
  });

  it('discards unspent tokens when the lease expires, without refunding them, and shrinks the chunk to what was spent', async () => {
    const { clock, shared, leased } = setUp({ perSecond: 1_000, burst: 2_000 });
    await leased.take('publisher-1', 10); // leases 10 + 10
    await takeMany(leased, 3); // 7 left

    clock.advance(999);
    expect(await leased.take('publisher-1')).toEqual({ allowed: true });
    expect(shared.costs()).toEqual([20]);

    clock.advance(1);
    expect(await leased.take('publisher-1')).toEqual({ allowed: true });
    // 6 expired unspent: the chunk falls from 10 to 4, and the take leases 1 + 4.
    expect(shared.costs()).toEqual([20, 5]);
  });

  it('shares one lease request among concurrent takes on a key', async () => {
    const { shared, leased } = setUp({ perSecond: 1_000, burst: 2_000 });
    let open!: () => void;
    shared.gate = new Promise((resolve) => (open = resolve));

    const takes = Promise.all(Array.from({ length: 6 }, () => leased.take('publisher-1')));
    await Promise.resolve();
    expect(shared.inFlight).toBe(1);
    shared.gate = undefined;
    open();

    expect(await takes).toEqual(Array.from({ length: 6 }, () => ({ allowed: true })));
    expect(shared.maxInFlight).toBe(1);
    // 2 (one take + chunk 1), then 3 (chunk doubled) covers the next three, then 5.
    expect(shared.costs()).toEqual([2, 3, 5]);
  });

  it('rejects every take waiting on a lease that failed, and the next take leases again', async () => {
    const { shared, leased } = setUp({ perSecond: 1_000, burst: 2_000 });
    shared.failNext = unavailable('shared budget down');

    const outcomes = await Promise.allSettled([leased.take('publisher-1'), leased.take('publisher-1')]);

    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected']);
    expect(shared.maxInFlight).toBe(1);
    expect(await leased.take('publisher-1')).toEqual({ allowed: true });
    expect(shared.costs()).toEqual([2]);
  });

  it('asks for the shortfall alone when the lease with the chunk is refused', async () => {
    const { shared, leased } = setUp({ perSecond: 1_000, burst: 2_000 });
    expect(await shared.bucket.take('publisher-1', 1_998)).toEqual({ allowed: true });

    expect(await leased.take('publisher-1', 2)).toEqual({ allowed: true });

    expect(shared.takes).toEqual([
      { cost: 4, allowed: false },
      { cost: 2, allowed: true },
    ]);
  });

  it('passes a refusal on with its retryAfterMs, spending nothing locally', async () => {
    const { shared, leased } = setUp({ perSecond: 10, burst: 20 });
    await leased.take('publisher-1'); // leases 1 + 1: one token held
    expect(await shared.bucket.take('publisher-1', 18)).toEqual({ allowed: true });

    // Short by 2 with nothing left: the shared budget needs 200 ms for 2 tokens at 10/s.
    expect(await leased.take('publisher-1', 3)).toEqual({ allowed: false, retryAfterMs: 200 });
    expect(shared.costs()).toEqual([2, 3, 2]);
    // The held token is still there.
    expect(await leased.take('publisher-1')).toEqual({ allowed: true });
    expect(shared.costs()).toEqual([2, 3, 2]);
  });

  it('refuses a repeat of a refused take locally until its retryAfterMs has passed', async () => {
    const { clock, shared, leased } = setUp({ perSecond: 10, burst: 20 });
    expect(await takeMany(leased, 21)).toBe(20);
    const asked = shared.takes.length;

    clock.advance(40);
    expect(await leased.take('publisher-1')).toEqual({ allowed: false, retryAfterMs: 60 });
    expect(shared.takes).toHaveLength(asked);

    clock.advance(60);
    expect(await leased.take('publisher-1')).toEqual({ allowed: true });
    expect(shared.takes.length).toBeGreaterThan(asked);
  });

  it('never lets several leasing processes spend more than the shared budget grants', async () => {
    const budget = { perSecond: 200, burst: 100 }; // cap: min(10, 10) = 10
    const clock = manualClock();
    const shared = new SharedBudget(budget, clock.now);
    const processes = Array.from({ length: 5 }, () => new LeasedRateLimiter({ shared, budget, clock: clock.now }));

    // Three seconds of every process asking far beyond the budget, 10 ms at a time.
    let allowed = 0;
    for (let step = 0; step <= 300; step++) {
      const decisions = await Promise.all(processes.flatMap((p) => Array.from({ length: 4 }, () => p.take('publisher-1'))));
      allowed += decisions.filter((d) => d.allowed).length;
      if (step < 300) clock.advance(10);
    }

    const granted = shared.takes.filter((t) => t.allowed).reduce((sum, t) => sum + t.cost, 0);
    // The bucket grants at most burst + 3 s × perSecond; every allowed take spent a granted token.
    expect(granted).toBeLessThanOrEqual(100 + 3 * 200);
    expect(allowed).toBeLessThanOrEqual(granted);
    // And the leases waste little: at most the chunks held when the run ended.
    expect(allowed).toBeGreaterThanOrEqual(granted - 5 * 10);
  });

  it('refuses another process only once the budget less the leases held elsewhere is spent', async () => {
    const budget = { perSecond: 1_000, burst: 200 }; // cap: min(50, 20) = 20
    const clock = manualClock();
    const shared = new SharedBudget(budget, clock.now);
    const [busy, quiet] = [new LeasedRateLimiter({ shared, budget, clock: clock.now }), new LeasedRateLimiter({ shared, budget, clock: clock.now })];

    expect(await takeMany(busy, 150)).toBe(150);
    const charged = shared.takes.reduce((sum, t) => sum + (t.allowed ? t.cost : 0), 0);
    const held = charged - 150;
    expect(held).toBeGreaterThan(0);
    expect(held).toBeLessThanOrEqual(20);

    expect(await takeMany(quiet, 100)).toBe(200 - 150 - held);
  });
});
