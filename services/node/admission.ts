import type { Clock } from '../ports/clock';
import { HeraldError } from '../protocol/errors';
import { TokenBucketLimiter } from '../adapters/memory/token-bucket';
import type { Config } from './config';
import { drainingRefusal } from './drain';
import type { Hub } from './hub';

/** A place under the connection caps, held from admission until the stream is in the hub or refused. */
export interface Admission {
  /** Idempotent. */
  release(): void;
}

export interface AdmissionDeps {
  /** The open streams, which count against the caps. */
  readonly hub: Pick<Hub, 'size' | 'streamsFrom'>;
  readonly config: Pick<Config, 'maxConnections' | 'maxConnectionsPerAddress' | 'connectRatePerAddress'>;
  readonly clock: Clock;
  readonly draining: () => boolean;
}

/**
 * Refuses a new stream before any work is done for it: draining, full, or
 * too many connects from one address. An admitted stream holds its place
 * under the caps from here (`Admission`) until it is in the hub or refused:
 * authentication is asynchronous (a JWKS fetch, say), and a burst of
 * requests all checked before any of them was added would overshoot the
 * caps by the size of the burst.
 */
export class AdmissionControl {
  private readonly connectLimiter: TokenBucketLimiter;
  /** Streams admitted and not yet in the hub (authenticating): they count against the caps. */
  private admitting = 0;
  private readonly admittingFrom = new Map<string, number>();

  constructor(private readonly deps: AdmissionDeps) {
    this.connectLimiter = new TokenBucketLimiter(deps.config.connectRatePerAddress, deps.clock);
  }

  admit(clientAddress: string): Admission {
    const { hub, config } = this.deps;
    if (this.deps.draining()) throw drainingRefusal();
    if (hub.size + this.admitting >= config.maxConnections) {
      throw new HeraldError('node_full', 'this node holds its maximum of connections', { retryAfterMs: 5000 });
    }
    const fromAddress = this.admittingFrom.get(clientAddress) ?? 0;
    if (hub.streamsFrom(clientAddress) + fromAddress >= config.maxConnectionsPerAddress) {
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
}
