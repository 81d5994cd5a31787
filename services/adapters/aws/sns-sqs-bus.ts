import { randomBytes } from 'node:crypto';
import type { SNSClient } from '@aws-sdk/client-sns';
import { DeleteMessageBatchCommand, ReceiveMessageCommand, type Message, type SQSClient } from '@aws-sdk/client-sqs';
import type { Bus, BusEntry, BusHandler, BusMessage, BusTarget, MissedHandler } from '../../ports/bus';
import { isNodeId } from '../../protocol/bus-message';
import { unavailable } from '../../protocol/faults';
import { backoffCeiling, equalJitter } from '../../shared/backoff';
import type { Logger } from '../../shared/log';
import { malformedMessageFacts } from '../../shared/malformed-message';
import { NODE_ATTRIBUTE } from './bus-naming';
import { encodeBusProbe, parseBusWireMessage, type BusWireMessage } from './bus-probe';
import { closeNodeQueue, isQueueMissing, openNodeQueue, type NodeQueue } from './node-queue';
import { publishBatchToTopic, publishBody, publishToTopic } from './sns-bus';

export interface SnsSqsBusOptions {
  readonly sns: SNSClient;
  readonly sqs: SQSClient;
  readonly topicArn: string;
  /** Queues are named `<queuePrefix>_<nodeId>` (nodeQueueName). */
  readonly queuePrefix: string;
  readonly log: Logger;
  /**
   * Concurrent long polls. Each returns at most 10 messages, so several keep
   * a busy node's queue drained while one is handling its batch.
   * @default 3
   */
  readonly pollers?: number;
  /** @default 20 (the SQS maximum: fewest empty receives) */
  readonly waitTimeSeconds?: number;
  /** Of the node's queue: how soon a message whose handler failed comes back. @default 10 */
  readonly visibilityTimeoutSeconds?: number;
  /** First and largest pause between failed receives; doubled each time, jittered. @default { firstMs: 100, maxMs: 5000 } */
  readonly backoff?: { readonly firstMs: number; readonly maxMs: number };
  /**
   * Confirming the subscription at start: a probe is sent again every
   * `intervalMs` until one comes back, and `start` fails after `timeoutMs`.
   * @default { intervalMs: 2000, timeoutMs: 120000 }
   */
  readonly probe?: { readonly intervalMs: number; readonly timeoutMs: number };
}

/** SQS hands out at most 10 messages per receive, and deletes at most 10 per batch. */
const BATCH = 10;
/** Longest a handled message waits for its delete to fill a batch. */
const DELETE_DELAY_MS = 200;
/** How long a starting node waits for its probe before it gives up; the ECS health check grace period outlasts it. */
export const PROBE_TIMEOUT_MS = 120_000;
const DEFAULT_PROBE = { intervalMs: 2_000, timeoutMs: PROBE_TIMEOUT_MS };

/**
 * The `Bus` of the aws shape: SNS topic → one SQS queue per node (docs/architecture.md,
 * "Shapes", AWS; docs/operations.md, "The janitor"). Sending is one SNS
 * Publish whose `node` attribute the subscriptions filter on. A started node
 * long-polls its queue and deletes only what its handler accepted; anything else
 * comes back after the visibility timeout (at least once). Order is best effort.
 *
 * `start` resolves only once a probe sent to the topic for this node came back
 * through the new subscription. SNS applies a new subscription's filter policy
 * eventually ("up to 15 minutes" in its documentation) and SQS its queue
 * policy likewise: a node that took streams before its subscription delivered
 * would drop their live events without anyone knowing (the replay cannot help
 * a stream that never broke). So the node listens only once delivery is proven.
 */
export class SnsSqsBus implements Bus {
  private closed = false;
  private closing: Promise<void> | undefined;
  private starting: Promise<void> | undefined;
  private queue: NodeQueue | undefined;
  private loops: Promise<void>[] = [];
  private readonly abort = new AbortController();
  private readonly pollers: number;
  private readonly waitTimeSeconds: number;
  private readonly backoff: { readonly firstMs: number; readonly maxMs: number };
  private readonly probe: { readonly intervalMs: number; readonly timeoutMs: number };
  /** The probe `start` is waiting for. */
  private awaitedProbe: { readonly nonce: string; readonly arrived: () => void } | undefined;
  /** Making the queue again after it vanished: one attempt shared by every poller. */
  private restoring: Promise<void> | undefined;
  private onMissed: MissedHandler | undefined;
  /** Receipt handles of handled messages, deleted in batches (`queueDelete`). */
  private toDelete: string[] = [];
  private deleteTimer: NodeJS.Timeout | undefined;
  private readonly deletes = new Set<Promise<void>>();

  constructor(private readonly options: SnsSqsBusOptions) {
    this.pollers = options.pollers ?? 3;
    this.waitTimeSeconds = options.waitTimeSeconds ?? 20;
    this.backoff = options.backoff ?? { firstMs: 100, maxMs: 5_000 };
    this.probe = options.probe ?? DEFAULT_PROBE;
  }

  /** This node's queue and subscription once started (for the janitor's bookkeeping and tests). */
  get nodeQueue(): NodeQueue | undefined {
    return this.queue;
  }

  start(nodeId: string, onMessage: BusHandler, onMissed?: MissedHandler): Promise<void> {
    if (this.closed) return Promise.reject(unavailable('bus is closed'));
    if (this.starting) return Promise.reject(new Error('this bus was already started'));
    if (!isNodeId(nodeId)) return Promise.reject(new Error(`node id "${nodeId}" is not 1-40 characters of A-Z a-z 0-9 _ - (or is "all")`));
    this.onMissed = onMissed;
    const starting = this.open(nodeId, onMessage);
    this.starting = starting;
    // A start that failed (the topic unreachable, say) may be tried again: every step is idempotent.
    starting.catch(() => {
      if (this.starting === starting && !this.closed) this.starting = undefined;
    });
    return starting;
  }

  async send(message: BusMessage, target: BusTarget): Promise<void> {
    if (this.closed) throw unavailable('bus is closed');
    // Usually one body; a deliver too big for one SNS message goes as several, split by recipients.
    await publishToTopic(this.options.sns, this.options.topicArn, message, target);
  }

  async sendBatch(entries: readonly BusEntry[]): Promise<void> {
    if (this.closed) throw unavailable('bus is closed');
    await publishBatchToTopic(this.options.sns, this.options.topicArn, entries);
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async open(nodeId: string, onMessage: BusHandler): Promise<void> {
    const queue = await this.openQueue(nodeId);
    // A start tried again after a failed probe keeps the pollers it already has.
    if (this.loops.length === 0) for (let i = 0; i < this.pollers; i++) this.loops.push(this.poll(i, nodeId, queue.queueUrl, onMessage));
    const probes = await this.confirmDelivery(nodeId);
    this.options.log.info('bus.started', { nodeId, queueUrl: queue.queueUrl, pollers: this.pollers, probes });
  }

  /** Makes (or takes over) this node's queue and subscription: every step is idempotent. */
  private async openQueue(nodeId: string): Promise<NodeQueue> {
    const { sns, sqs, topicArn, queuePrefix } = this.options;
    const visibilityTimeoutSeconds = this.options.visibilityTimeoutSeconds;
    this.queue = await openNodeQueue({ sns, sqs, topicArn, queuePrefix, nodeId, ...(visibilityTimeoutSeconds === undefined ? {} : { visibilityTimeoutSeconds }) });
    // close() ran while the queue was being made: it deletes the queue once this settles.
    if (this.closed) throw unavailable('bus was closed while starting');
    return this.queue;
  }

  /**
   * The queue is gone (the janitor took this node for dead while its heartbeats
   * failed, or an operator deleted it): make it and its subscription again, and
   * once a probe proves delivery, tell the node that what was sent meanwhile is
   * lost to the bus, so its streams resume from history. The pollers wait only
   * for the queue (they must be receiving for the probe to come back); one
   * attempt is shared by all of them.
   */
  private restore(nodeId: string): Promise<void> {
    this.restoring ??= (async () => {
      const { log } = this.options;
      log.warn('bus.queue_missing', { nodeId });
      try {
        await this.openQueue(nodeId);
      } finally {
        this.restoring = undefined;
      }
      void this.confirmDelivery(nodeId).then(
        () => {
          log.info('bus.queue_restored', { nodeId });
          this.onMissed?.();
        },
        (error: unknown) => {
          if (this.closed) return;
          // The streams resume all the same: on another node, if this one still cannot receive.
          log.error('bus.queue_restore_unconfirmed', { nodeId, error });
          this.onMissed?.();
        },
      );
    })();
    return this.restoring;
  }

  /** Sends probes to this node through the topic until one arrives; returns how many were sent. */
  private async confirmDelivery(nodeId: string): Promise<number> {
    const { sns, topicArn, log } = this.options;
    const nonce = randomBytes(12).toString('base64url');
    const arrival = new Promise<'arrived'>((resolve) => {
      this.awaitedProbe = { nonce, arrived: () => resolve('arrived') };
    });
    const startedAt = Date.now();
    let sent = 0;
    try {
      for (;;) {
        if (this.closed) throw unavailable('bus was closed while starting');
        try {
          await publishBody(sns, topicArn, encodeBusProbe(nonce), nodeId);
          sent++;
        } catch (error) {
          log.warn('bus.probe_send_failed', { nodeId, error });
        }
        if ((await Promise.race([arrival, this.sleep(this.probe.intervalMs)])) === 'arrived') return sent;
        const waitedMs = Date.now() - startedAt;
        if (waitedMs >= this.probe.timeoutMs) {
          throw unavailable(`no probe came back through this node's subscription within ${this.probe.timeoutMs} ms`);
        }
        log.warn('bus.probe_waiting', { nodeId, sent, waitedMs });
      }
    } finally {
      this.awaitedProbe = undefined;
    }
  }

  private async shutdown(): Promise<void> {
    this.closed = true;
    // Ends the long polls at once instead of up to 20 s later.
    this.abort.abort();
    await this.starting?.catch(() => undefined);
    await Promise.all(this.loops);
    clearTimeout(this.deleteTimer);
    this.toDelete = [];
    await Promise.all(this.deletes);
    if (!this.queue) return;
    try {
      await closeNodeQueue(this.options.sns, this.options.sqs, this.queue);
    } catch (error) {
      // The node is stopping either way; the janitor removes what is left.
      this.options.log.warn('bus.cleanup_failed', { queueUrl: this.queue.queueUrl, error });
    }
  }

  /** One long-poll loop. It never throws: every failure is logged, waited out and retried until close. */
  private async poll(poller: number, nodeId: string, queueUrl: string, onMessage: BusHandler): Promise<void> {
    const { sqs, log } = this.options;
    let failures = 0;
    while (!this.closed) {
      try {
        const { Messages } = await sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: queueUrl,
            MaxNumberOfMessages: BATCH,
            WaitTimeSeconds: this.waitTimeSeconds,
            MessageAttributeNames: ['All'],
          }),
          { abortSignal: this.abort.signal },
        );
        if (failures > 0) log.info('bus.recovered', { poller, failures });
        failures = 0;
        await this.handleBatch(queueUrl, Messages ?? [], onMessage);
      } catch (error) {
        // Aborted by close(), or failed while closing: not an outage.
        if (this.abort.signal.aborted) return;
        failures++;
        // A vanished queue is made again (same name, so the same URL: the loop goes on as it was).
        const fault = isQueueMissing(error) ? await this.restore(nodeId).then(() => undefined, (restoreError: unknown) => restoreError) : error;
        if (fault === undefined) continue;
        log.warn('bus.receive_failed', { poller, failures, error: fault });
        await this.pause(failures);
      }
    }
  }

  /**
   * Hands each message to the handler in turn and queues those it accepted for
   * deletion. Deletes are pooled across receives (and pollers) into batches of
   * up to 10: at a trickle each receive brings one message, and a delete per
   * receive would double the node's SQS requests. A handled message waits at
   * most `DELETE_DELAY_MS`, far inside the visibility timeout.
   */
  private async handleBatch(queueUrl: string, messages: readonly Message[], onMessage: BusHandler): Promise<void> {
    for (const received of messages) {
      // Not one more handler call once close() has begun, even for messages already received.
      if (this.closed) return;
      const receiptHandle = received.ReceiptHandle;
      if (receiptHandle === undefined) continue;
      if (await this.handleOne(received, onMessage)) this.queueDelete(queueUrl, receiptHandle);
    }
  }

  private queueDelete(queueUrl: string, receiptHandle: string): void {
    this.toDelete.push(receiptHandle);
    if (this.toDelete.length >= BATCH) this.flushDeletes(queueUrl);
    else this.deleteTimer ??= setTimeout(() => this.flushDeletes(queueUrl), DELETE_DELAY_MS);
  }

  private flushDeletes(queueUrl: string): void {
    clearTimeout(this.deleteTimer);
    this.deleteTimer = undefined;
    while (this.toDelete.length > 0) {
      const handles = this.toDelete.splice(0, BATCH);
      // The queue is deleted on close: what is still pending then needs no delete.
      if (this.closed) continue;
      const entries = handles.map((ReceiptHandle, i) => ({ Id: String(i), ReceiptHandle }));
      const deleting = this.options.sqs
        .send(new DeleteMessageBatchCommand({ QueueUrl: queueUrl, Entries: entries }), { abortSignal: this.abort.signal })
        .then(({ Failed }) => {
          // Harmless: those messages come back after the visibility timeout and are handled again.
          if (Failed && Failed.length > 0) this.options.log.warn('bus.delete_failed', { failed: Failed.length, code: Failed[0]?.Code });
        })
        .catch((error: unknown) => {
          if (!this.abort.signal.aborted) this.options.log.warn('bus.delete_failed', { failed: entries.length, error });
        })
        .finally(() => this.deletes.delete(deleting));
      this.deletes.add(deleting);
    }
  }

  /** Whether the message is finished with: handled, a probe, or malformed (it could never succeed). */
  private async handleOne(received: Message, onMessage: BusHandler): Promise<boolean> {
    const { log } = this.options;
    let message: BusWireMessage;
    try {
      message = parseBusWireMessage(received.Body ?? '', { node: received.MessageAttributes?.[NODE_ATTRIBUTE]?.StringValue });
    } catch (error) {
      // Never the body nor the refusal's text, which quotes it: it may hold event data (docs/operations.md, "Logs").
      log.warn('bus.message_malformed', { messageId: received.MessageId, ...malformedMessageFacts(received.Body ?? '', error) });
      return true;
    }
    if (message.kind === 'probe') {
      // Another start's probe (a retried start, a restart under the same node id) is simply dropped.
      if (this.awaitedProbe?.nonce === message.nonce) this.awaitedProbe.arrived();
      return true;
    }
    try {
      await invoke(onMessage, message);
      return true;
    } catch (error) {
      log.warn('bus.handler_failed', { messageId: received.MessageId, kind: message.kind, error });
      return false;
    }
  }

  /** Capped exponential backoff with jitter (half fixed, half random), cut short by close. */
  private pause(failures: number): Promise<void> {
    return this.sleep(equalJitter(backoffCeiling(failures - 1, this.backoff)));
  }

  /** Waits `ms`, or less if close() begins. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const signal = this.abort.signal;
      function done(): void {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done, { once: true });
    });
  }
}

/**
 * Calls the handler now — not on a later microtask, where a close() begun in
 * between would no longer stop it — with a synchronous throw counted as a rejection.
 */
function invoke(handler: BusHandler, message: BusMessage): Promise<void> {
  try {
    return handler(message);
  } catch (error) {
    return Promise.reject(error instanceof Error ? error : new Error(String(error)));
  }
}
