import type { CloseReason } from '../protocol/stream-terms';

/**
 * What a connection writes to. `http.ServerResponse` satisfies it; unit tests
 * pass a fake. Node's own socket buffer is the per-connection queue: frames are
 * never copied into a second one, only kept from growing past the limits.
 */
export interface StreamSink {
  write(chunk: Uint8Array): boolean;
  end(chunk?: Uint8Array): void;
  destroy(): void;
  cork(): void;
  uncork(): void;
  once(event: 'drain' | 'close', listener: () => void): unknown;
  removeListener(event: 'drain' | 'close', listener: () => void): unknown;
  /** Bytes accepted by `write` but not yet handed to the kernel. */
  readonly writableLength: number;
  /** A write was refused for a full buffer, so `drain` will fire once it empties. */
  readonly writableNeedDrain: boolean;
}

/**
 * `pending`: registered and claiming, nothing written yet (a refusal can still be
 * an HTTP status). `replaying`: headers and replay going out, live events held.
 * `live`: events written as they come.
 */
export type ConnectionState = 'pending' | 'replaying' | 'live' | 'closed';

/** `duplicate`: the replay already carried this id, so it is not written again. */
export type WriteOutcome = 'written' | 'held' | 'dropped' | 'duplicate';

export interface BackpressureLimits {
  /** Unsent bytes a stream may hold for longer than `stallTimeoutMs`. */
  readonly maxQueuedBytes: number;
  /** Unsent bytes past which a stream is cut at once, however briefly. */
  readonly hardQueuedBytes: number;
  readonly stallTimeoutMs: number;
}

interface Held {
  readonly frame: Uint8Array;
  readonly id: string | undefined;
}

/**
 * One open event stream.
 *
 * Until `live` (claim and replay in flight) live events are held, not written:
 * the replay must go out first and in order, and anything the replay already
 * carried is skipped when the held events are released.
 *
 * A slow client is judged over time, not by one burst: a batch publish or a
 * replay can put megabytes in the socket buffer within one tick, before a
 * perfectly healthy reader had a chance to drain any of it. So a stream is cut
 * as `slow_consumer` when its backlog stays above `maxQueuedBytes` for
 * `stallTimeoutMs` (checked by the node's ticker through `stalled`), or at
 * once when it passes `hardQueuedBytes`, which bounds the memory one client can
 * pin. Others never wait for it: writes never block.
 */
export class Connection {
  state: ConnectionState = 'pending';
  closedReason: CloseReason | undefined;
  /** Next heartbeat, spread by the caller so a fleet of streams does not ping at once. */
  nextPingAtMs: number;
  /** When the node ends the stream whatever its token says (`max_age`); never by default. */
  closeAtMs = Number.POSITIVE_INFINITY;
  /** When the backlog was first seen above `maxQueuedBytes`; cleared once it is below. */
  private congestedSinceMs: number | undefined;
  private watchingDrain = false;
  private held: Held[] | null = [];
  private heldBytes = 0;
  /**
   * Ids the replay carried, kept once live: a bus copy of one of them can
   * still arrive late (the publisher's lookup ran before this stream's claim
   * and its send comes after the replay), and a stream never carries an id
   * twice. At most the replay limit of ids, and only on streams that replayed.
   */
  private replayed: ReadonlySet<string> | null = null;

  constructor(
    readonly id: string,
    readonly userId: string,
    /** The client address the per-address cap counts this stream under. */
    readonly address: string,
    readonly expiresAtMs: number,
    readonly connectedAtMs: number,
    private readonly sink: StreamSink,
    private readonly limits: BackpressureLimits,
    private readonly onClosed: (connection: Connection, reason: CloseReason) => void,
  ) {
    this.nextPingAtMs = connectedAtMs;
  }

  /** A live event for this stream: written now, or held until the replay is out. */
  push(frame: Uint8Array, id: string | undefined): WriteOutcome {
    if (this.state === 'live') {
      if (id !== undefined && this.replayed?.has(id) === true) return 'duplicate';
      return this.write(frame) ? 'written' : 'dropped';
    }
    if (this.state === 'closed' || this.held === null) return 'dropped';
    this.heldBytes += frame.byteLength;
    if (this.heldBytes > this.limits.hardQueuedBytes) {
      this.close('slow_consumer');
      return 'dropped';
    }
    this.held.push({ frame, id });
    return 'held';
  }

  /** Writes unless that would take the backlog past the hard limit, which cuts the stream. */
  write(frame: Uint8Array): boolean {
    if (this.state === 'closed') return false;
    if (this.sink.writableLength + frame.byteLength > this.limits.hardQueuedBytes) {
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

  /** Writes several frames in one syscall (the handshake, released live events). */
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
   * Writes a replay at the client's pace: whenever the backlog passes
   * `maxQueuedBytes` it waits for the socket to drain, so a replay of any size
   * goes out without tripping the limits. Resolves false if the stream closed.
   */
  async writePaced(frames: readonly Uint8Array[]): Promise<boolean> {
    let start = 0;
    while (start < frames.length) {
      let end = start;
      this.sink.cork();
      try {
        while (end < frames.length && this.sink.writableLength <= this.limits.maxQueuedBytes) {
          if (!this.write(frames[end]!)) return false;
          end++;
        }
      } finally {
        this.sink.uncork();
      }
      start = end;
      if (start < frames.length && !(await this.nextTurn())) return false;
    }
    return this.state !== 'closed';
  }

  /**
   * Waits until writing may go on: for `drain` when the sink promised one, or
   * else for the next turn of the event loop (a high-water mark above the cap,
   * as on Node 22, may never produce a `drain` for a backlog this small).
   */
  private nextTurn(): Promise<boolean> {
    if (this.sink.writableNeedDrain) return this.drained();
    return new Promise((resolve) => setImmediate(() => resolve(this.state !== 'closed')));
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
    if (alreadySent.size > 0) this.replayed = alreadySent;
    this.state = 'live';
    const written = pending.length === 0 || this.writeAll(pending.map((h) => h.frame));
    return written ? pending.length : 0;
  }

  /**
   * How long the backlog has stayed above `maxQueuedBytes`, sampled by the
   * node's ticker; true once that reaches `stallTimeoutMs`.
   */
  stalled(nowMs: number): boolean {
    if (this.state === 'closed' || this.sink.writableLength <= this.limits.maxQueuedBytes) {
      this.congestedSinceMs = undefined;
      return false;
    }
    if (this.congestedSinceMs === undefined) {
      this.congestedSinceMs = nowMs;
      // A drain means the client caught up, however busy the stream is between
      // samples: the clock starts again only if it falls behind again. One
      // listener at a time: a backlog that dips below the cap without emptying
      // never fires `drain`, and must not leave a listener per episode.
      if (!this.watchingDrain) {
        this.watchingDrain = true;
        this.sink.once('drain', () => {
          this.watchingDrain = false;
          this.congestedSinceMs = undefined;
        });
      }
    }
    return nowMs - this.congestedSinceMs >= this.limits.stallTimeoutMs;
  }

  /**
   * Closes once. `finalFrame` (replaced, closing) is the last thing written,
   * unless the client is the reason (gone, or not reading), when the socket is
   * simply destroyed. A `pending` stream has sent nothing: the sink is left to
   * the opener, which answers with an HTTP refusal instead — except when the
   * client itself overflowed or left, when there is no one to answer.
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

  private drained(): Promise<boolean> {
    return new Promise((resolve) => {
      const onDrain = (): void => {
        this.sink.removeListener('close', onClose);
        resolve(this.state !== 'closed');
      };
      const onClose = (): void => {
        this.sink.removeListener('drain', onDrain);
        resolve(false);
      };
      this.sink.once('drain', onDrain);
      this.sink.once('close', onClose);
    });
  }

  private end(finalFrame: Uint8Array | undefined): void {
    if (finalFrame !== undefined && this.sink.writableLength + finalFrame.byteLength <= this.limits.hardQueuedBytes) {
      this.sink.end(finalFrame);
    } else {
      this.sink.end();
    }
  }
}
