import { describe, expect, it, vi } from 'vitest';
import type { CloseReason } from '../protocol/stream-terms';
import { Connection, type BackpressureLimits } from './connection';
import { FakeSink } from './fakes';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function bytes(text: string): Uint8Array {
  return encoder.encode(text);
}

/**
 * The shared fake socket, also recording every call in order. `writableLength`
 * is what the test sets: a client that reads keeps it at 0, a stuck one lets
 * it grow. `drain` and `close` fire only when the test says so, as a socket's
 * would when the client reads again or goes away.
 */
class CallSink extends FakeSink {
  readonly calls: string[] = [];
  /** When set, every write adds its bytes to `writableLength`, as a socket that never drains. */
  growOnWrite = false;

  override write(chunk: Uint8Array): boolean {
    this.calls.push(`write ${decoder.decode(chunk)}`);
    if (this.growOnWrite) this.writableLength += chunk.byteLength;
    return super.write(chunk);
  }

  override end(chunk?: Uint8Array): void {
    this.calls.push(chunk === undefined ? 'end' : `end ${decoder.decode(chunk)}`);
    super.end(chunk);
  }

  override destroy(): void {
    this.calls.push('destroy');
    super.destroy();
  }

  override cork(): void {
    this.calls.push('cork');
  }

  override uncork(): void {
    this.calls.push('uncork');
  }

  /** The client read everything: the backlog is empty and `drain` fires. */
  drain(): void {
    this.writableLength = 0;
    this.emit('drain');
  }

  get written(): string[] {
    return this.calls.filter((c) => c.startsWith('write ')).map((c) => c.slice('write '.length));
  }
}

/** Small numbers with the node's shape: the hard limit is 8× the stall threshold. */
const LIMITS: BackpressureLimits = { maxQueuedBytes: 100, hardQueuedBytes: 800, stallTimeoutMs: 1_000 };

function setup(limits: Partial<BackpressureLimits> = {}): {
  connection: Connection;
  sink: CallSink;
  closes: [Connection, CloseReason][];
} {
  const sink = new CallSink();
  const closes: [Connection, CloseReason][] = [];
  const connection = new Connection('c1', 'alice', '127.0.0.1', 10_000, 1_000, sink, { ...LIMITS, ...limits }, (c, reason) => closes.push([c, reason]));
  return { connection, sink, closes };
}

/** A connection past its replay, writing events as they come. */
function live(limits: Partial<BackpressureLimits> = {}): ReturnType<typeof setup> {
  const s = setup(limits);
  s.connection.begin([]);
  s.connection.goLive(new Set());
  s.sink.calls.length = 0;
  return s;
}

/** `n` frames of `size` bytes, each spelling its index so the order shows in `sink.written`. */
function frames(n: number, size: number): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => bytes(String(i).padEnd(size, '.')));
}

/** Lets every pending promise callback run, so a test can see that a promise is still waiting. */
async function settle(): Promise<void> {
  await new Promise<void>((resolve) => setImmediate(resolve));
}

/** Tracks a promise so a test can ask whether it has settled yet. */
function track<T>(promise: Promise<T>): { readonly done: boolean; readonly value: T | undefined; readonly promise: Promise<T> } {
  const state = { done: false, value: undefined as T | undefined, promise };
  void promise.then((value) => {
    state.done = true;
    state.value = value;
  });
  return state;
}

describe('Connection', () => {
  it('starts pending, with the first ping due at connection time', () => {
    const { connection, sink } = setup();
    expect([connection.state, connection.closedReason, connection.nextPingAtMs]).toEqual(['pending', undefined, 1_000]);
    expect(sink.calls).toEqual([]);
  });

  describe('before going live', () => {
    it('holds events pushed while pending and while replaying, then releases them in arrival order', () => {
      const { connection, sink } = setup();
      expect(connection.push(bytes('e1'), 'id1')).toBe('held');
      expect(connection.begin([bytes('hello')])).toBe(true);
      expect(connection.state).toBe('replaying');
      expect(connection.push(bytes('e2'), 'id2')).toBe('held');
      expect(connection.writeAll([bytes('r1'), bytes('r2')])).toBe(true);
      expect(connection.push(bytes('e3'), 'id3')).toBe('held');
      expect(sink.written).toEqual(['hello', 'r1', 'r2']);

      expect(connection.goLive(new Set())).toBe(3);
      expect(connection.state).toBe('live');
      expect(sink.written).toEqual(['hello', 'r1', 'r2', 'e1', 'e2', 'e3']);
    });

    it('skips held events whose id the replay already carried, and releases id-less ones', () => {
      const { connection, sink } = setup();
      connection.begin([]);
      connection.push(bytes('e1'), 'id1');
      connection.push(bytes('x'), undefined);
      connection.push(bytes('e2'), 'id2');
      connection.push(bytes('e3'), 'id3');
      expect(connection.goLive(new Set(['id1', 'id3']))).toBe(2);
      expect(sink.written).toEqual(['x', 'e2']);
    });

    it('once live, skips a late copy of an event the replay carried, and writes the others', () => {
      const { connection, sink } = setup();
      connection.begin([]);
      connection.goLive(new Set(['id1']));
      expect(connection.push(bytes('e1'), 'id1')).toBe('duplicate');
      expect(connection.push(bytes('e2'), 'id2')).toBe('written');
      expect(connection.push(bytes('x'), undefined)).toBe('written');
      expect(sink.written).toEqual(['e2', 'x']);
    });

    it('releases the held events in one corked write', () => {
      const { connection, sink } = setup();
      connection.begin([bytes('hello')]);
      connection.push(bytes('e1'), 'id1');
      connection.push(bytes('e2'), 'id2');
      sink.calls.length = 0;
      connection.goLive(new Set());
      expect(sink.calls).toEqual(['cork', 'write e1', 'write e2', 'uncork']);
    });

    it('writes nothing and returns 0 when nothing is held', () => {
      const { connection, sink } = setup();
      connection.begin([]);
      sink.calls.length = 0;
      expect(connection.goLive(new Set())).toBe(0);
      expect(sink.calls).toEqual([]);
      expect(connection.state).toBe('live');
    });

    it('writes the handshake of begin corked, and begins only once', () => {
      const { connection, sink } = setup();
      expect(connection.begin([bytes('retry'), bytes('ready')])).toBe(true);
      expect(sink.calls).toEqual(['cork', 'write retry', 'write ready', 'uncork']);
      expect(connection.begin([bytes('again')])).toBe(false);
      expect(sink.written).toEqual(['retry', 'ready']);
    });

    it('holds more than maxQueuedBytes: only the hard limit bounds held events', () => {
      const { connection, sink, closes } = setup();
      connection.begin([]);
      sink.calls.length = 0;
      expect(connection.push(new Uint8Array(LIMITS.maxQueuedBytes * 5), 'a')).toBe('held');
      expect([connection.state, closes, sink.calls]).toEqual(['replaying', [], []]);
    });

    it('accepts held bytes up to the hard limit exactly', () => {
      const { connection, sink, closes } = setup();
      expect(connection.push(new Uint8Array(600), 'a')).toBe('held');
      expect(connection.push(new Uint8Array(200), 'b')).toBe('held');
      expect([connection.state, closes, sink.calls]).toEqual(['pending', [], []]);
    });

    it('closes as slow_consumer and destroys the sink when held bytes pass the hard limit by one', () => {
      const { connection, sink, closes } = setup();
      connection.begin([]);
      sink.calls.length = 0;
      connection.push(new Uint8Array(600), 'a');
      connection.push(new Uint8Array(200), 'b');
      expect(connection.push(new Uint8Array(1), 'c')).toBe('dropped');
      expect([connection.state, connection.closedReason]).toEqual(['closed', 'slow_consumer']);
      expect(sink.calls).toEqual(['destroy']);
      expect(closes).toEqual([[connection, 'slow_consumer']]);
      // Nothing of what was held is released afterwards.
      expect(connection.goLive(new Set())).toBe(0);
      expect(sink.calls).toEqual(['destroy']);
    });

    it('releases nothing once closed while replaying', () => {
      const { connection, sink } = setup();
      connection.begin([]);
      connection.push(bytes('e1'), 'id1');
      connection.close('draining');
      sink.calls.length = 0;
      expect(connection.goLive(new Set())).toBe(0);
      expect(connection.state).toBe('closed');
      expect(sink.calls).toEqual([]);
    });

    it('closes as slow_consumer when releasing the held events would take the sink over the hard limit', () => {
      const { connection, sink, closes } = setup();
      connection.begin([]);
      connection.push(bytes('a'.repeat(30)), 'a');
      connection.push(bytes('b'.repeat(30)), 'b');
      sink.writableLength = 750; // the replay is still in the socket
      sink.calls.length = 0;
      sink.growOnWrite = true;
      expect(connection.goLive(new Set())).toBe(0);
      // 750 + 30 fits; 780 + 30 does not.
      expect(sink.calls).toEqual(['cork', `write ${'a'.repeat(30)}`, 'destroy', 'uncork']);
      expect(closes).toEqual([[connection, 'slow_consumer']]);
    });
  });

  describe('live', () => {
    it('writes a pushed event straight to the sink', () => {
      const { connection, sink } = live();
      expect(connection.push(bytes('e1'), 'id1')).toBe('written');
      expect(sink.calls).toEqual(['write e1']);
    });

    it('writes a burst past maxQueuedBytes: a backlog is judged over time, not at once', () => {
      const { connection, sink, closes } = live();
      sink.growOnWrite = true;
      for (const frame of frames(7, 100)) expect(connection.push(frame, undefined)).toBe('written');
      expect(sink.writableLength).toBe(700);
      expect([connection.state, closes]).toEqual(['live', []]);
    });

    it('writes a push that brings the sink exactly to the hard limit', () => {
      const { connection, sink, closes } = live();
      sink.writableLength = 790;
      expect(connection.push(new Uint8Array(10), 'id')).toBe('written');
      expect(closes).toEqual([]);
      expect(sink.calls).toHaveLength(1);
    });

    it('drops a push that would take the sink one byte over the hard limit, closing as slow_consumer and destroying the sink', () => {
      const { connection, sink, closes } = live();
      sink.writableLength = 790;
      expect(connection.push(new Uint8Array(11), 'id')).toBe('dropped');
      expect([connection.state, connection.closedReason]).toEqual(['closed', 'slow_consumer']);
      expect(sink.calls).toEqual(['destroy']);
      expect(closes).toEqual([[connection, 'slow_consumer']]);
    });

    it('cuts at the hard limit on write, with no stall timeout involved', () => {
      const { connection, sink, closes } = live({ stallTimeoutMs: 600_000 });
      sink.writableLength = 800;
      expect(connection.write(bytes('x'))).toBe(false);
      expect([connection.state, connection.closedReason, sink.calls]).toEqual(['closed', 'slow_consumer', ['destroy']]);
      expect(closes).toEqual([[connection, 'slow_consumer']]);
    });

    it('drops every push after closing, without calling the sink or onClosed again', () => {
      const { connection, sink, closes } = live();
      sink.writableLength = 800;
      connection.push(bytes('x'), 'id1');
      sink.writableLength = 0;
      expect(connection.push(bytes('y'), 'id2')).toBe('dropped');
      expect(connection.write(bytes('z'))).toBe(false);
      expect(sink.calls).toEqual(['destroy']);
      expect(closes).toHaveLength(1);
    });

    it('stops a corked write at the first frame over the hard limit, and still uncorks', () => {
      const { connection, sink } = live();
      sink.growOnWrite = true;
      expect(connection.writeAll([new Uint8Array(600), new Uint8Array(200), new Uint8Array(1), new Uint8Array(1)])).toBe(false);
      expect(sink.calls.map((c) => c.split(' ')[0])).toEqual(['cork', 'write', 'write', 'destroy', 'uncork']);
    });
  });

  describe('stalled', () => {
    it('is false while the backlog is at or below maxQueuedBytes, however long', () => {
      const { connection, sink } = live();
      sink.writableLength = LIMITS.maxQueuedBytes;
      for (const now of [0, 1_000, 60_000, 3_600_000]) expect(connection.stalled(now)).toBe(false);
    });

    it('is false while the backlog has been above maxQueuedBytes for less than stallTimeoutMs', () => {
      const { connection, sink } = live();
      sink.writableLength = LIMITS.maxQueuedBytes + 1;
      expect(connection.stalled(5_000)).toBe(false);
      expect(connection.stalled(5_500)).toBe(false);
      expect(connection.stalled(5_000 + LIMITS.stallTimeoutMs - 1)).toBe(false);
    });

    it('is true once the backlog has stayed above maxQueuedBytes for stallTimeoutMs exactly', () => {
      const { connection, sink, closes } = live();
      sink.writableLength = LIMITS.maxQueuedBytes + 1;
      expect(connection.stalled(5_000)).toBe(false);
      expect(connection.stalled(5_000 + LIMITS.stallTimeoutMs)).toBe(true);
      expect(connection.stalled(5_000 + LIMITS.stallTimeoutMs + 1)).toBe(true);
      // It only judges: cutting the stream is the node's call.
      expect([connection.state, closes, sink.calls]).toEqual(['live', [], []]);
    });

    it('restarts the clock when the backlog is seen back at or below maxQueuedBytes in between', () => {
      const { connection, sink } = live();
      sink.writableLength = LIMITS.maxQueuedBytes + 1;
      expect(connection.stalled(0)).toBe(false);
      expect(connection.stalled(900)).toBe(false);
      sink.writableLength = LIMITS.maxQueuedBytes; // the client read some
      expect(connection.stalled(950)).toBe(false);
      sink.writableLength = LIMITS.maxQueuedBytes + 500;
      expect(connection.stalled(1_000)).toBe(false);
      expect(connection.stalled(1_999)).toBe(false);
      expect(connection.stalled(2_000)).toBe(true);
    });

    it('keeps one drain listener however often the backlog dips below the cap without emptying', () => {
      const { connection, sink } = live();
      for (let i = 0; i < 50; i++) {
        sink.writableLength = LIMITS.maxQueuedBytes + 1;
        connection.stalled(i * 10);
        sink.writableLength = LIMITS.maxQueuedBytes;
        connection.stalled(i * 10 + 5);
      }
      expect(sink.listenerCount('drain')).toBe(1);
      sink.drain();
      expect(sink.listenerCount('drain')).toBe(0);
      sink.writableLength = LIMITS.maxQueuedBytes + 1;
      connection.stalled(1_000);
      expect(sink.listenerCount('drain')).toBe(1);
    });

    it('counts from the first time the backlog was seen above maxQueuedBytes, not from when it grew', () => {
      const { connection, sink } = live();
      sink.writableLength = LIMITS.maxQueuedBytes + 1;
      expect(connection.stalled(0)).toBe(false);
      sink.writableLength = LIMITS.maxQueuedBytes + 600;
      expect(connection.stalled(999)).toBe(false);
      expect(connection.stalled(1_000)).toBe(true);
    });

    it('judges a replaying stream too: a replay the client never reads is a stall', () => {
      const { connection, sink } = setup();
      connection.begin([]);
      sink.writableLength = LIMITS.maxQueuedBytes + 1;
      expect(connection.stalled(0)).toBe(false);
      expect(connection.stalled(LIMITS.stallTimeoutMs)).toBe(true);
    });

    it('is false for a closed stream, whatever its backlog', () => {
      const { connection, sink } = live();
      sink.writableLength = LIMITS.maxQueuedBytes + 1;
      expect(connection.stalled(0)).toBe(false);
      connection.close('draining');
      expect(connection.stalled(LIMITS.stallTimeoutMs * 10)).toBe(false);
    });
  });

  describe('writePaced', () => {
    function replaying(limits: Partial<BackpressureLimits> = {}): ReturnType<typeof setup> {
      const s = setup(limits);
      s.connection.begin([]);
      s.sink.calls.length = 0;
      return s;
    }

    it('writes every frame in one corked batch when the client keeps up, and resolves true', async () => {
      const { connection, sink } = replaying();
      expect(await connection.writePaced(frames(20, 40))).toBe(true);
      expect(sink.written).toEqual(frames(20, 40).map((f) => decoder.decode(f)));
      expect(sink.calls[0]).toBe('cork');
      expect(sink.calls.at(-1)).toBe('uncork');
      expect([sink.listenerCount('drain'), sink.listenerCount('close')]).toEqual([0, 0]);
    });

    it('resolves true at once for no frames, writing nothing', async () => {
      const { connection, sink } = replaying();
      expect(await connection.writePaced([])).toBe(true);
      expect(sink.written).toEqual([]);
    });

    it('stops once the backlog passes maxQueuedBytes, waits for drain, then writes the rest in order', async () => {
      const { connection, sink, closes } = replaying();
      sink.growOnWrite = true;
      const all = frames(7, 40);
      const paced = track(connection.writePaced(all));

      // 0, 40 and 80 are at or below the threshold, so three frames go out; at 120 it waits.
      await settle();
      expect(paced.done).toBe(false);
      expect(sink.written).toEqual(all.slice(0, 3).map((f) => decoder.decode(f)));
      expect(sink.calls).toEqual(['cork', ...sink.written.map((w) => `write ${w}`), 'uncork']);
      expect([sink.listenerCount('drain'), sink.listenerCount('close')]).toEqual([1, 1]);

      sink.drain();
      await settle();
      expect(paced.done).toBe(false);
      expect(sink.written).toHaveLength(6);

      sink.drain();
      expect(await paced.promise).toBe(true);
      expect(sink.written).toEqual(all.map((f) => decoder.decode(f)));
      expect([sink.listenerCount('drain'), sink.listenerCount('close')]).toEqual([0, 0]);
      expect([connection.state, closes]).toEqual(['replaying', []]);
    });

    it('never takes the backlog past the hard limit, however many frames there are', async () => {
      const { connection, sink, closes } = replaying();
      sink.growOnWrite = true;
      let peak = 0;
      const write = sink.write.bind(sink);
      sink.write = (chunk) => {
        const result = write(chunk);
        peak = Math.max(peak, sink.writableLength);
        return result;
      };
      const paced = track(connection.writePaced(frames(200, 40)));
      while (!paced.done) {
        await settle();
        sink.drain();
      }
      expect(paced.value).toBe(true);
      expect(sink.written).toHaveLength(200);
      expect(peak).toBeLessThanOrEqual(LIMITS.maxQueuedBytes + 40);
      expect(closes).toEqual([]);
    });

    it('resolves false when the sink closes while it waits, and writes nothing after', async () => {
      const { connection, sink } = replaying();
      sink.growOnWrite = true;
      const paced = track(connection.writePaced(frames(7, 40)));
      await settle();
      const before = sink.calls.length;

      sink.emit('close');
      expect(await paced.promise).toBe(false);
      sink.drain();
      await settle();
      expect(sink.calls).toHaveLength(before);
      expect([sink.listenerCount('drain'), sink.listenerCount('close')]).toEqual([0, 0]);
    });

    it('resolves false when the stream was closed while it waited, even if the sink drains', async () => {
      const { connection, sink } = replaying();
      sink.growOnWrite = true;
      const paced = track(connection.writePaced(frames(7, 40)));
      await settle();
      connection.close('draining', bytes('bye'));
      const before = sink.calls.length;

      sink.drain();
      expect(await paced.promise).toBe(false);
      expect(sink.calls).toHaveLength(before);
      expect(sink.listenerCount('close')).toBe(0);
    });

    it('resolves false, without waiting, when a frame would take the backlog past the hard limit', async () => {
      const { connection, sink, closes } = replaying();
      sink.writableLength = 50;
      expect(await connection.writePaced([bytes('small'), new Uint8Array(800)])).toBe(false);
      expect(sink.calls).toEqual(['cork', 'write small', 'destroy', 'uncork']);
      expect(closes).toEqual([[connection, 'slow_consumer']]);
      expect(sink.listenerCount('drain')).toBe(0);
    });

    it('resolves false for a stream already closed, writing nothing', async () => {
      const { connection, sink } = replaying();
      connection.close('draining');
      sink.calls.length = 0;
      expect(await connection.writePaced(frames(3, 10))).toBe(false);
      expect(sink.written).toEqual([]);
    });
  });

  describe('close', () => {
    it('writes the final frame with end, and calls onClosed once with the reason', () => {
      const { connection, sink, closes } = setup();
      connection.begin([]);
      connection.goLive(new Set());
      sink.calls.length = 0;
      connection.close('draining', bytes('bye'));
      expect(sink.calls).toEqual(['end bye']);
      expect([connection.state, connection.closedReason]).toEqual(['closed', 'draining']);
      expect(closes).toEqual([[connection, 'draining']]);
    });

    it('is idempotent: a second close changes nothing and calls nothing', () => {
      const { connection, sink, closes } = setup();
      connection.begin([]);
      sink.calls.length = 0;
      connection.close('replaced', bytes('replaced'));
      connection.close('draining', bytes('closing'));
      connection.close('slow_consumer');
      expect(sink.calls).toEqual(['end replaced']);
      expect(connection.closedReason).toBe('replaced');
      expect(closes).toEqual([[connection, 'replaced']]);
    });

    it('ends without a final frame when none is given', () => {
      const { connection, sink } = setup();
      connection.begin([]);
      sink.calls.length = 0;
      connection.close('token_expired');
      expect(sink.calls).toEqual(['end']);
    });

    it('writes the final frame when it brings the sink exactly to the hard limit', () => {
      const { connection, sink } = setup();
      connection.begin([]);
      sink.calls.length = 0;
      sink.writableLength = 797;
      connection.close('draining', bytes('bye'));
      expect(sink.calls).toEqual(['end bye']);
    });

    it('ends without the final frame when it would take the sink over the hard limit', () => {
      const { connection, sink, closes } = setup();
      connection.begin([]);
      sink.calls.length = 0;
      sink.writableLength = 798;
      connection.close('draining', bytes('bye'));
      expect(sink.calls).toEqual(['end']);
      expect(closes).toEqual([[connection, 'draining']]);
    });

    it.each<CloseReason>(['slow_consumer', 'client_closed'])('destroys the sink without a final frame when the client is the reason (%s)', (reason) => {
      const { connection, sink, closes } = setup();
      connection.begin([]);
      sink.calls.length = 0;
      connection.close(reason, bytes('bye'));
      expect(sink.calls).toEqual(['destroy']);
      expect(closes).toEqual([[connection, reason]]);
    });

    it.each<CloseReason>(['draining', 'replaced', 'token_expired', 'server_error'])(
      'writes nothing to a pending connection closed as %s, and still calls onClosed',
      (reason) => {
        const { connection, sink, closes } = setup();
        connection.close(reason, bytes('final'));
        expect(sink.calls).toEqual([]);
        expect([connection.state, connection.closedReason]).toEqual(['closed', reason]);
        expect(closes).toEqual([[connection, reason]]);
      },
    );

    it('writes nothing to a pending connection that is not reading, but destroys its sink', () => {
      const { connection, sink } = setup();
      connection.close('slow_consumer', bytes('final'));
      expect(sink.calls).toEqual(['destroy']);
    });

    it('drops held events and refuses to begin once closed', () => {
      const { connection, sink } = setup();
      connection.push(bytes('e1'), 'id1');
      connection.close('draining');
      expect(connection.push(bytes('e2'), 'id2')).toBe('dropped');
      expect(connection.begin([bytes('hello')])).toBe(false);
      expect(connection.goLive(new Set())).toBe(0);
      expect(sink.calls).toEqual([]);
    });
  });

  describe('discard', () => {
    it('forgets a pending connection without touching the sink or calling onClosed', () => {
      const onClosed = vi.fn();
      const sink = new CallSink();
      const connection = new Connection('c1', 'alice', '127.0.0.1', 10_000, 1_000, sink, LIMITS, onClosed);
      connection.push(bytes('e1'), 'id1');
      connection.discard();
      expect(connection.state).toBe('closed');
      expect(connection.closedReason).toBeUndefined();
      expect(connection.push(bytes('e2'), 'id2')).toBe('dropped');
      connection.close('draining');
      expect(connection.goLive(new Set())).toBe(0);
      expect(sink.calls).toEqual([]);
      expect(onClosed).not.toHaveBeenCalled();
    });
  });
});
