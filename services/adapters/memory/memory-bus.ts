import type { Bus, BusEntry, BusHandler, BusMessage, BusTarget } from '../../ports/bus';
import { unavailable } from '../../protocol/faults';

/**
 * The nodes that share one in-process bus. The local shape has one node on it;
 * tests put several nodes on one network to exercise cross-node routing.
 */
export class MemoryNetwork {
  readonly nodes = new Map<string, BusHandler>();
}

export interface MemoryBusOptions {
  /** A handler failed: the memory bus cannot redeliver, so it reports and moves on. */
  readonly onHandlerError?: (error: unknown, message: BusMessage) => void;
}

export class MemoryBus implements Bus {
  private nodeId: string | undefined;
  private closed = false;

  constructor(
    private readonly network: MemoryNetwork = new MemoryNetwork(),
    private readonly options: MemoryBusOptions = {},
  ) {}

  start(nodeId: string, onMessage: BusHandler): Promise<void> {
    if (this.closed) return Promise.reject(unavailable('bus is closed'));
    if (this.network.nodes.has(nodeId)) return Promise.reject(new Error(`node ${nodeId} is already on this bus`));
    this.nodeId = nodeId;
    this.network.nodes.set(nodeId, onMessage);
    return Promise.resolve();
  }

  send(message: BusMessage, target: BusTarget): Promise<void> {
    if (this.closed) return Promise.reject(unavailable('bus is closed'));
    if (target === 'all') {
      for (const handler of this.network.nodes.values()) this.dispatch(handler, message);
    } else {
      const handler = this.network.nodes.get(target.node);
      // A node that left the network takes its messages with it, as a deleted queue would.
      if (handler) this.dispatch(handler, message);
    }
    return Promise.resolve();
  }

  /** In order, each as `send`: a memory bus has no requests to save. */
  async sendBatch(entries: readonly BusEntry[]): Promise<void> {
    for (const { message, target } of entries) await this.send(message, target);
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      if (this.nodeId !== undefined) this.network.nodes.delete(this.nodeId);
    }
    return Promise.resolve();
  }

  // A microtask, not a direct call: the sender's `await send()` must not run the
  // receiver's code inside its own stack, and microtasks keep send order.
  private dispatch(handler: BusHandler, message: BusMessage): void {
    // Through a promise, so that a handler throwing synchronously is reported like a rejection
    // instead of escaping the microtask as an uncaught exception.
    Promise.resolve(message)
      .then(handler)
      .catch((error: unknown) => this.options.onHandlerError?.(error, message));
  }
}
