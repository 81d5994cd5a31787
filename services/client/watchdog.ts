import type { ClientEnvironment } from './environment';

/**
 * Fires when nothing has arrived for `factor` heartbeat periods. A link that
 * died silently (a peer gone without a FIN, a proxy that stopped forwarding)
 * never makes `EventSource` report an error: only the missing `ping` shows it.
 */
export class Watchdog {
  private handle: unknown;
  private periodMs: number;

  constructor(
    private readonly timers: Pick<ClientEnvironment, 'setTimeout' | 'clearTimeout'>,
    private readonly onTimeout: () => void,
    heartbeatMs: number,
    private readonly factor = 2.5,
  ) {
    this.periodMs = heartbeatMs;
  }

  get armed(): boolean {
    return this.handle !== undefined;
  }

  /** The server's period, from its `ready`; takes effect at the next `feed()`. */
  setHeartbeat(ms: number): void {
    if (Number.isFinite(ms) && ms > 0) this.periodMs = ms;
  }

  /** Something arrived: the link is alive, restart the count. */
  feed(): void {
    this.stop();
    this.handle = this.timers.setTimeout(() => {
      this.handle = undefined;
      this.onTimeout();
    }, this.periodMs * this.factor);
  }

  stop(): void {
    if (this.handle === undefined) return;
    this.timers.clearTimeout(this.handle);
    this.handle = undefined;
  }
}
