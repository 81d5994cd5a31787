import type { BusMessage } from '../protocol/bus-message';
import { HeraldError } from '../protocol/errors';

/** Where a bus message goes: the node that holds the recipients, or every node. */
export type BusTarget = { readonly node: string } | 'all';

export type { BusMessage };

/** Called for each message addressed to this node. A rejection means "not handled": the adapter may redeliver. */
export type BusHandler = (message: BusMessage) => Promise<void>;

/**
 * Called when the bus may have dropped messages addressed to this node and has
 * recovered (the SNS→SQS bus found its queue gone and made it again). The node
 * then has every stream resume from its position, which the replay fills in.
 */
export type MissedHandler = () => void;

/** One message and where it goes, as `sendBatch` takes them. */
export interface BusEntry {
  readonly message: BusMessage;
  readonly target: BusTarget;
}

/**
 * `sendBatch` could not get every entry accepted, even after the adapter's own
 * retries: `failed` are the indices (into the entries given) that may not have
 * been sent; every other entry was accepted. Transient, like `unavailable`.
 */
export class BusBatchError extends HeraldError {
  constructor(
    readonly failed: readonly number[],
    cause: unknown,
  ) {
    super('unavailable', `the bus did not accept ${failed.length} of the messages`, { cause });
  }
}

/**
 * The sending half of the bus: all a publisher (the library, the Lambda,
 * `POST /publish`) needs.
 */
export interface BusSender {
  send(message: BusMessage, target: BusTarget): Promise<void>;
  /**
   * Sends several messages in as few requests as the bus allows (SNS:
   * `PublishBatch`, 10 a request). Resolves once every entry was accepted;
   * otherwise rejects with a `BusBatchError` naming the entries that were not
   * (or with `unavailable` when none can have been). Entries to one target
   * arrive in the order given where the adapter keeps order at all.
   */
  sendBatch(entries: readonly BusEntry[]): Promise<void>;
  close(): Promise<void>;
}

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
export interface Bus extends BusSender {
  start(nodeId: string, onMessage: BusHandler, onMissed?: MissedHandler): Promise<void>;
}
