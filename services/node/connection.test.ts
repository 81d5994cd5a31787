import { describe, expect, it, vi } from 'vitest';
import type { CloseReason } from '../protocol/sse-frame';
import { Connection, type StreamSink } from './connection';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function bytes(text: string): Uint8Array {
  return encoder.encode(text);
}

/**
 * Records every call in order. `writableLength` is what the test sets: a
 * client that reads keeps it at 0, a stuck one lets it grow.
 */
class FakeSink implements StreamSink {
  readonly calls: string[] = [];
  writableLength = 0;
  /** When set, every write adds its bytes to `writableLength`, as a socket that never drains. */
  growOnWrite = false;

  write(chunk: Uint8Array): boolean {
    this.calls.push(`write ${decoder.decode(chunk)}`);
    if (this.growOnWrite) this.writableLength += chunk.byteLength;
    return true;
  }

  end(chunk?: Uint8Array): void {
    this.calls.push(chunk === undefined ? 'end' : `end ${decoder.decode(chunk)}`);
  }

  destroy(): void {
    this.calls.push('destroy');
  }

  cork(): void {
    this.calls.push('cork');
  }

  uncork(): void {
    this.calls.push('uncork');
  }

  get written(): string[] {
    return this.calls.filter((c) => c.startsWith('write ')).map((c) => c.slice('write '.length));
  }
}

function setup(maxQueuedBytes = 1000): {
  connection: Connection;
  sink: FakeSink;
  closes: [Connection, CloseReason][];
} {
  const sink = new FakeSink();
  const closes: [Connection, CloseReason][] = [];
  const connection = new Connection('c1', 'alice', 10_000, 1_000, sink, maxQueuedBytes, (c, reason) => closes.push([c, reason]));
  return { connection, sink, closes };
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

    it('accepts held bytes up to the cap exactly', () => {
      const { connection, sink, closes } = setup(100);
      expect(connection.push(new Uint8Array(60), 'a')).toBe('held');
      expect(connection.push(new Uint8Array(40), 'b')).toBe('held');
      expect([connection.state, closes, sink.calls]).toEqual(['pending', [], []]);
    });

    it('closes as slow_consumer and destroys the sink when held bytes pass the cap by one', () => {
      const { connection, sink, closes } = setup(100);
      connection.begin([]);
      sink.calls.length = 0;
      connection.push(new Uint8Array(60), 'a');
      connection.push(new Uint8Array(40), 'b');
      expect(connection.push(new Uint8Array(1), 'c')).toBe('dropped');
      expect([connection.state, connection.closedReason]).toEqual(['closed', 'slow_consumer']);
      expect(sink.calls).toEqual(['destroy']);
      expect(closes).toEqual([[connection, 'slow_consumer']]);
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

    it('closes as slow_consumer when releasing the held events would take the sink over the cap', () => {
      const { connection, sink, closes } = setup(100);
      connection.begin([]);
      connection.push(bytes('a'.repeat(30)), 'a');
      connection.push(bytes('b'.repeat(30)), 'b');
      sink.writableLength = 50; // the replay is still in the socket
      sink.calls.length = 0;
      sink.growOnWrite = true;
      expect(connection.goLive(new Set())).toBe(0);
      // 50 + 30 fits; 80 + 30 does not.
      expect(sink.calls).toEqual(['cork', `write ${'a'.repeat(30)}`, 'destroy', 'uncork']);
      expect(closes).toEqual([[connection, 'slow_consumer']]);
    });
  });

  describe('live', () => {
    function live(maxQueuedBytes = 100): ReturnType<typeof setup> {
      const s = setup(maxQueuedBytes);
      s.connection.begin([]);
      s.connection.goLive(new Set());
      s.sink.calls.length = 0;
      return s;
    }

    it('writes a pushed event straight to the sink', () => {
      const { connection, sink } = live();
      expect(connection.push(bytes('e1'), 'id1')).toBe('written');
      expect(sink.calls).toEqual(['write e1']);
    });

    it('writes a push that brings the sink exactly to the cap', () => {
      const { connection, sink, closes } = live(100);
      sink.writableLength = 90;
      expect(connection.push(new Uint8Array(10), 'id')).toBe('written');
      expect(closes).toEqual([]);
      expect(sink.calls).toHaveLength(1);
    });

    it('drops a push that would take the sink one byte over the cap, closing as slow_consumer and destroying the sink', () => {
      const { connection, sink, closes } = live(100);
      sink.writableLength = 90;
      expect(connection.push(new Uint8Array(11), 'id')).toBe('dropped');
      expect([connection.state, connection.closedReason]).toEqual(['closed', 'slow_consumer']);
      expect(sink.calls).toEqual(['destroy']);
      expect(closes).toEqual([[connection, 'slow_consumer']]);
    });

    it('drops every push after closing, without calling the sink or onClosed again', () => {
      const { connection, sink, closes } = live(100);
      sink.writableLength = 100;
      connection.push(bytes('x'), 'id1');
      sink.writableLength = 0;
      expect(connection.push(bytes('y'), 'id2')).toBe('dropped');
      expect(connection.write(bytes('z'))).toBe(false);
      expect(sink.calls).toEqual(['destroy']);
      expect(closes).toHaveLength(1);
    });

    it('stops a corked write at the first frame over the cap, and still uncorks', () => {
      const { connection, sink } = live(100);
      sink.growOnWrite = true;
      expect(connection.writeAll([new Uint8Array(60), new Uint8Array(40), new Uint8Array(1), new Uint8Array(1)])).toBe(false);
      expect(sink.calls.map((c) => c.split(' ')[0])).toEqual(['cork', 'write', 'write', 'destroy', 'uncork']);
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

    it('writes the final frame when it brings the sink exactly to the cap', () => {
      const { connection, sink } = setup(100);
      connection.begin([]);
      sink.calls.length = 0;
      sink.writableLength = 97;
      connection.close('draining', bytes('bye'));
      expect(sink.calls).toEqual(['end bye']);
    });

    it('ends without the final frame when it would take the sink over the cap', () => {
      const { connection, sink, closes } = setup(100);
      connection.begin([]);
      sink.calls.length = 0;
      sink.writableLength = 98;
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
      const sink = new FakeSink();
      const connection = new Connection('c1', 'alice', 10_000, 1_000, sink, 1000, onClosed);
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
