import { describe, expect, it } from 'vitest';
import { backoffCeiling, equalJitter, fullJitter } from './backoff';

describe('backoff', () => {
  const policy = { firstMs: 100, maxMs: 1_000 };

  it('doubles the ceiling per failure from firstMs, up to maxMs', () => {
    expect([0, 1, 2, 3, 4, 5].map((n) => backoffCeiling(n, policy))).toEqual([100, 200, 400, 800, 1_000, 1_000]);
  });

  it('stays finite after any number of failures, and treats a negative count as the first', () => {
    expect(backoffCeiling(10_000, policy)).toBe(1_000);
    expect(backoffCeiling(-3, policy)).toBe(100);
  });

  it('draws equal jitter between half the ceiling and the ceiling, full jitter from 0', () => {
    expect([equalJitter(800, () => 0), equalJitter(800, () => 0.5), equalJitter(800, () => 0.999)]).toEqual([400, 600, 799.6]);
    expect([fullJitter(800, () => 0), fullJitter(800, () => 0.5)]).toEqual([0, 400]);
  });
});
