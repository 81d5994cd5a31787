import type { BusMessage, BusSender } from '../ports/bus';
import type { ConnectionRecord } from '../ports/owners';
import { frameReplaced } from '../protocol/sse-frame';
import type { Logger } from '../shared/log';
import { closeWith } from './closing';
import type { Config } from './config';
import { chunk } from './http-stream-sink';
import type { Hub } from './hub';
import { retryWithBackoff } from './retry';

/** Telling another node's tab it was replaced outlasts a bus outage of a few minutes. */
const REPLACE_RETRY = { firstMs: 250, maxMs: 10_000, giveUpAfterMs: 5 * 60_000 };

export interface DisplacementDeps {
  readonly hub: Pick<Hub, 'find'>;
  readonly bus: Pick<BusSender, 'send'>;
  readonly config: Pick<Config, 'retryMs'>;
  readonly log: Logger;
  readonly nodeId: string;
  /** The node stopped: a retry under way gives up. */
  readonly stopped: () => boolean;
}

/**
 * Closes the older tabs of a user that a newer tab's claim displaced: on this
 * node, or through the bus on the node that holds them.
 */
export class Displacement {
  constructor(private readonly deps: DisplacementDeps) {}

  /**
   * Closes another tab of the same user, on this node or, through the bus, on
   * the node that holds it: with `replaced`, or with `closing` reason `reclaim`
   * (reconnect) when the tab that displaced it will not be live after all.
   */
  displace(record: ConnectionRecord, byConnectionId: string, reclaim = false): void {
    const { bus, log, nodeId } = this.deps;
    if (record.nodeId === nodeId) {
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
    const retry = { ...REPLACE_RETRY, stopped: this.deps.stopped };
    retryWithBackoff(() => bus.send(message, { node: record.nodeId }), retry, (error, attempt) => {
      log.warn('connection.replace_retrying', { ...fields, attempt, error });
    }).catch((error: unknown) => {
      log.error('connection.replace_failed', { ...fields, error });
    });
  }

  /** Closes a tab of this node that a newer one displaced (a `replace` from the bus, or a claim made here). */
  replaceLocal(userId: string, connectionId: string, byConnectionId: string, reclaim: boolean): void {
    const { hub, log, config } = this.deps;
    const connection = hub.find(userId, connectionId);
    if (!connection) return;
    if (reclaim) {
      log.info('connection.reclaim', { connectionId, byConnectionId });
      closeWith(connection, 'reclaim', config.retryMs);
      return;
    }
    log.info('connection.replaced', { connectionId, byConnectionId });
    connection.close('replaced', chunk(frameReplaced(connection.id)));
  }
}
