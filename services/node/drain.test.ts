import { afterEach, describe, expect, it, vi } from 'vitest';
import { HeraldError } from '../protocol/errors';
import { Drain, drainingRefusal } from './drain';
import { liveStream, recordingLog, type FakeStream } from './fakes';
import { Hub } from './hub';

const CONFIG = { drainMs: 10_000, retryMs: 2_000 };

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

function setup() {
  vi.useFakeTimers();
  const hub = new Hub();
  const { log, lines } = recordingLog();
  const drain = new Drain({ hub, config: CONFIG, log, nodeId: 'n1' });
  const live = (id: string): FakeStream => {
    const stream = liveStream(id, 'alice', { onClosed: (c) => hub.remove(c) });
    hub.add(stream.connection);
    return stream;
  };
  return { hub, lines, drain, live };
}

/** Settles once the promise has; `done` says whether it has yet. */
function track(promise: Promise<void>): { readonly done: boolean } {
  const state = { done: false };
  void promise.then(() => {
    state.done = true;
  });
  return state;
}

describe('Drain', () => {
  it('is not draining until started, and is from then on', () => {
    const { drain } = setup();
    expect(drain.draining).toBe(false);
    void drain.start();
    expect(drain.draining).toBe(true);
  });

  it('closes each open stream with closing draining at a random instant within the window, then resolves', async () => {
    const { drain, live, lines } = setup();
    vi.spyOn(Math, 'random').mockReturnValueOnce(0.1).mockReturnValueOnce(0.9).mockReturnValue(0.5);
    const early = live('a1');
    const late = live('a2');
    const done = track(drain.start(1_000));
    expect(lines.find((l) => l['event'] === 'node.draining')).toMatchObject({ nodeId: 'n1', connections: 2, windowMs: 1_000 });
    // The instants are drawn in the order the streams were added: a1 at 100 ms, a2 at 900 ms.
    await vi.advanceTimersByTimeAsync(100);
    expect([early.closes, late.closes]).toEqual([['draining'], []]);
    expect(early.sink.frames.at(-1)).toMatch(/^retry: \d+\n\nevent: closing\ndata: \{"reason":"draining"\}\n\n$/);
    await vi.advanceTimersByTimeAsync(799);
    expect(late.closes).toEqual([]);
    expect(done.done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(late.closes).toEqual(['draining']);
    expect(done.done).toBe(true);
  });

  it('never takes longer than the configured window, and a negative window closes at once', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.99);
    const longer = setup();
    const stream = longer.live('a1');
    void longer.drain.start(CONFIG.drainMs * 10);
    await vi.advanceTimersByTimeAsync(CONFIG.drainMs);
    expect(stream.closes).toEqual(['draining']);
    expect(longer.lines.find((l) => l['event'] === 'node.draining')?.['windowMs']).toBe(CONFIG.drainMs);

    const negative = setup();
    const other = negative.live('b1');
    void negative.drain.start(-5_000);
    await vi.advanceTimersByTimeAsync(0);
    expect(other.closes).toEqual(['draining']);
  });

  it('joins a drain already under way: one window, one log line', async () => {
    const { drain, live, lines } = setup();
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const stream = live('a1');
    const first = drain.start(1_000);
    const second = drain.start(100);
    expect(second).toBe(first);
    await vi.advanceTimersByTimeAsync(100);
    expect(stream.closes).toEqual([]);
    await vi.advanceTimersByTimeAsync(400);
    expect(stream.closes).toEqual(['draining']);
    expect(lines.filter((l) => l['event'] === 'node.draining')).toHaveLength(1);
  });

  it('leaves streams opened after it began to the opener', async () => {
    const { drain, live } = setup();
    void drain.start(1_000);
    const opened = live('a1');
    await vi.advanceTimersByTimeAsync(1_000);
    expect(opened.closes).toEqual([]);
  });
});

describe('drainingRefusal', () => {
  it('is a 503 draining with a retry a second away', () => {
    const error = drainingRefusal();
    expect(error).toBeInstanceOf(HeraldError);
    expect([error.code, error.status, error.details.retryAfterMs]).toEqual(['draining', 503, 1000]);
  });
});
