import { afterEach, describe, expect, it, vi } from 'vitest';
import { jittered } from './jitter';

afterEach(() => {
  vi.restoreAllMocks();
});

describe('jittered', () => {
  it('gives the lower edge, centre × (1 − spread), when Math.random is 0', () => {
    vi.spyOn(Math, 'random').mockReturnValue(0);
    expect(jittered(2000, 0.5)).toBe(1000);
  });

  it('gives the centre when Math.random is 0.5', () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    expect(jittered(2000, 0.5)).toBe(2000);
  });

  it('stays at or below the upper edge, centre × (1 + spread), as Math.random approaches 1', () => {
    vi.spyOn(Math, 'random').mockReturnValue(1 - Number.EPSILON);
    expect(jittered(2000, 0.5)).toBe(3000);
  });

  it('returns the centre, rounded, with no spread', () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.123);
    expect(jittered(1234.4, 0)).toBe(1234);
  });

  it('never goes below zero when the spread is over 1', () => {
    vi.spyOn(Math, 'random').mockReturnValue(0);
    expect(jittered(1000, 3)).toBe(0);
  });

  it('stays within the spread on 10,000 real draws, and uses both halves of it', () => {
    const values = Array.from({ length: 10_000 }, () => jittered(2000, 0.25));
    const outside = values.filter((v) => v < 1500 || v > 2500 || !Number.isInteger(v));
    expect(outside).toEqual([]);
    expect(values.some((v) => v < 1750)).toBe(true);
    expect(values.some((v) => v > 2250)).toBe(true);
  });
});
