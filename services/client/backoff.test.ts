import { describe, expect, it } from 'vitest';
import { Backoff, parseRetryAfter } from './backoff';

describe('Backoff', () => {
  it('doubles its ceiling per failure and draws between half of it and all of it', () => {
    const low = new Backoff(() => 0, { initialMs: 1000, maxMs: 8000 });
    const high = new Backoff(() => 0.999999, { initialMs: 1000, maxMs: 8000 });
    expect([1, 2, 3, 4, 5].map(() => low.next())).toEqual([500, 1000, 2000, 4000, 4000]);
    expect([1, 2, 3, 4, 5].map(() => Math.round(high.next()))).toEqual([1000, 2000, 4000, 8000, 8000]);
  });

  it('starts over after a reset', () => {
    const backoff = new Backoff(() => 0, { initialMs: 100 });
    backoff.next();
    backoff.next();
    expect(backoff.failures).toBe(2);
    backoff.reset();
    expect(backoff.failures).toBe(0);
    expect(backoff.next()).toBe(50);
  });

  it('defaults to 1 s growing to 30 s', () => {
    const backoff = new Backoff(() => 1);
    const delays = Array.from({ length: 10 }, () => backoff.next());
    expect(delays[0]).toBe(1000);
    expect(delays.at(-1)).toBe(30_000);
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-11-25T10:00:00Z');

  it('reads delay-seconds', () => {
    expect(parseRetryAfter('3', now)).toBe(3000);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
  });

  it('reads an HTTP-date as the time left until it', () => {
    expect(parseRetryAfter('Wed, 25 Nov 2026 10:00:05 GMT', now)).toBe(5000);
    expect(parseRetryAfter('Wed, 25 Nov 2026 09:00:00 GMT', now)).toBe(0);
  });

  it('is undefined when absent or unreadable', () => {
    expect(parseRetryAfter(null, now)).toBeUndefined();
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter('-1', now)).toBeUndefined();
  });
});
