import type { HeraldEvent } from '../protocol/envelope';

/** Where a bus message goes: the node that holds the recipients, or every node. */
export type BusTarget = { readonly node: string } | 'all';

export type BusMessage =
  /** Write `event` to this node's connections of the users in `event.to` (or to all of them). */
  | { readonly kind: 'deliver'; readonly event: HeraldEvent }
  /**
   * A newer tab of `userId` claimed its place: close `connectionId` with
   * `replaced`, or, when `reclaim` is set (that newer tab never opened), with
   * `closing` reason `reclaim`, so the old tab reconnects and takes its place back.
   */
  | { readonly kind: 'replace'; readonly userId: string; readonly connectionId: string; readonly byConnectionId: string; readonly reclaim?: true }
  /**
   * This node is about to be stopped (ECS marked its task to stop and is
   * deregistering it from the load balancer): start draining now, inside the
   * deregistration delay, rather than on SIGTERM after it.
   */
  | { readonly kind: 'drain' };

/** Called for each message addressed to this node. A rejection means "not handled": the adapter may redeliver. */
export type BusHandler = (message: BusMessage) => Promise<void>;

/**
 * Called when the bus may have dropped messages addressed to this node and has
 * recovered (the SNS→SQS bus found its queue gone and made it again). The node
 * then has every stream resume from its position, which the replay fills in.
 */
export type MissedHandler = () => void;

/**
 * Carries messages from publishers and nodes to the nodes that hold recipients.
 *
 * Contract (every adapter passes `test/contract/bus.contract.ts`):
 * - `send` resolves once the bus has accepted the message, and rejects (a
 *   transient `unavailable` HeraldError) when it could not; nothing is
 *   half-sent from the caller's point of view.
 * - A message sent to `{ node }` reaches that node's handler and no other; `'all'`
 *   reaches every started node, the sender included.
 * - At least once: a handler may see a message twice (redelivery after a fault).
 *   Event ids make that harmless; clients drop ids they have seen.
 * - Order is kept per sender and target in the memory adapter; networked
 *   adapters make it best effort, and replay orders by event id.
 * - Sending needs no `start`: publishers only send. After `close`, `send` rejects
 *   and the handler is no longer called. `close` is idempotent.
 */
export interface Bus {
  start(nodeId: string, onMessage: BusHandler, onMissed?: MissedHandler): Promise<void>;
  send(message: BusMessage, target: BusTarget): Promise<void>;
  close(): Promise<void>;
}
