import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Bus, BusMessage } from '../ports/bus';
import type { History } from '../ports/history';
import type { ConnectionRecord, Owners } from '../ports/owners';
import type { RateLimiter } from '../ports/rate-limiter';
import { systemClock, type Clock } from '../ports/clock';
import type { HeraldEvent } from '../protocol/envelope';
import { HeraldError } from '../protocol/errors';
import { MAX_BATCH } from '../protocol/limits';
import { PING_FRAME, frameClosing, frameEvent, frameReplaced } from '../protocol/sse-frame';
import type { CloseReason } from '../protocol/stream-terms';
import { TokenBucketLimiter } from '../adapters/memory/token-bucket';
import type { Logger } from '../shared/log';
import type { Config } from './config';
import { Connection, type BackpressureLimits } from './connection';
import { Hub } from './hub';
import { NodeMetrics } from './metrics';
import { createAuthenticator, type Authenticator } from './auth';
import { openStream } from './open-stream';
import { jittered } from './jitter';
import { retryWithBackoff } from './retry';
import { HttpStreamSink, chunk } from './http-stream-sink';
import type { HealthSource } from './health';

/** Why the server itself ends a stream (not the client leaving, nor a newer tab taking over). */
export type ServerCloseReason = Exclude<CloseReason, 'replaced' | 'client_closed' | 'slow_consumer'>;

export interface NodeDeps {
  readonly config: Config;
  readonly bus: Bus;
  readonly owners: Owners;
  readonly history: History;
  readonly publishLimiter: RateLimiter;
  readonly log: Logger;
  readonly nodeId: string;
  readonly clock?: Clock;
  /** How long this node counts as alive after each heartbeat; a crashed node's streams lapse after it. */
  readonly nodeTtlMs?: number;
  /** Whether the node can reach what it delivers through, for `/healthz`; absent, it always can. */
  readonly health?: HealthSource;
}

const PING = chunk(PING_FRAME);
/**
 * A backlog this many times `maxQueuedBytes` cuts a stream at once: with the
 * default 1 MiB that is 8 MiB. It is raised when needed to hold one full batch
 * of maximum-size events, so a single legitimate publish never trips it.
 */
export const HARD_QUEUE_FACTOR = 8;
/** An event's bytes on the wire beyond its data: id, event name, field names, chunk size. */
const FRAME_OVERHEAD_BYTES = 256;

/** The backlog that cuts a stream at once: 8× the cap, and never less than one full batch of maximum-size events. */
export function hardQueueLimit(maxQueuedBytes: number, maxDataBytes: number): number {
  return Math.max(HARD_QUEUE_FACTOR * maxQueuedBytes, MAX_BATCH * (maxDataBytes + FRAME_OVERHEAD_BYTES));
}
/**
 * A node counts as alive this long after each heartbeat (sent every third of
 * it): also how long a crashed node's users may still look online.
 */
const NODE_TTL_MS = 15_000;
/** An early drain (the task is being deregistered) ends this much before the ALB's deregistration delay does. */
export const EARLY_DRAIN_MARGIN_MS = 7_000;
/** How soon a tab told to `reclaim` its place reconnects: at once, give or take. */
const RECLAIM_RETRY_MS = 200;
/** Telling another node's tab it was replaced outlasts a bus outage of a few minutes. */
const REPLACE_RETRY = { firstMs: 250, maxMs: 10_000, giveUpAfterMs: 5 * 60_000 };
/**
 * A resync waits for its heartbeat as long as it takes: streams closed before
 * the owners answer again would only have their reconnects refused.
 */
const RESYNC_HEARTBEAT_RETRY = { firstMs: 100, maxMs: 2_000, giveUpAfterMs: Number.POSITIVE_INFINITY };
/**
 * One timer for the whole node, not one per stream. Each tick visits one slot
 * of the hub, so each stream is checked (heartbeat due, token expired, stalled)
 * once per check period, and a tick costs a share of the streams: walking all
 * 10,000 of them every 100 ms took ~5 ms a tick, the p99 of every delivery.
 */
const TICK_MS = 50;
/** How often each stream is checked: at most a second, and well inside the heartbeat and the stall timeout. */
export function checkPeriodMs(heartbeatMs: number, stallTimeoutMs: number): number {
  return Math.min(1000, Math.max(TICK_MS, Math.floor(Math.min(heartbeatMs, stallTimeoutMs) / 4)));
}

/**
 * One SSE node: its streams, the bus subscription that feeds them, heartbeats,
 * token expiry and the drain. Transport-agnostic below `openStream`, which
 * takes the raw response.
 */
/** A place under the connection caps, held from admission until the stream is in the hub or refused. */
export interface Admission {
  /** Idempotent. */
  release(): void;
}

export class HeraldNode {
  readonly hub: Hub;
  readonly metrics = new NodeMetrics();
  readonly authenticate: Authenticator;
  readonly clock: Clock;
  readonly nodeTtlMs: number;
  private readonly connectLimiter: TokenBucketLimiter;
  /** Streams admitted and not yet in the hub (authenticating): they count against the caps. */
  private admitting = 0;
  private readonly admittingFrom = new Map<string, number>();
  private readonly limits: BackpressureLimits;
  private ticker: NodeJS.Timeout | undefined;
  private heartbeater: NodeJS.Timeout | undefined;
  private drainState: Promise<void> | undefined;
  private stopped = false;
  /** Until then the owners count this node alive: the expiry of its last heartbeat that was stored. */
  private aliveUntilMs = 0;
  /** The resync under way: requests that come meanwhile join it. */
  private resyncing: Promise<void> | undefined;

  constructor(readonly deps: NodeDeps) {
    this.clock = deps.clock ?? systemClock;
    this.nodeTtlMs = deps.nodeTtlMs ?? NODE_TTL_MS;
    this.authenticate = createAuthenticator(deps.config.auth, deps.config.authCookie);
    this.connectLimiter = new TokenBucketLimiter(deps.config.connectRatePerAddress, this.clock);
    const { maxQueuedBytes, stallTimeoutMs, maxDataBytes } = deps.config;
    this.limits = { maxQueuedBytes, hardQueuedBytes: hardQueueLimit(maxQueuedBytes, maxDataBytes), stallTimeoutMs };
    this.hub = new Hub(Math.round(checkPeriodMs(deps.config.heartbeatMs, stallTimeoutMs) / TICK_MS));
  }

  get nodeId(): string {
    return this.deps.nodeId;
  }

  get draining(): boolean {
    return this.drainState !== undefined;
  }

  async start(): Promise<void> {
    // Alive before anything is claimed: records of a node without a heartbeat count as gone.
    const aliveUntilMs = this.clock() + this.nodeTtlMs;
    await this.deps.owners.heartbeat(this.nodeId, aliveUntilMs);
    this.aliveUntilMs = aliveUntilMs;
    await this.deps.bus.start(
      this.nodeId,
      (message) => this.onBusMessage(message),
      () => this.resumeAll(),
    );
    this.ticker = setInterval(() => this.tick(), TICK_MS);
    this.heartbeater = setInterval(() => void this.heartbeat(), Math.floor(this.nodeTtlMs / 3));
    this.deps.log.info('node.started', { nodeId: this.nodeId, mode: this.deps.config.mode, policy: this.deps.config.tabPolicy });
  }

  /**
   * Refuses a new stream before any work is done for it: draining, full, or
   * too many connects from one address. An admitted stream holds its place
   * under the caps from here (`Admission`) until it is in the hub or refused:
   * authentication is asynchronous (a JWKS fetch, say), and a burst of
   * requests all checked before any of them was added would overshoot the
   * caps by the size of the burst.
   */
  admit(clientAddress: string): Admission {
    if (this.draining) throw new HeraldError('draining', 'this node is shutting down; reconnect', { retryAfterMs: 1000 });
    if (this.hub.size + this.admitting >= this.deps.config.maxConnections) {
      throw new HeraldError('node_full', 'this node holds its maximum of connections', { retryAfterMs: 5000 });
    }
    const fromAddress = this.admittingFrom.get(clientAddress) ?? 0;
    if (this.hub.streamsFrom(clientAddress) + fromAddress >= this.deps.config.maxConnectionsPerAddress) {
      throw new HeraldError('too_many_streams', 'too many open streams from this address', { retryAfterMs: 5000 });
    }
    const decision = this.connectLimiter.takeNow(clientAddress);
    if (!decision.allowed) {
      throw new HeraldError('too_many_connects', 'too many new connections from this address', { retryAfterMs: decision.retryAfterMs });
    }
    this.admitting++;
    this.admittingFrom.set(clientAddress, fromAddress + 1);
    let held = true;
    return {
      release: () => {
        if (!held) return;
        held = false;
        this.admitting--;
        const left = (this.admittingFrom.get(clientAddress) ?? 1) - 1;
        if (left === 0) this.admittingFrom.delete(clientAddress);
        else this.admittingFrom.set(clientAddress, left);
      },
    };
  }

  open(res: ServerResponse, socket: Socket, address: string, userId: string, expiresAtMs: number, lastEventId: string | undefined): Promise<void> {
    const connection = new Connection(
      randomBytes(9).toString('base64url'),
      userId,
      address,
      expiresAtMs,
      this.clock(),
      new HttpStreamSink(res, socket),
      this.limits,
      (c, reason) => this.onClosed(c, reason),
    );
    // Spread first pings over one period so a burst of connects does not ping in lockstep.
    connection.nextPingAtMs = connection.connectedAtMs + Math.random() * this.deps.config.heartbeatMs;
    const { maxStreamMs } = this.deps.config;
    // Over the cap's last tenth: streams opened together (a drained node's, say) do not all come back together.
    if (maxStreamMs > 0) connection.closeAtMs = connection.connectedAtMs + maxStreamMs * (1 - Math.random() * 0.1);
    res.on('close', () => connection.close('client_closed'));
    return openStream(this, connection, res, socket, lastEventId);
  }

  record(connection: Connection): ConnectionRecord {
    return {
      userId: connection.userId,
      connectionId: connection.id,
      nodeId: this.nodeId,
      connectedAtMs: connection.connectedAtMs,
      expiresAtMs: connection.expiresAtMs,
    };
  }

  /**
   * Closes another tab of the same user, on this node or, through the bus, on
   * the node that holds it: with `replaced`, or with `closing` reason `reclaim`
   * (reconnect) when the tab that displaced it will not be live after all.
   */
  displace(record: ConnectionRecord, byConnectionId: string, reclaim = false): void {
    if (record.nodeId === this.nodeId) {
      this.replaceLocal(record.userId, record.connectionId, byConnectionId, reclaim);
      return;
    }
    const message: BusMessage = {
      kind: 'replace',
      userId: record.userId,
      connectionId: record.connectionId,
      byConnectionId,
      ...(reclaim ? { reclaim: true as const } : {}),
    };
    const fields = { connectionId: record.connectionId, nodeId: record.nodeId };
    // Retried through a bus outage: an old tab that never hears `replaced` keeps its
    // stream (and broadcasts) until its token expires, while its unicasts go here.
    const retry = { ...REPLACE_RETRY, stopped: () => this.stopped };
    retryWithBackoff(() => this.deps.bus.send(message, { node: record.nodeId }), retry, (error, attempt) => {
      this.deps.log.warn('connection.replace_retrying', { ...fields, attempt, error });
    }).catch((error: unknown) => {
      this.deps.log.error('connection.replace_failed', { ...fields, error });
    });
  }

  /**
   * Starts the drain: health turns 503, new streams are refused, and open ones
   * are closed at random instants spread over the drain window (the configured
   * one unless a shorter one is given), each with a jittered `retry:`, so their
   * reconnects reach the other nodes as a trickle. A second call joins the first.
   */
  drain(windowMs: number = this.deps.config.drainMs): Promise<void> {
    this.drainState ??= this.runDrain(Math.max(0, Math.min(windowMs, this.deps.config.drainMs)));
    return this.drainState;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.ticker);
    clearInterval(this.heartbeater);
    for (const connection of this.hub.snapshot()) this.closeWith(connection, 'draining');
    await this.deps.bus.close();
    // Gone at once, rather than when the last heartbeat lapses.
    await this.deps.owners.heartbeat(this.nodeId, 0).catch((error: unknown) => {
      this.deps.log.warn('owners.heartbeat_failed', { error });
    });
    this.deps.log.info('node.stopped', { nodeId: this.nodeId });
  }

  /**
   * The bus may have dropped messages for this node (see MissedHandler), or
   * the owners lost or lapsed its records: every stream is closed with a short
   * jittered `retry:` and reconnects from its position, and the replay brings
   * what it missed. Streams still opening read their replay after this, so
   * they need nothing. Requests made while one runs join it.
   */
  private resumeAll(): void {
    if (this.stopped) return;
    this.resyncing ??= this.resync().finally(() => {
      this.resyncing = undefined;
    });
  }

  private async resync(): Promise<void> {
    // Heartbeat first: a store that came back empty lost it, and a stream that
    // reconnects and claims meanwhile would look offline to every publisher.
    // And only once it is stored: what reported the loss (a bus reader on a
    // connection of its own) may be back before the owners are.
    const retry = { ...RESYNC_HEARTBEAT_RETRY, stopped: () => this.stopped };
    // Never after stop(): its zero heartbeat must stay the last word.
    const store = (): Promise<void> => (this.stopped ? Promise.reject(new Error('the node stopped')) : this.storeHeartbeat());
    const stored = await retryWithBackoff(store, retry, (error, attempt) => {
      this.deps.log.warn('node.resync_waiting', { nodeId: this.nodeId, attempt, error });
    }).then(
      () => true,
      () => false,
    );
    if (!stored) return;
    const streams = this.hub.snapshot().filter((c) => c.state !== 'pending');
    this.deps.log.warn('node.resuming_streams', { nodeId: this.nodeId, streams: streams.length });
    for (const connection of streams) this.closeWith(connection, 'resync');
  }

  /** A drain that began while this stream was opening skipped it; it closes as soon as it is live. */
  closeIfDraining(connection: Connection): void {
    if (this.draining) this.closeWith(connection, 'draining');
  }

  closeWith(connection: Connection, reason: ServerCloseReason): void {
    connection.close(reason, chunk(this.closingFrame(reason)));
  }

  /** The last frame of a stream the server ends: `closing`, after a jittered `retry:`. */
  closingFrame(reason: ServerCloseReason): string {
    // A reclaiming tab should come back at once; a drained fleet spread out.
    const { retryMs } = this.deps.config;
    const ms = reason === 'draining' ? jittered(retryMs, 1) : reason === 'reclaim' ? jittered(RECLAIM_RETRY_MS, 0.5) : jittered(retryMs, 0.5);
    return frameClosing(reason, ms);
  }

  private async runDrain(windowMs: number): Promise<void> {
    const connections = this.hub.snapshot();
    this.deps.log.info('node.draining', { nodeId: this.nodeId, connections: connections.length, windowMs });
    const closes = connections.map(
      (connection) =>
        new Promise<void>((resolve) => {
          setTimeout(() => {
            this.closeWith(connection, 'draining');
            resolve();
          }, Math.random() * windowMs);
        }),
    );
    await Promise.all(closes);
    // Streams that were still opening when the drain began close as they go live (see openStream).
  }

  private onBusMessage(message: BusMessage): Promise<void> {
    this.metrics.busMessages++;
    switch (message.kind) {
      case 'deliver':
        // In the order given: a batch's events for one user arrive in one message.
        for (const event of message.events) this.deliver(event);
        break;
      case 'replace':
        this.replaceLocal(message.userId, message.connectionId, message.byConnectionId, message.reclaim === true);
        break;
      case 'drain':
        this.deps.log.info('node.stop_requested', { source: 'bus' });
        // Leave room for the message's own trip and the ALB's last seconds.
        void this.drain(this.deps.config.drainMs - EARLY_DRAIN_MARGIN_MS);
        break;
    }
    return Promise.resolve();
  }

  /** Frames the event once and hands the same bytes to every recipient on this node. */
  private deliver(event: HeraldEvent): void {
    const frame = chunk(frameEvent(event));
    let written = 0;
    let dropped = 0;
    const push = (connection: Connection): void => {
      const outcome = connection.push(frame, event.id);
      if (outcome === 'written') written++;
      else if (outcome === 'dropped') dropped++;
    };
    if ('all' in event.to) {
      this.hub.forEach(push);
    } else {
      for (const userId of event.to.users) {
        const list = this.hub.of(userId);
        // Backwards: a push that cuts a slow client removes it from this very list.
        if (list) for (let i = list.length - 1; i >= 0; i--) push(list[i]!);
      }
    }
    this.metrics.deliveries += written;
    this.metrics.drops.slow_consumer += dropped;
    if (written > 0) this.metrics.publishToWrite.observe(Math.max(0, this.clock() - event.publishedAtMs) / 1000);
  }

  private replaceLocal(userId: string, connectionId: string, byConnectionId: string, reclaim: boolean): void {
    const connection = this.hub.find(userId, connectionId);
    if (!connection) return;
    if (reclaim) {
      this.deps.log.info('connection.reclaim', { connectionId, byConnectionId });
      this.closeWith(connection, 'reclaim');
      return;
    }
    this.deps.log.info('connection.replaced', { connectionId, byConnectionId });
    connection.close('replaced', chunk(frameReplaced(connection.id)));
  }

  private onClosed(connection: Connection, reason: CloseReason): void {
    this.hub.remove(connection);
    this.metrics.closed(reason);
    this.deps.log.info('connection.closed', { connectionId: connection.id, reason, openMs: this.clock() - connection.connectedAtMs });
    // A replaced tab's record was already overwritten by the claim that displaced it.
    if (reason === 'replaced') return;
    this.deps.owners.release(connection.userId, connection.id).catch((error: unknown) => {
      this.deps.log.warn('owners.release_failed', { connectionId: connection.id, error });
    });
  }

  private tick(): void {
    const now = this.clock();
    const { heartbeatMs } = this.deps.config;
    this.hub.visitNextSlot((connection) => {
      if (connection.state === 'pending') return;
      if (connection.stalled(now)) {
        this.deps.log.info('connection.stalled', { connectionId: connection.id, stallTimeoutMs: this.limits.stallTimeoutMs });
        connection.close('slow_consumer');
      } else if (connection.state !== 'live') {
        return;
      } else if (connection.expiresAtMs <= now) {
        this.closeWith(connection, 'token_expired');
      } else if (connection.closeAtMs <= now) {
        this.closeWith(connection, 'max_age');
      } else if (connection.nextPingAtMs <= now) {
        connection.write(PING);
        connection.nextPingAtMs = Math.max(connection.nextPingAtMs + heartbeatMs, now + heartbeatMs / 2);
      }
    });
  }

  private async heartbeat(): Promise<void> {
    try {
      await this.storeHeartbeat();
    } catch (error) {
      this.deps.log.warn('owners.heartbeat_failed', { nodeId: this.nodeId, error });
    }
  }

  /** Stores a heartbeat, rejecting as the owners do; one stored after the last ran out starts a resync. */
  private async storeHeartbeat(): Promise<void> {
    const aliveUntilMs = this.clock() + this.nodeTtlMs;
    await this.deps.owners.heartbeat(this.nodeId, aliveUntilMs);
    // The previous heartbeat ran out before this one was stored: meanwhile this node's
    // users counted as offline, so publishes went to history only, never to their streams.
    const lapsedForMs = this.clock() - this.aliveUntilMs;
    this.aliveUntilMs = Math.max(this.aliveUntilMs, aliveUntilMs);
    if (lapsedForMs > 0 && !this.stopped) {
      this.deps.log.warn('node.heartbeat_lapsed', { nodeId: this.nodeId, lapsedForMs });
      this.resumeAll();
    }
  }

}
