import { systemClock, type Clock } from '../../ports/clock';
import type { Logger } from '../../shared/log';
import type { RedisCommands } from './redis-connection';
import { readEpoch, type Epoch } from './redis-epoch';
import { DEFAULT_KEY_PREFIX, redisKeys } from './redis-keys';

export interface RedisLivenessOptions {
  /** Shared with the adapters: `stop()` leaves it open. */
  readonly redis: RedisCommands;
  readonly log: Logger;
  /** @default 'herald:' */
  readonly keyPrefix?: string;
  /** How often Redis is asked for its epoch. @default 1000 */
  readonly intervalMs?: number;
  /** @default the system clock */
  readonly clock?: Clock;
}

/** Called when Redis was found emptied; the state turns `ok` only once every listener returned. */
export type EmptiedListener = () => void | Promise<void>;

/**
 * Watches one Redis (or the shard of a cluster holding the epoch key) for
 * a process: whether it answers, and whether it lost its data since the
 * last answer. Every `intervalMs` it reads the epoch (redis-epoch.ts), which
 * also makes a new one when it is missing.
 *
 * A failed read makes the state `unreachable` until one succeeds again.
 * An epoch other than the one read before means Redis was emptied: what a
 * process left there (its heartbeat, the claims of its streams, its bus
 * stream) is gone, so the listeners run before the state is `ok` again.
 */
export class RedisLiveness {
  private readonly key: string;
  private readonly intervalMs: number;
  private readonly clock: Clock;
  private readonly listeners: EmptiedListener[] = [];
  private epoch: Epoch | undefined;
  private reachable = false;
  private downSinceMs: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private probing: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly options: RedisLivenessOptions) {
    this.key = redisKeys(options.keyPrefix ?? DEFAULT_KEY_PREFIX).epoch;
    this.intervalMs = options.intervalMs ?? 1_000;
    this.clock = options.clock ?? systemClock;
  }

  /** Reads the epoch once (rejecting, `unavailable`, if Redis does not answer), then goes on watching. */
  async start(): Promise<void> {
    this.epoch = await readEpoch(this.options.redis, this.key, this.clock());
    this.reachable = true;
    this.schedule();
  }

  state(): 'ok' | 'unreachable' {
    return this.reachable ? 'ok' : 'unreachable';
  }

  onEmptied(listener: EmptiedListener): void {
    this.listeners.push(listener);
  }

  /** Stops watching, waiting for a read in flight. Idempotent. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.probing;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.probing = this.probe().finally(() => {
        this.probing = undefined;
        this.schedule();
      });
    }, this.intervalMs);
    // The watch alone must not keep a process alive.
    this.timer.unref();
  }

  private async probe(): Promise<void> {
    const { log } = this.options;
    let epoch: Epoch;
    try {
      epoch = await readEpoch(this.options.redis, this.key, this.clock());
    } catch (error) {
      if (this.reachable) {
        this.downSinceMs = this.clock();
        log.warn('redis.unreachable', { error });
      }
      this.reachable = false;
      return;
    }
    if (this.stopped) return;
    const before = this.epoch;
    this.epoch = epoch;
    if (before !== undefined && before.value !== epoch.value) {
      // Marked down until the listeners have put back what the process had there.
      if (this.reachable) this.downSinceMs = this.clock();
      this.reachable = false;
      log.warn('redis.emptied', { epochStartedAtMs: epoch.startedAtMs, previousEpochStartedAtMs: before.startedAtMs });
      for (const listener of this.listeners) {
        try {
          await listener();
        } catch (error) {
          log.error('redis.emptied_listener_failed', { error });
        }
      }
    }
    if (!this.reachable) log.info('redis.reachable', { downMs: this.clock() - (this.downSinceMs ?? this.clock()) });
    this.reachable = true;
    this.downSinceMs = undefined;
  }
}
