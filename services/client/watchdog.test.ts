import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Watchdog } from './watchdog';

const timers = {
  setTimeout: (callback: () => void, ms: number): unknown => setTimeout(callback, ms),
  clearTimeout: (handle: unknown): void => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

describe('Watchdog', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('fires after 2.5 heartbeat periods without anything arriving', () => {
    const fired = vi.fn();
    const watchdog = new Watchdog(timers, fired, 1000);
    watchdog.feed();
    vi.advanceTimersByTime(2499);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fired).toHaveBeenCalledOnce();
    expect(watchdog.armed).toBe(false);
  });

  it('starts the count again at every feed', () => {
    const fired = vi.fn();
    const watchdog = new Watchdog(timers, fired, 1000);
    watchdog.feed();
    for (let i = 0; i < 10; i++) {
      vi.advanceTimersByTime(2000);
      watchdog.feed();
    }
    expect(fired).not.toHaveBeenCalled();
  });

  it('uses the period the server announced from the next feed on', () => {
    const fired = vi.fn();
    const watchdog = new Watchdog(timers, fired, 15_000);
    watchdog.setHeartbeat(400);
    watchdog.setHeartbeat(Number.NaN); // ignored
    watchdog.feed();
    vi.advanceTimersByTime(1000);
    expect(fired).toHaveBeenCalledOnce();
  });

  it('never fires once stopped', () => {
    const fired = vi.fn();
    const watchdog = new Watchdog(timers, fired, 1000);
    watchdog.feed();
    watchdog.stop();
    vi.advanceTimersByTime(60_000);
    expect(fired).not.toHaveBeenCalled();
  });
});
