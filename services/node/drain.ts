import { HeraldError } from '../protocol/errors';
import type { Logger } from '../shared/log';
import { closeWith } from './closing';
import type { Config } from './config';
import type { Hub } from './hub';

/** An early drain (the task is being deregistered) ends this much before the ALB's deregistration delay does. */
export const EARLY_DRAIN_MARGIN_MS = 7_000;

/** The refusal of a new stream while the node drains: the client reconnects, and the load balancer sends it elsewhere. */
export function drainingRefusal(): HeraldError {
  return new HeraldError('draining', 'this node is shutting down; reconnect', { retryAfterMs: 1000 });
}

export interface DrainDeps {
  readonly hub: Pick<Hub, 'snapshot'>;
  readonly config: Pick<Config, 'drainMs' | 'retryMs'>;
  readonly log: Logger;
  readonly nodeId: string;
}

/**
 * The drain: once begun, health turns 503 and new streams are refused (both
 * ask `draining`), and the streams open when it began are closed at random
 * instants spread over the drain window, each with a jittered `retry:`, so
 * their reconnects reach the other nodes as a trickle. Streams still opening
 * then close as they go live (see the opener).
 */
export class Drain {
  private state: Promise<void> | undefined;

  constructor(private readonly deps: DrainDeps) {}

  get draining(): boolean {
    return this.state !== undefined;
  }

  /** Begins the drain over the configured window, or a shorter one if given. A second call joins the first. */
  start(windowMs: number = this.deps.config.drainMs): Promise<void> {
    this.state ??= this.run(Math.max(0, Math.min(windowMs, this.deps.config.drainMs)));
    return this.state;
  }

  private async run(windowMs: number): Promise<void> {
    const { hub, config, log, nodeId } = this.deps;
    const connections = hub.snapshot();
    log.info('node.draining', { nodeId, connections: connections.length, windowMs });
    const closes = connections.map(
      (connection) =>
        new Promise<void>((resolve) => {
          setTimeout(() => {
            closeWith(connection, 'draining', config.retryMs);
            resolve();
          }, Math.random() * windowMs);
        }),
    );
    await Promise.all(closes);
  }
}
