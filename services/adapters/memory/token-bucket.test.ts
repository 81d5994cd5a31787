import { describe, expect, it } from 'vitest';
import { TokenBucketLimiter } from './token-bucket';

const budget = { perSecond: 2, burst: 4 };
/** 4 tokens at 2/s: an emptied bucket is full again after 2 s. */
const FULL_AFTER_MS = 2_000;

function limiterAt(options: { maxKeys?: number } = {}): { limiter: TokenBucketLimiter; clock: { now: number } } {
  const clock = { now: 1_000_000 };
  return { limiter: new TokenBucketLimiter(budget, () => clock.now, options), clock };
}

const drain = (limiter: TokenBucketLimiter, key: string): void => {
  for (let i = 0; i < budget.burst; i++) expect(limiter.takeNow(key).allowed).toBe(true);
  expect(limiter.takeNow(key).allowed).toBe(false);
};

describe('TokenBucketLimiter: the keys it holds', () => {
  it('never holds more than maxKeys, however many new keys arrive at once', () => {
    const { limiter } = limiterAt({ maxKeys: 1_000 });
    for (let i = 0; i < 20_000; i++) limiter.takeNow(`10.0.${i >> 8}.${i & 255}`);
    expect(limiter.size).toBe(1_000);
  });

  it('forgets buckets that have refilled as new keys arrive, keeping the ones still in debt', () => {
    const { limiter, clock } = limiterAt();
    drain(limiter, 'old');
    clock.now += FULL_AFTER_MS / 2;
    drain(limiter, 'recent');
    clock.now += FULL_AFTER_MS / 2;
    // 'old' has refilled: the next new key drops it. 'recent' has not: it is kept with
    // the 2 tokens it earned back in 1 s, where a forgotten bucket would start with 4.
    limiter.takeNow('new');
    expect(limiter.size).toBe(2);
    expect(limiter.takeNow('recent').allowed).toBe(true);
    expect(limiter.takeNow('recent').allowed).toBe(true);
    expect(limiter.takeNow('recent').allowed).toBe(false);
  });

  it('at the bound, drops the least recently used key, never a busy one', () => {
    const { limiter, clock } = limiterAt({ maxKeys: 3 });
    drain(limiter, 'a');
    drain(limiter, 'b');
    drain(limiter, 'c');
    clock.now += 1;
    // 'a' is used again (refused, still in debt): 'b' becomes the least recently used.
    expect(limiter.takeNow('a').allowed).toBe(false);
    limiter.takeNow('d');
    expect(limiter.size).toBe(3);
    // 'a' and 'c' are still held and still empty; 'b' was forgotten and starts full.
    expect(limiter.takeNow('a').allowed).toBe(false);
    expect(limiter.takeNow('c').allowed).toBe(false);
    expect(limiter.takeNow('b').allowed).toBe(true);
  });

  it.each([
    // After the drains: a key used again goes behind the other one.
    { uses: ['b', 'a'], dropped: 'b', kept: 'a' },
    // Back and forth: the one used last is kept.
    { uses: ['b', 'a', 'b'], dropped: 'a', kept: 'b' },
    { uses: ['a', 'a', 'b', 'b', 'a'], dropped: 'b', kept: 'a' },
  ])('keeps the order of use, the same key back to back or alternating: $uses', ({ uses, dropped, kept }) => {
    const { limiter } = limiterAt({ maxKeys: 2 });
    drain(limiter, 'a');
    drain(limiter, 'b');
    for (const key of uses) expect(limiter.takeNow(key).allowed).toBe(false);
    limiter.takeNow('c');
    // The kept key is still in debt; the dropped one was forgotten and starts full.
    expect(limiter.takeNow(kept).allowed).toBe(false);
    expect(limiter.takeNow(dropped).allowed).toBe(true);
  });

  it('keeps limiting a key that stays in debt while a flood of new keys passes', () => {
    const { limiter, clock } = limiterAt({ maxKeys: 100_000 });
    drain(limiter, 'attacker-target');
    for (let i = 0; i < 50_000; i++) {
      if (i % 10_000 === 0) {
        clock.now += 100;
        // Refilled by 0.2 tokens per 100 ms, spent again: never up to a whole token for long.
        limiter.takeNow('attacker-target');
      }
      limiter.takeNow(`flood-${i}`);
    }
    expect(limiter.takeNow('attacker-target').allowed).toBe(false);
  });

  it('refuses a bound below 1', () => {
    expect(() => new TokenBucketLimiter(budget, () => 0, { maxKeys: 0 })).toThrow(RangeError);
  });
});
