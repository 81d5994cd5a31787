import { describe, expect, it } from 'vitest';
import { ConnectionIds } from './connection-id';

describe('ConnectionIds', () => {
  it('gives 12 base64url characters', () => {
    const ids = new ConnectionIds();
    for (let i = 0; i < 100; i++) expect(ids.next()).toMatch(/^[A-Za-z0-9_-]{12}$/);
  });

  it('never repeats across several refills of its pool', () => {
    const ids = new ConnectionIds();
    const seen = new Set<string>();
    for (let i = 0; i < 5000; i++) seen.add(ids.next());
    expect(seen.size).toBe(5000);
  });

  it('draws fresh randomness on each refill rather than cycling the pool', () => {
    const ids = new ConnectionIds();
    const first = Array.from({ length: 512 }, () => ids.next());
    const second = Array.from({ length: 512 }, () => ids.next());
    expect(second.filter((id) => first.includes(id))).toEqual([]);
  });

  it('spreads the characters the hub slots on (first and last) evenly', () => {
    const ids = new ConnectionIds();
    for (const at of [0, 11]) {
      const counts = new Map<string, number>();
      for (let i = 0; i < 64_000; i++) {
        const key = ids.next()[at]!;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
      expect(counts.size).toBe(64);
      // 1,000 expected per character; 6 standard deviations either side.
      for (const count of counts.values()) expect(Math.abs(count - 1000)).toBeLessThan(200);
    }
  });
});
