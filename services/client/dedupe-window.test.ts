import { describe, expect, it } from 'vitest';
import { DedupeWindow } from './dedupe-window';

describe('DedupeWindow', () => {
  it('admits an id once and refuses it after', () => {
    const window = new DedupeWindow(3);
    expect(window.admit('a')).toBe(true);
    expect(window.admit('a')).toBe(false);
    expect(window.has('a')).toBe(true);
  });

  it('forgets the oldest id when full, so memory stays at the capacity', () => {
    const window = new DedupeWindow(3);
    for (const id of ['a', 'b', 'c', 'd']) expect(window.admit(id)).toBe(true);
    expect(window.size).toBe(3);
    expect(window.has('a')).toBe(false);
    expect(window.admit('b')).toBe(false);
    expect(window.admit('a')).toBe(true); // forgotten, so admitted again
    expect(window.has('b')).toBe(false);
    expect(window.size).toBe(3);
  });

  it('keeps working after wrapping around many times', () => {
    const window = new DedupeWindow(5);
    for (let i = 0; i < 1000; i++) window.admit(String(i));
    expect(window.size).toBe(5);
    expect([995, 996, 997, 998, 999].every((i) => window.has(String(i)))).toBe(true);
    expect(window.has('994')).toBe(false);
  });

  it('refuses a capacity that is not a positive integer', () => {
    expect(() => new DedupeWindow(0)).toThrow(RangeError);
    expect(() => new DedupeWindow(1.5)).toThrow(RangeError);
  });
});
