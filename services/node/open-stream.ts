import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Clock } from '../ports/clock';
import type { History, ReplayResult } from '../ports/history';
import type { ClaimPolicy, ClaimResult, ConnectionRecord, Owners } from '../ports/owners';
import { eventIdFloor, isEventId } from '../protocol/event-id';
import { HeraldError } from '../protocol/errors';
import { frameEvent, frameGap, frameReady, frameReplaced, frameRetry } from '../protocol/sse-frame';
import type { CloseReason } from '../protocol/stream-terms';
import type { Logger } from '../shared/log';
import { closeWith, closingFrame } from './closing';
import type { Config } from './config';
import { Connection, type BackpressureLimits, type StreamSink } from './connection';
import { ConnectionIds } from './connection-id';
import { drainingRefusal } from './drain';
import { HttpStreamSink, chunk } from './http-stream-sink';
import type { Hub } from './hub';
import { jittered } from './jitter';
import type { NodeMetrics } from './metrics';

/**
 * How far before its claim a stream without a position starts (the id its
 * `ready` carries). An event whose id was minted a little before the claim
 * (the publish still in flight, another publisher's clock a little behind) may
 * still have been located after it, so sent live; should the stream be cut
 * before it was written, the reconnect from this position replays it. The cost
 * is at most this much of earlier history replayed on such a reconnect.
 */
export const START_POSITION_MARGIN_MS = 10_000;

/**
 * Response headers of a stream. `no-transform` keeps proxies from compressing
 * or buffering it; `X-Accel-Buffering: no` does the same for nginx.
 */
export const STREAM_HEADERS = {
  'Content-Type': 'text/event-stream; charset=utf-8',
  'Cache-Control': 'no-cache, no-transform',
  'X-Accel-Buffering': 'no',
} as const;

/** What the opener does with the response itself: headers, and the answer of a stream that ends before it began. */
export interface StreamResponse {
  writeHead(statusCode: number, headers: typeof STREAM_HEADERS): unknown;
  flushHeaders(): void;
  end(data: Uint8Array): unknown;
}

/** The socket under the response: corked so that headers and the first frames leave together. */
export interface Corkable {
  cork(): void;
  uncork(): void;
}

export interface StreamOpenerDeps {
  readonly hub: Hub;
  readonly owners: Owners;
  readonly history: History;
  readonly config: Pick<Config, 'tabPolicy' | 'maxTabs' | 'heartbeatMs' | 'retryMs' | 'replayLimit' | 'maxStreamMs'>;
  readonly limits: BackpressureLimits;
  readonly metrics: NodeMetrics;
  readonly log: Logger;
  readonly clock: Clock;
  readonly nodeId: string;
  /** Closes an older tab the claim displaced, here or on its node (`Displacement.displace`). */
  readonly displace: (record: ConnectionRecord, byConnectionId: string, reclaim: boolean) => void;
  readonly draining: () => boolean;
}

/** The stored record of a stream of this node, as its claim writes it. */
export function connectionRecord(connection: Connection, nodeId: string): ConnectionRecord {
  return {
    userId: connection.userId,
    connectionId: connection.id,
    nodeId,
    connectedAtMs: connection.connectedAtMs,
    expiresAtMs: connection.expiresAtMs,
  };
}

/**
 * A stream's life on this node: made for a response, opened in order (see
 * `openStream`), and, once closed, out of the hub and its claim released.
 */
export class StreamOpener {
  private readonly claimPolicy: ClaimPolicy;
  private readonly ids = new ConnectionIds();

  constructor(private readonly deps: StreamOpenerDeps) {
    const { tabPolicy, maxTabs } = deps.config;
    this.claimPolicy = tabPolicy === 'single' ? { mode: 'single' } : { mode: 'multi', maxTabs };
  }

  /** Makes the stream of a response and opens it. Puts it in the hub before it returns. */
  open(res: ServerResponse, socket: Socket, address: string, userId: string, expiresAtMs: number, lastEventId: string | undefined): Promise<void> {
    const connection = this.connection(new HttpStreamSink(res, socket), address, userId, expiresAtMs);
    res.on('close', () => connection.close('client_closed'));
    return this.openStream(connection, res, socket, lastEventId);
  }

  /** A new stream, pending, writing to `sink`. */
  connection(sink: StreamSink, address: string, userId: string, expiresAtMs: number): Connection {
    const { config, limits, clock } = this.deps;
    const connection = new Connection(this.ids.next(), userId, address, expiresAtMs, clock(), sink, limits, this.onClosed);
    // Spread first pings over the second half of a period: a burst of connects does not
    // ping in lockstep, and a stream just opened (its `ready` just written) is not pinged at once.
    connection.nextPingAtMs = connection.connectedAtMs + (0.5 + Math.random() / 2) * config.heartbeatMs;
    const { maxStreamMs } = config;
    // Over the cap's last tenth: streams opened together (a drained node's, say) do not all come back together.
    if (maxStreamMs > 0) connection.closeAtMs = connection.connectedAtMs + maxStreamMs * (1 - Math.random() * 0.1);
    return connection;
  }

  /**
   * Opens a stream in the order docs/architecture.md ("The delivery-ordering rule") requires:
   *
   * 1. register in the hub, holding live events;
   * 2. claim ownership (the single-tab policy displaces older tabs here);
   * 3. write headers, `retry:` and `ready` (with a start position when the stream has none);
   * 4. read and write the replay after `lastEventId`;
   * 5. release held live events the replay did not carry, and go live.
   *
   * Claim (2) before replay (4) is half of the no-loss rule; the publisher's
   * "history before lookup" is the other half (see services/publisher/publish.ts).
   * Until step 3 a failure is an HTTP refusal (thrown); after it, it is in band.
   */
  async openStream(connection: Connection, res: StreamResponse, socket: Corkable, lastEventId: string | undefined): Promise<void> {
    const { hub, owners, config, log, metrics, nodeId } = this.deps;
    hub.add(connection);
    const refuse = (error: unknown, release: boolean): never => {
      connection.discard();
      hub.remove(connection);
      if (release) void owners.release(connection.userId, connection.id).catch(() => undefined);
      throw error;
    };

    // Before the claim, so that everything located after it sorts after this.
    const startPosition = lastEventId !== undefined && isEventId(lastEventId) ? undefined : eventIdFloor(Math.max(0, this.deps.clock() - START_POSITION_MARGIN_MS));
    let claim: ClaimResult;
    try {
      claim = await owners.claim(connectionRecord(connection, nodeId), this.claimPolicy);
    } catch (error) {
      // The write may have landed before the fault surfaced: release is a no-op otherwise.
      return refuse(error, true);
    }
    if (!claim.ok) {
      return refuse(new HeraldError('too_many_tabs', `this user already has ${claim.active} open streams`, { retryAfterMs: 5000 }), false);
    }
    // The claim took the older tabs' places whatever happens next, so they hear of
    // it now: `replaced` when a tab of this user will be live (this one, or an even
    // newer one that displaced it meanwhile, wherever that is), else `reclaim`, or
    // they would stay open with no record and get no unicast until their token expires.
    const aTabWillBeLive = connection.closedReason === 'replaced' || (connection.state === 'pending' && !this.deps.draining());
    for (const displaced of claim.displaced) this.deps.displace(displaced, connection.id, !aTabWillBeLive);
    if (connection.state === 'closed') return this.settleClosedWhileClaiming(connection, res);
    if (this.deps.draining()) return refuse(drainingRefusal(), true);

    const ready = frameReady({ connectionId: connection.id, nodeId, policy: config.tabPolicy, heartbeatMs: config.heartbeatMs }, startPosition);
    // Headers go out through the response (which then owes the last chunk at
    // `end`); every frame after them is a pre-framed chunk on the socket.
    socket.cork();
    res.writeHead(200, STREAM_HEADERS);
    res.flushHeaders();
    connection.begin([chunk(frameRetry(jittered(config.retryMs, 0.5)) + ready)]);
    socket.uncork();
    metrics.connectionsOpened++;
    log.info('connection.opened', { connectionId: connection.id, displaced: claim.displaced.length, resuming: lastEventId !== undefined });

    const sent = await this.writeReplay(connection, lastEventId);
    if (sent === null) return;
    metrics.deliveries += connection.goLive(sent);
    // A drain that began while this stream was opening skipped it; it closes as soon as it is live.
    if (this.deps.draining()) closeWith(connection, 'draining', config.retryMs);
  }

  /** Out of the hub, counted, and its claim released: however the stream ended. */
  private readonly onClosed = (connection: Connection, reason: CloseReason): void => {
    const { hub, metrics, log, owners } = this.deps;
    hub.remove(connection);
    metrics.closed(reason);
    log.info('connection.closed', { connectionId: connection.id, reason, openMs: this.deps.clock() - connection.connectedAtMs });
    // A replaced tab's record was already overwritten by the claim that displaced it.
    if (reason === 'replaced') return;
    owners.release(connection.userId, connection.id).catch((error: unknown) => {
      log.warn('owners.release_failed', { connectionId: connection.id, error });
    });
  };

  /** Writes `gap` and the replay; returns the ids it carried, or null if the stream ended. */
  private async writeReplay(connection: Connection, lastEventId: string | undefined): Promise<Set<string> | null> {
    const sent = new Set<string>();
    if (lastEventId === undefined) return sent;
    if (!isEventId(lastEventId)) {
      // Not an id this system issued: say so, and let the app refetch its state.
      connection.write(chunk(frameGap(lastEventId, 'unknown_position')));
      return sent;
    }
    const { history, config, log, metrics } = this.deps;
    let replay: ReplayResult;
    try {
      replay = await history.since(connection.userId, lastEventId, config.replayLimit);
    } catch (error) {
      // The position is kept by the browser: closing (it reconnects after `retry`) loses nothing.
      log.warn('history.replay_failed', { connectionId: connection.id, error });
      closeWith(connection, 'server_error', config.retryMs);
      return null;
    }
    if (connection.state === 'closed') return null;
    const frames: Buffer[] = [];
    if (replay.gap !== null) frames.push(chunk(frameGap(lastEventId, replay.gap)));
    for (const event of replay.events) {
      frames.push(chunk(frameEvent(event)));
      sent.add(event.id);
    }
    if (frames.length > 0 && !(await connection.writePaced(frames))) return null;
    metrics.replayed += replay.events.length;
    return sent;
  }

  /**
   * The stream closed while its claim was in flight. A tab displaced by an even
   * newer one is told so in band, like any replaced tab. Otherwise its record is
   * released (it may have been written after the close released nothing), and a
   * request still waiting (the node began stopping) is answered 503.
   */
  private settleClosedWhileClaiming(connection: Connection, res: StreamResponse): void {
    const reason = connection.closedReason;
    if (reason === 'replaced') {
      res.writeHead(200, STREAM_HEADERS);
      res.end(Buffer.from(frameReplaced(connection.id)));
      return;
    }
    void this.deps.owners.release(connection.userId, connection.id).catch(() => undefined);
    if (reason === 'reclaim') {
      // A stream that ends makes even a bare EventSource come back (a refusal would stop it).
      res.writeHead(200, STREAM_HEADERS);
      res.end(Buffer.from(closingFrame('reclaim', this.deps.config.retryMs)));
    } else if (reason === 'draining') {
      throw drainingRefusal();
    }
    // client_closed, slow_consumer: the socket is already gone.
  }
}
