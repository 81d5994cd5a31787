import { afterEach, describe, expect, it, vi } from 'vitest';
import { PING_FRAME } from '../protocol/sse-frame';
import { liveStream, manualClock, pendingStream, recordingLog, type FakeStream } from './fakes';
import { Hub } from './hub';
import { StreamTicker, TICK_MS, checkPeriodMs, tickerSlots } from './stream-ticker';

const CONFIG = { heartbeatMs: 10_000, stallTimeoutMs: 2_000, retryMs: 2_000 };

afterEach(() => {
  vi.useRealTimers();
});

function setup(slots = 1) {
  const hub = new Hub(slots);
  const time = manualClock();
  const { log, lines } = recordingLog();
  const ticker = new StreamTicker({ hub, config: CONFIG, clock: time.clock, log });
  const add = (stream: FakeStream): FakeStream => {
    hub.add(stream.connection);
    return stream;
  };
  const live = (id: string, userId = 'alice'): FakeStream => add(liveStream(id, userId, { connectedAtMs: time.now, onClosed: (c) => hub.remove(c) }));
  return { hub, time, lines, ticker, add, live };
}

describe('StreamTicker', () => {
  it('pings a live stream when its heartbeat is due, then a heartbeat later', () => {
    const { ticker, time, live } = setup();
    const stream = live('a1');
    ticker.tick();
    expect(stream.sink.frames).toEqual([PING_FRAME]);
    expect(stream.connection.nextPingAtMs).toBe(time.now + CONFIG.heartbeatMs);
    time.advance(CONFIG.heartbeatMs - 1);
    ticker.tick();
    expect(stream.sink.frames).toEqual([PING_FRAME]);
    time.advance(1);
    ticker.tick();
    expect(stream.sink.frames).toEqual([PING_FRAME, PING_FRAME]);
  });

  it('after a late tick, pings again no sooner than half a heartbeat later', () => {
    const { ticker, time, live } = setup();
    const stream = live('a1');
    time.advance(3 * CONFIG.heartbeatMs);
    ticker.tick();
    expect(stream.connection.nextPingAtMs).toBe(time.now + CONFIG.heartbeatMs / 2);
  });

  it('closes a live stream whose token expired with closing token_expired', () => {
    const { ticker, time, add } = setup();
    const stream = add(liveStream('a1', 'alice', { expiresAtMs: time.now }));
    ticker.tick();
    expect(stream.closes).toEqual(['token_expired']);
    expect(stream.sink.frames.at(-1)).toMatch(/^retry: \d+\n\nevent: closing\ndata: \{"reason":"token_expired"\}\n\n$/);
  });

  it('closes a live stream past its maximum age with closing max_age', () => {
    const { ticker, time, live } = setup();
    const stream = live('a1');
    stream.connection.closeAtMs = time.now + 100;
    ticker.tick();
    expect(stream.closes).toEqual([]);
    time.advance(100);
    ticker.tick();
    expect(stream.closes).toEqual(['max_age']);
  });

  it('cuts a stream whose backlog stayed over the cap for the stall timeout, replaying or live', () => {
    const { ticker, time, lines, add, live } = setup();
    const stuck = live('a1');
    const replaying = add(pendingStream('a2', 'alice', { connectedAtMs: time.now }));
    replaying.connection.begin([]);
    stuck.sink.writableLength = 1_001;
    replaying.sink.writableLength = 1_001;
    ticker.tick();
    time.advance(CONFIG.stallTimeoutMs - 1);
    ticker.tick();
    expect([stuck.closes, replaying.closes]).toEqual([[], []]);
    time.advance(1);
    ticker.tick();
    expect([stuck.closes, replaying.closes]).toEqual([['slow_consumer'], ['slow_consumer']]);
    expect(stuck.sink.destroyed).toBe(true);
    expect(lines.filter((l) => l['event'] === 'connection.stalled').map((l) => l['connectionId'])).toEqual(expect.arrayContaining(['a1', 'a2']));
    expect(lines.find((l) => l['event'] === 'connection.stalled')?.['stallTimeoutMs']).toBe(CONFIG.stallTimeoutMs);
  });

  it('leaves alone a stream still claiming, and one still replaying except for a stall', () => {
    const { ticker, time, add } = setup();
    const claiming = add(pendingStream('a1', 'alice', { expiresAtMs: time.now - 1 }));
    claiming.sink.writableLength = 1_001;
    const replaying = add(pendingStream('a2', 'alice', { expiresAtMs: time.now - 1 }));
    replaying.connection.begin([]);
    time.advance(10 * CONFIG.stallTimeoutMs);
    ticker.tick();
    ticker.tick();
    expect([claiming.closes, replaying.closes]).toEqual([[], []]);
    expect(replaying.sink.chunks).toEqual([]);
  });

  it('visits one slot of the hub a tick', () => {
    const { ticker, live } = setup(2);
    // Slots follow the ids' first and last characters: `b` is in slot 0, `a` in slot 1.
    const a = live('a');
    const b = live('b');
    ticker.tick();
    expect([a.sink.chunks.length, b.sink.chunks.length]).toEqual([0, 1]);
    ticker.tick();
    expect([a.sink.chunks.length, b.sink.chunks.length]).toEqual([1, 1]);
  });

  it('ticks every TICK_MS between start and stop', () => {
    vi.useFakeTimers();
    let visits = 0;
    const ticker = new StreamTicker({ hub: { visitNextSlot: () => visits++ }, config: CONFIG, clock: () => 0, log: recordingLog().log });
    ticker.start();
    ticker.start();
    vi.advanceTimersByTime(3 * TICK_MS);
    expect(visits).toBe(3);
    ticker.stop();
    vi.advanceTimersByTime(3 * TICK_MS);
    expect(visits).toBe(3);
  });
});

describe('checkPeriodMs and tickerSlots', () => {
  it('check each stream every second when the heartbeat and stall timeout are long', () => {
    expect(checkPeriodMs(15_000, 10_000)).toBe(1000);
    expect(tickerSlots(15_000, 10_000)).toBe(1000 / TICK_MS);
  });

  it('check four times within the shorter of the heartbeat and the stall timeout', () => {
    expect(checkPeriodMs(2_000, 10_000)).toBe(500);
    expect(checkPeriodMs(10_000, 1_000)).toBe(250);
    expect(tickerSlots(10_000, 1_000)).toBe(5);
  });

  it('never check more often than every tick: one slot', () => {
    expect(checkPeriodMs(100, 100)).toBe(TICK_MS);
    expect(tickerSlots(100, 100)).toBe(1);
  });
});
