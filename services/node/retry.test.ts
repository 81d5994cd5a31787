import { afterEach, describe, expect, it, vi } from 'vitest';
import { retryWithBackoff } from './retry';

describe('retryWithBackoff', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('returns the first success, after failures, with pauses that double up to the maximum', async () => {
    vi.useFakeTimers();
    vi.spyOn(Math, 'random').mockReturnValue(1);
    const starts: number[] = [];
    let calls = 0;
    const result = retryWithBackoff(
      () => {
        starts.push(Date.now());
        calls++;
        return calls < 5 ? Promise.reject(new Error(`fail ${calls}`)) : Promise.resolve('done');
      },
      { firstMs: 100, maxMs: 300, giveUpAfterMs: 10_000 },
    );
    await vi.advanceTimersByTimeAsync(2_000);
    await expect(result).resolves.toBe('done');
    const pauses = starts.slice(1).map((t, i) => t - starts[i]!);
    expect(pauses).toEqual([100, 200, 300, 300]);
  });

  it('rethrows the last error once the next pause would pass the deadline', async () => {
    vi.useFakeTimers();
    vi.spyOn(Math, 'random').mockReturnValue(1);
    let calls = 0;
    const retries: number[] = [];
    const result = retryWithBackoff(() => Promise.reject(new Error(`fail ${++calls}`)), { firstMs: 100, maxMs: 100, giveUpAfterMs: 350 }, (_e, n) => retries.push(n));
    const settled = expect(result).rejects.toThrow('fail 4');
    await vi.advanceTimersByTimeAsync(1_000);
    await settled;
    expect(retries).toEqual([1, 2, 3]);
  });

  it('stops retrying as soon as the caller says it stopped', async () => {
    vi.useFakeTimers();
    let stopped = false;
    let calls = 0;
    const result = retryWithBackoff(
      () => {
        calls++;
        stopped = calls === 2;
        return Promise.reject(new Error(`fail ${calls}`));
      },
      { firstMs: 10, maxMs: 10, giveUpAfterMs: 60_000, stopped: () => stopped },
    );
    const settled = expect(result).rejects.toThrow('fail 2');
    await vi.advanceTimersByTimeAsync(1_000);
    await settled;
    expect(calls).toBe(2);
  });
});
