import { afterEach, describe, expect, it, vi } from 'vitest';
import type { BusMessage, BusTarget } from '../ports/bus';
import type { ConnectionRecord } from '../ports/owners';
import { frameReplaced } from '../protocol/sse-frame';
import { Displacement } from './displacement';
import { liveStream, recordingLog, type FakeStream } from './fakes';
import { Hub } from './hub';

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

/** A bus whose first `failures` sends reject, as one that is down for a while. */
class FakeBus {
  readonly sent: Array<[BusMessage, BusTarget]> = [];
  attempts = 0;
  constructor(private failures = 0) {}

  send(message: BusMessage, target: BusTarget): Promise<void> {
    this.attempts++;
    if (this.failures > 0) {
      this.failures--;
      return Promise.reject(new Error('bus down'));
    }
    this.sent.push([message, target]);
    return Promise.resolve();
  }
}

function setup(bus = new FakeBus()) {
  const hub = new Hub();
  const { log, lines, events } = recordingLog();
  let stopped = false;
  const displacement = new Displacement({ hub, bus, config: { retryMs: 2_000 }, log, nodeId: 'here', stopped: () => stopped });
  const live = (id: string, userId = 'alice'): FakeStream => {
    const stream = liveStream(id, userId, { onClosed: (c) => hub.remove(c) });
    hub.add(stream.connection);
    return stream;
  };
  return {
    hub,
    bus,
    lines,
    events,
    displacement,
    live,
    stop: () => {
      stopped = true;
    },
  };
}

function record(connectionId: string, nodeId: string, userId = 'alice'): ConnectionRecord {
  return { userId, connectionId, nodeId, connectedAtMs: 0, expiresAtMs: Number.MAX_SAFE_INTEGER };
}

describe('Displacement', () => {
  it('tells a tab of this node it was replaced, in band, as its last frame', () => {
    const { displacement, live, bus, lines } = setup();
    const old = live('old');
    const other = live('other');
    displacement.displace(record('old', 'here'), 'new');
    expect(old.closes).toEqual(['replaced']);
    expect(old.sink.frames.at(-1)).toBe(frameReplaced('old'));
    expect(old.sink.ended).toBe(true);
    expect(other.closes).toEqual([]);
    expect(bus.attempts).toBe(0);
    expect(lines.find((l) => l['event'] === 'connection.replaced')).toMatchObject({ connectionId: 'old', byConnectionId: 'new' });
  });

  it('tells a tab of this node to reclaim its place when the newer one will not be live', () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const { displacement, live, events } = setup();
    const old = live('old');
    displacement.displace(record('old', 'here'), 'new', true);
    expect(old.closes).toEqual(['reclaim']);
    expect(old.sink.frames.at(-1)).toBe('retry: 200\n\nevent: closing\ndata: {"reason":"reclaim"}\n\n');
    expect(events()).toContain('connection.reclaim');
  });

  it('does nothing for a tab of this node that is already gone', () => {
    const { displacement, events } = setup();
    displacement.replaceLocal('alice', 'gone', 'new', false);
    expect(events()).toEqual([]);
  });

  it('sends a replace to the node that holds the tab, and only that node', async () => {
    const { displacement, bus, live } = setup();
    const here = live('old');
    displacement.displace(record('old', 'there'), 'new');
    displacement.displace(record('older', 'there'), 'new', true);
    await Promise.resolve();
    expect(bus.sent).toEqual([
      [{ kind: 'replace', userId: 'alice', connectionId: 'old', byConnectionId: 'new' }, { node: 'there' }],
      [{ kind: 'replace', userId: 'alice', connectionId: 'older', byConnectionId: 'new', reclaim: true }, { node: 'there' }],
    ]);
    expect(here.closes).toEqual([]);
  });

  it('retries the replace through a bus outage', async () => {
    vi.useFakeTimers();
    const { displacement, bus, lines } = setup(new FakeBus(2));
    displacement.displace(record('old', 'there'), 'new');
    await vi.advanceTimersByTimeAsync(2_000);
    expect(bus.sent).toHaveLength(1);
    expect(lines.filter((l) => l['event'] === 'connection.replace_retrying').map((l) => l['attempt'])).toEqual([1, 2]);
    expect(lines.find((l) => l['event'] === 'connection.replace_retrying')).toMatchObject({ connectionId: 'old', nodeId: 'there' });
  });

  it('gives up once the node stopped, and says so', async () => {
    vi.useFakeTimers();
    const { displacement, bus, events, stop } = setup(new FakeBus(Number.POSITIVE_INFINITY));
    displacement.displace(record('old', 'there'), 'new');
    await vi.advanceTimersByTimeAsync(1_000);
    const attempts = bus.attempts;
    stop();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(bus.attempts).toBe(attempts + 1);
    expect(events().at(-1)).toBe('connection.replace_failed');
  });
});
