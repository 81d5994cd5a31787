import type { Clock } from '../ports/clock';
import type { HeraldEvent } from '../protocol/envelope';
import { frameEvent } from '../protocol/sse-frame';
import type { Connection } from './connection';
import { chunk } from './http-stream-sink';
import type { Hub } from './hub';
import type { NodeMetrics } from './metrics';

export interface FanOutDeps {
  readonly hub: Pick<Hub, 'forEach' | 'of'>;
  readonly metrics: NodeMetrics;
  readonly clock: Clock;
}

const NO_FRAME = new Uint8Array(0);

/**
 * Live delivery on this node: frames each event once and hands the same bytes
 * to every recipient's stream (held there while it replays), counting what
 * was written and what was dropped with a stream cut for not reading.
 */
export class FanOut {
  // One delivery's frame and counts live here rather than in a closure made
  // per event: at thousands of deliveries a second, the frame is all a
  // delivery allocates. Nothing a push does (a cut stream's close handler
  // included) delivers again, so one delivery at a time uses them.
  private frame: Uint8Array = NO_FRAME;
  private eventId = '';
  private written = 0;
  private dropped = 0;
  private readonly push = (connection: Connection): void => {
    const outcome = connection.push(this.frame, this.eventId);
    if (outcome === 'written') this.written++;
    else if (outcome === 'dropped') this.dropped++;
  };

  constructor(private readonly deps: FanOutDeps) {}

  deliver(event: HeraldEvent): void {
    const { hub, metrics } = this.deps;
    this.frame = chunk(frameEvent(event));
    this.eventId = event.id;
    this.written = 0;
    this.dropped = 0;
    if ('all' in event.to) {
      hub.forEach(this.push);
    } else {
      for (const userId of event.to.users) {
        const list = hub.of(userId);
        // Backwards: a push that cuts a slow client removes it from this very list.
        if (list) for (let i = list.length - 1; i >= 0; i--) this.push(list[i]!);
      }
    }
    this.frame = NO_FRAME;
    metrics.deliveries += this.written;
    metrics.drops.slow_consumer += this.dropped;
    if (this.written > 0) metrics.publishToWrite.observe(Math.max(0, this.deps.clock() - event.publishedAtMs) / 1000);
  }
}
