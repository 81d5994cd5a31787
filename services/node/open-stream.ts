import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { ClaimResult } from '../ports/owners';
import type { ReplayResult } from '../ports/history';
import { eventIdFloor, isEventId } from '../protocol/event-id';
import { HeraldError } from '../protocol/errors';
import { frameEvent, frameGap, frameReady, frameReplaced, frameRetry } from '../protocol/sse-frame';
import type { Connection } from './connection';
import type { HeraldNode } from './herald-node';
import { jittered } from './jitter';
import { chunk } from './http-stream-sink';

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
export async function openStream(node: HeraldNode, connection: Connection, res: ServerResponse, socket: Socket, lastEventId: string | undefined): Promise<void> {
  const { config, owners, log } = node.deps;
  node.hub.add(connection);
  const refuse = (error: unknown, release: boolean): never => {
    connection.discard();
    node.hub.remove(connection);
    if (release) void owners.release(connection.userId, connection.id).catch(() => undefined);
    throw error;
  };

  // Before the claim, so that everything located after it sorts after this.
  const startPosition = lastEventId !== undefined && isEventId(lastEventId) ? undefined : eventIdFloor(Math.max(0, node.clock() - START_POSITION_MARGIN_MS));
  let claim: ClaimResult;
  try {
    claim = await owners.claim(node.record(connection), config.tabPolicy === 'single' ? { mode: 'single' } : { mode: 'multi', maxTabs: config.maxTabs });
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
  const aTabWillBeLive = connection.closedReason === 'replaced' || (connection.state === 'pending' && !node.draining);
  for (const displaced of claim.displaced) node.displace(displaced, connection.id, !aTabWillBeLive);
  if (connection.state === 'closed') return settleClosedWhileClaiming(node, connection, res);
  if (node.draining) return refuse(new HeraldError('draining', 'this node is shutting down; reconnect', { retryAfterMs: 1000 }), true);

  const ready = frameReady({ connectionId: connection.id, nodeId: node.nodeId, policy: config.tabPolicy, heartbeatMs: config.heartbeatMs }, startPosition);
  // Headers go out through the response (which then owes the last chunk at
  // `end`); every frame after them is a pre-framed chunk on the socket.
  socket.cork();
  res.writeHead(200, STREAM_HEADERS);
  res.flushHeaders();
  connection.begin([chunk(frameRetry(jittered(config.retryMs, 0.5)) + ready)]);
  socket.uncork();
  node.metrics.connectionsOpened++;
  log.info('connection.opened', { connectionId: connection.id, displaced: claim.displaced.length, resuming: lastEventId !== undefined });

  const sent = await writeReplay(node, connection, lastEventId);
  if (sent === null) return;
  node.metrics.deliveries += connection.goLive(sent);
  node.closeIfDraining(connection);
}

/** Writes `gap` and the replay; returns the ids it carried, or null if the stream ended. */
async function writeReplay(node: HeraldNode, connection: Connection, lastEventId: string | undefined): Promise<Set<string> | null> {
  const sent = new Set<string>();
  if (lastEventId === undefined) return sent;
  if (!isEventId(lastEventId)) {
    // Not an id this system issued: say so, and let the app refetch its state.
    connection.write(chunk(frameGap(lastEventId, 'unknown_position')));
    return sent;
  }
  let replay: ReplayResult;
  try {
    replay = await node.deps.history.since(connection.userId, lastEventId, node.deps.config.replayLimit);
  } catch (error) {
    // The position is kept by the browser: closing (it reconnects after `retry`) loses nothing.
    node.deps.log.warn('history.replay_failed', { connectionId: connection.id, error });
    node.closeWith(connection, 'server_error');
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
  node.metrics.replayed += replay.events.length;
  return sent;
}

/**
 * The stream closed while its claim was in flight. A tab displaced by an even
 * newer one is told so in band, like any replaced tab. Otherwise its record is
 * released (it may have been written after the close released nothing), and a
 * request still waiting (the node began stopping) is answered 503.
 */
function settleClosedWhileClaiming(node: HeraldNode, connection: Connection, res: ServerResponse): void {
  const reason = connection.closedReason;
  if (reason === 'replaced') {
    res.writeHead(200, STREAM_HEADERS);
    res.end(Buffer.from(frameReplaced(connection.id)));
    return;
  }
  void node.deps.owners.release(connection.userId, connection.id).catch(() => undefined);
  if (reason === 'reclaim') {
    // A stream that ends makes even a bare EventSource come back (a refusal would stop it).
    res.writeHead(200, STREAM_HEADERS);
    res.end(Buffer.from(node.closingFrame('reclaim')));
  } else if (reason === 'draining') {
    throw new HeraldError('draining', 'this node is shutting down; reconnect', { retryAfterMs: 1000 });
  }
  // client_closed, slow_consumer: the socket is already gone.
}
