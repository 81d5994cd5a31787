/**
 * Test doubles for the node's unit tests (not bundled: nothing the node runs
 * imports this). Streams are real `Connection`s over a sink that records what
 * a socket would have been given.
 */
import type { Clock } from '../ports/clock';
import type { CloseReason } from '../protocol/stream-terms';
import { createLogger, type Logger } from '../shared/log';
import { Connection, type BackpressureLimits, type StreamSink } from './connection';

const decoder = new TextDecoder();

type SinkEvent = 'drain' | 'close';

/** A socket that keeps what it is given. `writableLength` is what the test sets. */
export class FakeSink implements StreamSink {
  /** Every chunk written, as given (the same object when one frame goes to many streams). */
  readonly chunks: Uint8Array[] = [];
  writableLength = 0;
  ended = false;
  destroyed = false;
  private listeners: Record<SinkEvent, Array<() => void>> = { drain: [], close: [] };

  get writableNeedDrain(): boolean {
    return this.writableLength > 0;
  }

  write(data: Uint8Array): boolean {
    this.chunks.push(data);
    return true;
  }

  end(data?: Uint8Array): void {
    if (data !== undefined) this.chunks.push(data);
    this.ended = true;
  }

  destroy(): void {
    this.destroyed = true;
  }

  cork(): void {
    // Corking changes when bytes leave, not which: nothing to record.
  }

  uncork(): void {
    // As cork.
  }

  once(event: SinkEvent, listener: () => void): this {
    this.listeners[event].push(listener);
    return this;
  }

  removeListener(event: SinkEvent, listener: () => void): this {
    this.listeners[event] = this.listeners[event].filter((l) => l !== listener);
    return this;
  }

  listenerCount(event: SinkEvent): number {
    return this.listeners[event].length;
  }

  /** Fires `event` once, as `once` listeners do. */
  emit(event: SinkEvent): void {
    const listeners = this.listeners[event];
    this.listeners[event] = [];
    for (const listener of listeners) listener();
  }

  /** Each chunk written, decoded, without its HTTP chunk framing: the SSE frames as the client reads them. */
  get frames(): string[] {
    return this.chunks.map((c) => {
      const text = decoder.decode(c);
      return /^[0-9a-f]+\r\n([\s\S]*)\r\n$/.exec(text)?.[1] ?? text;
    });
  }
}

/** Small numbers with the node's shape: the hard limit is 8× the stall threshold. */
export const TEST_LIMITS: BackpressureLimits = { maxQueuedBytes: 1_000, hardQueuedBytes: 8_000, stallTimeoutMs: 2_000 };

export interface FakeStream {
  readonly connection: Connection;
  readonly sink: FakeSink;
  /** Reasons the stream closed with, as its close handler heard them. */
  readonly closes: CloseReason[];
}

export interface FakeStreamOptions {
  readonly address?: string;
  readonly expiresAtMs?: number;
  readonly connectedAtMs?: number;
  readonly limits?: BackpressureLimits;
  /** Also called on close: a hub's `remove`, say. */
  readonly onClosed?: (connection: Connection) => void;
}

/** A pending stream, as the opener makes it before the claim. */
export function pendingStream(id: string, userId: string, options: FakeStreamOptions = {}): FakeStream {
  const sink = new FakeSink();
  const closes: CloseReason[] = [];
  const connection = new Connection(
    id,
    userId,
    options.address ?? '127.0.0.1',
    options.expiresAtMs ?? Number.MAX_SAFE_INTEGER,
    options.connectedAtMs ?? 0,
    sink,
    options.limits ?? TEST_LIMITS,
    (c, reason) => {
      closes.push(reason);
      options.onClosed?.(c);
    },
  );
  return { connection, sink, closes };
}

/** A stream past its replay, writing events as they come; its sink starts empty. */
export function liveStream(id: string, userId: string, options: FakeStreamOptions = {}): FakeStream {
  const stream = pendingStream(id, userId, options);
  stream.connection.begin([]);
  stream.connection.goLive(new Set());
  return stream;
}

/** A clock that moves only when told. */
export interface ManualClock {
  readonly clock: Clock;
  now: number;
  advance(ms: number): void;
}

export function manualClock(startMs = 1_000_000): ManualClock {
  const state: ManualClock = {
    now: startMs,
    clock: () => state.now,
    advance: (ms) => {
      state.now += ms;
    },
  };
  return state;
}

/** A real logger whose lines are kept, parsed. */
export function recordingLog(): { readonly log: Logger; readonly lines: Array<Record<string, unknown>>; readonly events: () => string[] } {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ level: 'debug', sink: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { log, lines, events: () => lines.map((l) => String(l['event'])) };
}
