import { afterEach, describe, expect, it, vi } from 'vitest';
import { RECLAIM_RETRY_MS, closeWith, closingFrame } from './closing';
import { liveStream, pendingStream } from './fakes';

afterEach(() => {
  vi.restoreAllMocks();
});

/** The `retry:` a closing frame announces. */
function retryOf(frame: string): number {
  const match = /^retry: (\d+)\n\n/.exec(frame);
  if (!match) throw new Error(`no retry in ${JSON.stringify(frame)}`);
  return Number(match[1]);
}

describe('closingFrame', () => {
  it('is a retry, then a closing event naming the reason', () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    expect(closingFrame('token_expired', 2000)).toBe('retry: 2000\n\nevent: closing\ndata: {"reason":"token_expired"}\n\n');
  });

  it('spreads a drained fleet over the whole retry, 0 to twice the centre', () => {
    vi.spyOn(Math, 'random').mockReturnValueOnce(0).mockReturnValueOnce(1 - Number.EPSILON);
    expect(retryOf(closingFrame('draining', 2000))).toBe(0);
    expect(retryOf(closingFrame('draining', 2000))).toBe(4000);
  });

  it('brings a reclaiming tab back at once, whatever the configured retry', () => {
    vi.spyOn(Math, 'random').mockReturnValueOnce(0).mockReturnValueOnce(1 - Number.EPSILON);
    expect(retryOf(closingFrame('reclaim', 60_000))).toBe(RECLAIM_RETRY_MS / 2);
    expect(retryOf(closingFrame('reclaim', 60_000))).toBe(RECLAIM_RETRY_MS * 1.5);
  });

  it.each(['token_expired', 'max_age', 'resync', 'server_error'] as const)('keeps %s within half the retry either side', (reason) => {
    vi.spyOn(Math, 'random').mockReturnValueOnce(0).mockReturnValueOnce(1 - Number.EPSILON);
    expect(retryOf(closingFrame(reason, 2000))).toBe(1000);
    expect(retryOf(closingFrame(reason, 2000))).toBe(3000);
  });
});

describe('closeWith', () => {
  it('ends a live stream with the closing frame as its last chunk', () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const { connection, sink, closes } = liveStream('c1', 'alice');
    closeWith(connection, 'max_age', 2000);
    expect(sink.frames.at(-1)).toBe(closingFrame('max_age', 2000));
    expect(sink.ended).toBe(true);
    expect([connection.state, connection.closedReason, closes]).toEqual(['closed', 'max_age', ['max_age']]);
  });

  it('writes nothing on a stream still pending: its opener answers over HTTP', () => {
    const { connection, sink, closes } = pendingStream('c1', 'alice');
    closeWith(connection, 'draining', 2000);
    expect(sink.chunks).toEqual([]);
    expect(closes).toEqual(['draining']);
  });
});
