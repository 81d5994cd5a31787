import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../shared/log';
import { watchForEcsStop } from './ecs-stop-watch';
import type { FetchLike } from './node-id';

const ENV = { ECS_CONTAINER_METADATA_URI_V4: 'http://169.254.170.2/v4/abc/' };

function metadata(statuses: Array<string | Error>): { fetchImpl: FetchLike; urls: string[] } {
  const urls: string[] = [];
  const fetchImpl: FetchLike = (url) => {
    urls.push(url);
    const next = statuses.length > 1 ? statuses.shift()! : statuses[0]!;
    if (next instanceof Error) return Promise.reject(next);
    return Promise.resolve({ ok: true, status: 200, json: () => Promise.resolve({ DesiredStatus: next, KnownStatus: 'RUNNING' }) });
  };
  return { fetchImpl, urls };
}

function capture(): { lines: Array<Record<string, unknown>>; log: ReturnType<typeof createLogger> } {
  const lines: Array<Record<string, unknown>> = [];
  return { lines, log: createLogger({ level: 'debug', sink: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) }) };
}

describe('watchForEcsStop', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('does nothing outside ECS (no metadata endpoint)', () => {
    const onStop = vi.fn();
    expect(watchForEcsStop({}, onStop, { log: capture().log })).toBeUndefined();
  });

  it('calls onStop once, on the first poll that shows DesiredStatus STOPPED, and stops polling', async () => {
    vi.useFakeTimers();
    const { fetchImpl, urls } = metadata(['RUNNING', 'RUNNING', 'STOPPED']);
    const onStop = vi.fn();
    const { lines, log } = capture();
    watchForEcsStop(ENV, onStop, { log, fetchImpl, intervalMs: 1000 });

    await vi.advanceTimersByTimeAsync(2000);
    expect(onStop).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1000);
    expect(onStop).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(5000);
    expect(onStop).toHaveBeenCalledTimes(1);
    expect(urls).toEqual(Array(3).fill('http://169.254.170.2/v4/abc/task'));
    expect(lines.map((l) => l.event)).toEqual(['node.stop_requested']);
  });

  it('keeps polling through failures and logs the first one only', async () => {
    vi.useFakeTimers();
    const { fetchImpl } = metadata([new Error('refused'), new Error('refused'), 'STOPPED']);
    const onStop = vi.fn();
    const { lines, log } = capture();
    watchForEcsStop(ENV, onStop, { log, fetchImpl, intervalMs: 1000 });

    await vi.advanceTimersByTimeAsync(3000);
    expect(onStop).toHaveBeenCalledTimes(1);
    expect(lines.map((l) => l.event)).toEqual(['node.stop_watch_failed', 'node.stop_requested']);
  });

  it('stops polling when cancelled', async () => {
    vi.useFakeTimers();
    const { fetchImpl, urls } = metadata(['RUNNING']);
    const cancel = watchForEcsStop(ENV, vi.fn(), { log: capture().log, fetchImpl, intervalMs: 1000 });
    await vi.advanceTimersByTimeAsync(2000);
    cancel?.();
    await vi.advanceTimersByTimeAsync(5000);
    expect(urls).toHaveLength(2);
  });
});
