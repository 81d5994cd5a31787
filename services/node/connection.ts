import type { CloseReason } from '../protocol/sse-frame';

/**
 * What a connection writes to. `http.ServerResponse` satisfies it; unit tests
 * pass a fake. Node's own socket buffer is the per-connection queue: we never
 * copy frames into a second one, we only refuse to let it grow past the cap.
 */
export interface StreamSink {
  write(chunk: Uint8Array): boolean;
  end(chunk?: Uint8Array): void;
  destroy(): void;
  cork(): void;
  uncork(): void;
  /** Bytes accepted by `write` but not yet handed to the kernel. */
  readonly writableLength: number;
}

/**
 * `pending`: registered and claiming, nothing written yet (a refusal can still be
 * an HTTP status). `replaying`: headers and replay going out, live events held.
 * `live`: events written as they come.
 */
export type ConnectionState = 'pending' | 'replaying' | 'live' | 'closed';

export type WriteOutcome = 'written' | 'held' | 'dropped';

interface Held {
  readonly frame: Uint8Array;
  readonly id: string | undefined;
}

/**
 * One open event stream.
 *
 * Until `live` (claim and replay in flight) live events are held, not
 * written: the replay must go out first and in order, and anything the replay
 * already carried is skipped when the held events are released. Once `live`,
 * each event is written straight to the sink, unless the sink already holds
 * `maxQueuedBytes`: that client has stopped reading, and it is cut rather than
 * buffered without bound (the others never wait for it).
 */
export class Connection {
  state: ConnectionState = 'pending';
  closedReason: CloseReason | undefined;
  /** Next heartbeat, spread by the caller so a fleet of streams does not ping at once. */
  nextPingAtMs: number;
  private held: Held[] | null = [];
  private heldBytes = 0;

  constructor(
    readonly id: string,
    readonly userId: string,
    readonly expiresAtMs: number,
    readonly connectedAtMs: number,
    private readonly sink: StreamSink,
    private readonly maxQueuedBytes: number,
    private readonly onClosed: (connection: Connection, reason: CloseReason) => void,
  ) {
    this.nextPingAtMs = connectedAtMs;
  }

  /** A live event for this stream: written now, or held until the replay is out. */
  push(frame: Uint8Array, id: string | undefined): WriteOutcome {
    if (this.state === 'live') return this.write(frame) ? 'written' : 'dropped';
    if (this.state === 'closed' || this.held === null) return 'dropped';
    this.heldBytes += frame.byteLength;
    if (this.heldBytes > this.maxQueuedBytes) {
      this.close('slow_consumer');
      return 'dropped';
    }
    this.held.push({ frame, id });
    return 'held';
  }

  /** Writes within the byte cap; a stream over the cap is closed as `slow_consumer`. */
  write(frame: Uint8Array): boolean {
    if (this.state === 'closed') return false;
    if (this.sink.writableLength + frame.byteLength > this.maxQueuedBytes) {
      this.close('slow_consumer');
      return false;
    }
    this.sink.write(frame);
    return true;
  }

  /** Leaves `pending`: from here on the response is an event stream and refusals are in band. */
  begin(frames: readonly Uint8Array[]): boolean {
    if (this.state !== 'pending') return false;
    this.state = 'replaying';
    return this.writeAll(frames);
  }

  /** Writes several frames in one syscall (the handshake, a replay). */
  writeAll(frames: readonly Uint8Array[]): boolean {
    this.sink.cork();
    try {
      for (const frame of frames) if (!this.write(frame)) return false;
      return true;
    } finally {
      // Everything written while corked leaves in one writev.
      this.sink.uncork();
    }
  }

  /**
   * Ends `replaying`: releases held events the replay did not already carry, in
   * arrival order, then switches to direct writes.
   */
  goLive(alreadySent: ReadonlySet<string>): number {
    const held = this.held ?? [];
    this.held = null;
    this.heldBytes = 0;
    if (this.state === 'closed') return 0;
    const pending = held.filter((h) => h.id === undefined || !alreadySent.has(h.id));
    this.state = 'live';
    const written = pending.length === 0 || this.writeAll(pending.map((h) => h.frame));
    return written ? pending.length : 0;
  }

  /**
   * Closes once. `finalFrame` (replaced, closing) is the last thing written,
   * unless the client is the reason (gone, or not reading), when the socket is
   * simply destroyed. A `pending` stream has sent nothing: the sink is left to
   * the opener, which answers with an HTTP refusal instead.
   */
  close(reason: CloseReason, finalFrame?: Uint8Array): void {
    if (this.state === 'closed') return;
    const wasPending = this.state === 'pending';
    this.state = 'closed';
    this.closedReason = reason;
    this.held = null;
    if (reason === 'slow_consumer' || reason === 'client_closed') this.sink.destroy();
    else if (!wasPending) this.end(finalFrame);
    this.onClosed(this, reason);
  }

  /** A `pending` stream that was refused: forgotten without a word, since the opener answers over HTTP. */
  discard(): void {
    this.state = 'closed';
    this.held = null;
  }

  private end(finalFrame: Uint8Array | undefined): void {
    if (finalFrame !== undefined && this.sink.writableLength + finalFrame.byteLength <= this.maxQueuedBytes) {
      this.sink.end(finalFrame);
    } else {
      this.sink.end();
    }
  }
}
