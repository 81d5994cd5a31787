import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Bus, BusMessage } from '../ports/bus';
import type { History } from '../ports/history';
import type { Owners } from '../ports/owners';
import type { RateLimiter } from '../ports/rate-limiter';
import { systemClock, type Clock } from '../ports/clock';
import { MAX_BATCH } from '../protocol/limits';
import type { Logger } from '../shared/log';
import type { Config } from './config';
import { Hub } from './hub';
import { NodeMetrics } from './metrics';
import { createAuthenticator, type Authenticator } from './auth';
import { AdmissionControl, type Admission } from './admission';
import { closeWith } from './closing';
import { Displacement } from './displacement';
import { Drain, EARLY_DRAIN_MARGIN_MS } from './drain';
import { FanOut } from './fan-out';
import { StreamOpener } from './open-stream';
import { StreamTicker, tickerSlots } from './stream-ticker';
import { retryWithBackoff } from './retry';
import type { HealthSource } from './health';

export type { Admission } from './admission';
export { EARLY_DRAIN_MARGIN_MS } from './drain';

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
/**
 * A resync waits for its heartbeat as long as it takes: streams closed before
 * the owners answer again would only have their reconnects refused.
 */
const RESYNC_HEARTBEAT_RETRY = { firstMs: 100, maxMs: 2_000, giveUpAfterMs: Number.POSITIVE_INFINITY };

/**
 * One SSE node: its streams, the bus subscription that feeds them, its
 * heartbeat and the resync. The parts it is made of each do one thing:
 * admission (the caps), the opener (a stream's ordered open and its close),
 * fan-out (live delivery), the ticker (pings, expiry, stalls), displacement
 * (older tabs) and the drain. Transport-agnostic below `open`, which takes
 * the raw response.
 */
export class HeraldNode {
  readonly hub: Hub;
  readonly metrics = new NodeMetrics();
  readonly authenticate: Authenticator;
  readonly clock: Clock;
  readonly nodeTtlMs: number;
  private readonly admission: AdmissionControl;
  private readonly opener: StreamOpener;
  private readonly fanOut: FanOut;
  private readonly ticker: StreamTicker;
  private readonly displacement: Displacement;
  private readonly drainer: Drain;
  private heartbeater: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Until then the owners count this node alive: the expiry of its last heartbeat that was stored. */
  private aliveUntilMs = 0;
  /** The resync under way: requests that come meanwhile join it. */
  private resyncing: Promise<void> | undefined;

  constructor(private readonly deps: NodeDeps) {
    const { config, log, nodeId } = deps;
    const clock = deps.clock ?? systemClock;
    this.clock = clock;
    this.nodeTtlMs = deps.nodeTtlMs ?? NODE_TTL_MS;
    this.authenticate = createAuthenticator(config.auth, config.authCookie);
    const { maxQueuedBytes, stallTimeoutMs, maxDataBytes } = config;
    const limits = { maxQueuedBytes, hardQueuedBytes: hardQueueLimit(maxQueuedBytes, maxDataBytes), stallTimeoutMs };
    const hub = new Hub(tickerSlots(config.heartbeatMs, stallTimeoutMs));
    this.hub = hub;
    const draining = (): boolean => this.draining;
    this.drainer = new Drain({ hub, config, log, nodeId });
    this.admission = new AdmissionControl({ hub, config, clock, draining });
    this.displacement = new Displacement({ hub, bus: deps.bus, config, log, nodeId, stopped: () => this.stopped });
    this.fanOut = new FanOut({ hub, metrics: this.metrics, clock });
    this.ticker = new StreamTicker({ hub, config, clock, log });
    this.opener = new StreamOpener({
      hub,
      owners: deps.owners,
      history: deps.history,
      config,
      limits,
      metrics: this.metrics,
      log,
      clock,
      nodeId,
      displace: (record, byConnectionId, reclaim) => this.displacement.displace(record, byConnectionId, reclaim),
      draining,
    });
  }

  get nodeId(): string {
    return this.deps.nodeId;
  }

  get draining(): boolean {
    return this.drainer.draining;
  }

  get config(): Config {
    return this.deps.config;
  }

  get log(): Logger {
    return this.deps.log;
  }

  /** What `/healthz` asks whether the node can deliver; absent, it always can. */
  get health(): HealthSource | undefined {
    return this.deps.health;
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
    this.ticker.start();
    this.heartbeater = setInterval(() => void this.heartbeat(), Math.floor(this.nodeTtlMs / 3));
    this.deps.log.info('node.started', { nodeId: this.nodeId, mode: this.deps.config.mode, policy: this.deps.config.tabPolicy });
  }

  /** Refuses a new stream before any work is done for it, or holds its place under the caps (see `AdmissionControl`). */
  admit(clientAddress: string): Admission {
    return this.admission.admit(clientAddress);
  }

  /** Opens an authenticated stream on a response (see `StreamOpener`). Puts it in the hub before it returns. */
  open(res: ServerResponse, socket: Socket, address: string, userId: string, expiresAtMs: number, lastEventId: string | undefined): Promise<void> {
    return this.opener.open(res, socket, address, userId, expiresAtMs, lastEventId);
  }

  /**
   * Starts the drain: health turns 503, new streams are refused, and open ones
   * are closed at random instants spread over the drain window (the configured
   * one unless a shorter one is given), each with a jittered `retry:`, so their
   * reconnects reach the other nodes as a trickle. A second call joins the first.
   */
  drain(windowMs?: number): Promise<void> {
    return this.drainer.start(windowMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.ticker.stop();
    clearInterval(this.heartbeater);
    for (const connection of this.hub.snapshot()) closeWith(connection, 'draining', this.deps.config.retryMs);
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
    for (const connection of streams) closeWith(connection, 'resync', this.deps.config.retryMs);
  }

  private onBusMessage(message: BusMessage): Promise<void> {
    this.metrics.busMessages++;
    switch (message.kind) {
      case 'deliver':
        // In the order given: a batch's events for one user arrive in one message.
        for (const event of message.events) this.fanOut.deliver(event);
        break;
      case 'replace':
        this.displacement.replaceLocal(message.userId, message.connectionId, message.byConnectionId, message.reclaim === true);
        break;
      case 'drain':
        this.deps.log.info('node.stop_requested', { source: 'bus' });
        // Leave room for the message's own trip and the ALB's last seconds.
        void this.drain(this.deps.config.drainMs - EARLY_DRAIN_MARGIN_MS);
        break;
    }
    return Promise.resolve();
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
