import { describe, expect, it } from 'vitest';
import type { HeraldEvent } from '../protocol/envelope';
import { frameEvent } from '../protocol/sse-frame';
import { FanOut } from './fan-out';
import { liveStream, manualClock, pendingStream, type FakeStream, type FakeStreamOptions } from './fakes';
import { Hub } from './hub';
import { NodeMetrics } from './metrics';

function setup() {
  const hub = new Hub();
  const metrics = new NodeMetrics();
  const time = manualClock();
  const fanOut = new FanOut({ hub, metrics, clock: time.clock });
  /** A live stream in the hub, leaving it when it closes, as the opener's close handler does. */
  const live = (id: string, userId: string, options: FakeStreamOptions = {}): FakeStream => {
    const stream = liveStream(id, userId, { ...options, onClosed: (c) => hub.remove(c) });
    hub.add(stream.connection);
    return stream;
  };
  return { hub, metrics, time, fanOut, live };
}

function event(id: string, to: HeraldEvent['to'], publishedAtMs: number, data = '{}'): HeraldEvent {
  return { id, event: 'note', data, to, ttlSeconds: 60, publishedAtMs };
}

describe('FanOut', () => {
  it('writes a unicast to every stream of its users and to no one else, one frame shared by all', () => {
    const { fanOut, live, metrics, time } = setup();
    const alice1 = live('a1', 'alice');
    const alice2 = live('a2', 'alice');
    const bob = live('b1', 'bob');
    const carol = live('c1', 'carol');
    fanOut.deliver(event('e1', { users: ['alice', 'bob', 'dave'] }, time.now));
    expect(alice1.sink.frames).toEqual([frameEvent(event('e1', { users: [] }, 0))]);
    expect(alice2.sink.frames).toEqual(alice1.sink.frames);
    expect(bob.sink.frames).toEqual(alice1.sink.frames);
    expect(carol.sink.chunks).toEqual([]);
    expect(alice2.sink.chunks[0]).toBe(alice1.sink.chunks[0]);
    expect(bob.sink.chunks[0]).toBe(alice1.sink.chunks[0]);
    expect(metrics.deliveries).toBe(3);
  });

  it('writes a broadcast to every stream on the node', () => {
    const { fanOut, live, metrics, time } = setup();
    const streams = [live('a1', 'alice'), live('a2', 'alice'), live('b1', 'bob')];
    fanOut.deliver(event('e1', { all: true }, time.now));
    expect(streams.map((s) => s.sink.chunks.length)).toEqual([1, 1, 1]);
    expect(metrics.deliveries).toBe(3);
  });

  it('holds the event on a stream still replaying, counting it neither written nor dropped', () => {
    const { fanOut, hub, metrics, time } = setup();
    const opening = pendingStream('a1', 'alice');
    opening.connection.begin([]);
    hub.add(opening.connection);
    fanOut.deliver(event('e1', { users: ['alice'] }, time.now));
    expect(opening.sink.chunks).toEqual([]);
    expect([metrics.deliveries, metrics.drops.slow_consumer, metrics.publishToWrite.count]).toEqual([0, 0, 0]);
    expect(opening.connection.goLive(new Set())).toBe(1);
    expect(opening.sink.frames).toEqual([frameEvent(event('e1', { users: [] }, 0))]);
  });

  it('counts a stream cut for its backlog as a drop, and still writes to the user\'s other tabs', () => {
    const { fanOut, live, hub, metrics, time } = setup();
    const first = live('a1', 'alice');
    const stuck = live('a2', 'alice');
    const last = live('a3', 'alice');
    stuck.sink.writableLength = 7_990;
    fanOut.deliver(event('e1', { users: ['alice'] }, time.now, JSON.stringify('x'.repeat(50))));
    expect(stuck.closes).toEqual(['slow_consumer']);
    expect(stuck.sink.destroyed).toBe(true);
    expect([first.sink.chunks.length, last.sink.chunks.length]).toEqual([1, 1]);
    expect(hub.of('alice')?.map((c) => c.id)).toEqual(['a1', 'a3']);
    expect([metrics.deliveries, metrics.drops.slow_consumer]).toEqual([2, 1]);
  });

  it('observes publish-to-write latency once per event written, and not at all for one written nowhere', () => {
    const { fanOut, live, metrics, time } = setup();
    live('a1', 'alice');
    live('a2', 'alice');
    fanOut.deliver(event('e1', { users: ['alice'] }, time.now - 20));
    fanOut.deliver(event('e2', { users: ['nobody'] }, time.now - 20));
    expect(metrics.publishToWrite.count).toBe(1);
    expect(metrics.publishToWrite.sum).toBeCloseTo(0.02);
  });

  it('skips an id the stream\'s replay already carried', () => {
    const { fanOut, hub, metrics, time } = setup();
    const resumed = pendingStream('a1', 'alice');
    resumed.connection.begin([]);
    resumed.connection.goLive(new Set(['e1']));
    hub.add(resumed.connection);
    fanOut.deliver(event('e1', { users: ['alice'] }, time.now));
    fanOut.deliver(event('e2', { users: ['alice'] }, time.now));
    expect(resumed.sink.frames).toEqual([frameEvent(event('e2', { users: [] }, 0))]);
    expect(metrics.deliveries).toBe(1);
  });
});
