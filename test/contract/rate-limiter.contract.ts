/**
 * What every `RateLimiter` adapter must do (services/ports/rate-limiter.ts).
 * Run by memory-adapters.test.ts and by the AWS suite against dynalite, unchanged.
 */
import { describe, expect } from 'vitest';
import type { RateBudget, RateDecision, RateLimiter } from '../../services/ports/rate-limiter';
import { setUp, type Cleanup, type ContractContext, type ContractOptions, contractIt, type ManualClock } from './fixtures';

export interface RateLimiterFixture extends Cleanup {
  /** Spends `budget` per key; reads `context.clock` for refills and windows. */
  readonly limiter: RateLimiter;
}

/** One fresh limiter per test, with no key spent. */
export type RateLimiterFactory = (context: ContractContext, budget: RateBudget) => Promise<RateLimiterFixture>;

/** Takes `cost` until the first denial; returns how many were allowed and that denial. */
async function drain(limiter: RateLimiter, key: string, cost = 1, atMost = 1_000): Promise<{ allowed: number; denial: RateDecision }> {
  for (let allowed = 0; allowed < atMost; allowed++) {
    const decision = await limiter.take(key, cost);
    if (!decision.allowed) return { allowed, denial: decision };
  }
  throw new Error(`${key} was never denied in ${atMost} takes`);
}

function retryAfter(decision: RateDecision): number {
  if (decision.allowed) throw new Error('expected a denial');
  return decision.retryAfterMs;
}

export function describeRateLimiterContract(name: string, factory: RateLimiterFactory, options: ContractOptions = {}): void {
  describe(`RateLimiter contract: ${name}`, () => {
    const it = contractIt(options);

    async function open(budget: RateBudget): Promise<{ limiter: RateLimiter; clock: ManualClock }> {
      const { context, fixture } = await setUp((c) => factory(c, budget), (f) => f.limiter.close());
      return { limiter: fixture.limiter, clock: context.clock };
    }

    it('lets a fresh key spend its whole burst at once, then denies with a positive retryAfterMs', async () => {
      const { limiter } = await open({ perSecond: 1, burst: 5 });

      for (let i = 0; i < 5; i++) expect(await limiter.take('publisher-1'), `take ${i + 1}`).toEqual({ allowed: true });
      const denial = await limiter.take('publisher-1');

      expect(denial).toEqual({ allowed: false, retryAfterMs: expect.any(Number) as number });
      expect(retryAfter(denial)).toBeGreaterThan(0);
    });

    it('answers a denial as a value, never by rejecting', async () => {
      const { limiter } = await open({ perSecond: 1, burst: 1 });
      await limiter.take('publisher-1');

      await expect(limiter.take('publisher-1')).resolves.toMatchObject({ allowed: false });
      await expect(limiter.take('publisher-1', 1)).resolves.toMatchObject({ allowed: false });
    });

    it('spends nothing on a denied take', async () => {
      const { limiter } = await open({ perSecond: 1, burst: 5 });
      expect(await limiter.take('publisher-1', 3)).toEqual({ allowed: true });

      for (let i = 0; i < 3; i++) expect((await limiter.take('publisher-1', 3)).allowed, `denied take ${i + 1}`).toBe(false);
      expect(await limiter.take('publisher-1', 2)).toEqual({ allowed: true });
      expect((await limiter.take('publisher-1')).allowed).toBe(false);
    });

    it('charges a take its cost', async () => {
      const { limiter } = await open({ perSecond: 1, burst: 10 });

      expect(await limiter.take('publisher-1', 4)).toEqual({ allowed: true });
      expect(await limiter.take('publisher-1', 6)).toEqual({ allowed: true });
      expect((await limiter.take('publisher-1', 1)).allowed).toBe(false);
      // A whole burst at once is allowed; the default cost is 1.
      expect(await limiter.take('publisher-2', 10)).toEqual({ allowed: true });
      const { allowed } = await drain(limiter, 'publisher-3');
      expect(allowed).toBe(10);
    });

    it('gives budget back at perSecond', async () => {
      const { limiter, clock } = await open({ perSecond: 4, burst: 8 });
      expect((await drain(limiter, 'publisher-1')).allowed).toBe(8);

      clock.advance(1_000);
      expect((await drain(limiter, 'publisher-1')).allowed).toBe(4);
      clock.advance(500);
      expect((await drain(limiter, 'publisher-1')).allowed).toBe(2);
    });

    it('holds the sustained rate at perSecond over several seconds', async () => {
      const { limiter, clock } = await open({ perSecond: 4, burst: 8 });
      await drain(limiter, 'publisher-1');

      let allowed = 0;
      for (let step = 0; step < 20; step++) {
        clock.advance(250);
        allowed += (await drain(limiter, 'publisher-1')).allowed;
      }

      // Five seconds at 4/s, within one take of rounding.
      expect(allowed).toBeGreaterThanOrEqual(19);
      expect(allowed).toBeLessThanOrEqual(21);
    });

    it('refills to the burst and no further after a quiet period', async () => {
      const { limiter, clock } = await open({ perSecond: 10, burst: 5 });
      await drain(limiter, 'publisher-1');

      clock.advance(3_600_000);
      expect((await drain(limiter, 'publisher-1')).allowed).toBe(5);
    });

    it('allows the denied take once retryAfterMs has passed', async () => {
      const { limiter, clock } = await open({ perSecond: 2, burst: 3 });
      const { denial } = await drain(limiter, 'publisher-1', 1);

      clock.advance(retryAfter(denial));
      expect(await limiter.take('publisher-1')).toEqual({ allowed: true });

      const costly = await limiter.take('publisher-1', 3);
      clock.advance(retryAfter(costly));
      expect(await limiter.take('publisher-1', 3)).toEqual({ allowed: true });
    });

    it('keeps keys independent', async () => {
      const { limiter } = await open({ perSecond: 1, burst: 3 });
      expect((await drain(limiter, 'publisher-1')).allowed).toBe(3);

      expect((await drain(limiter, 'publisher-2')).allowed).toBe(3);
      expect((await drain(limiter, '203.0.113.7')).allowed).toBe(3);
      expect((await drain(limiter, 'publisher-1#x 👋')).allowed).toBe(3);
    });

    it('never allows more than the burst to concurrent takes on a fresh key', async () => {
      const { limiter } = await open({ perSecond: 1, burst: 5 });

      const decisions = await Promise.all(Array.from({ length: 12 }, () => limiter.take('publisher-1')));

      expect(decisions.filter((d) => d.allowed)).toHaveLength(5);
      for (const denial of decisions.filter((d) => !d.allowed)) expect(retryAfter(denial)).toBeGreaterThan(0);
    });
  });
}
