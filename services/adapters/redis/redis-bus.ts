import { BusBatchError, type Bus, type BusEntry, type BusHandler, type BusMessage, type BusTarget, type MissedHandler } from '../../ports/bus';
import { ALL_NODES, encodeBusMessageWithin, isNodeId, parseBusMessage } from '../../protocol/bus-message';
import { HeraldError } from '../../protocol/errors';
import { unavailable } from '../../protocol/faults';
import { backoffCeiling, delay } from '../../shared/backoff';
import type { Logger } from '../../shared/log';
import { malformedMessageFacts } from '../../shared/malformed-message';
import { luaScript, type RedisConnection } from './redis-connection';
import { DEFAULT_KEY_PREFIX, redisKeys, type RedisKeys, type StreamKeys } from './redis-keys';
import { StreamReader } from './stream-reader';

/**
 * Appends message bodies to one stream, each with the stream's next sequence
 * number, trims it to about MAXLEN, and (re)sets the lifetime of both keys.
 * KEYS: stream, seq. ARGV: maxlen, ttl ms, body…
 */
const SEND = luaScript(
  'bus-send',
  `local seq = 0
for i = 3, #ARGV do
  seq = redis.call('INCR', KEYS[2])
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'm', ARGV[i], 's', seq)
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return seq`,
);

/** Redis takes far larger values; this keeps one XREAD of READ_COUNT entries within reason. */
const MAX_BODY_BYTES = 1024 * 1024;
/** Bodies per SEND script call, so that one call of a big batch does not hold the server long. */
const BODIES_PER_CALL = 50;
const SEND_ATTEMPTS = 2;

export interface RedisBusOptions {
  /** Shared with the rest of the process: `close()` leaves it open. Each started bus opens two connections of its own to read. */
  readonly redis: RedisConnection;
  readonly log: Logger;
  /** @default 'herald:' */
  readonly keyPrefix?: string;
  /** Entries kept per stream (approximately: MAXLEN ~). A reader further behind than that calls onMissed. @default 10000 */
  readonly maxStreamLength?: number;
  /** A stream nobody writes or reads (its node is gone) expires after this. @default 300000 (5 minutes) */
  readonly streamTtlMs?: number;
  /** How long one XREAD waits; a reader also refreshes its streams' lifetime this often. @default 5000 */
  readonly blockMs?: number;
  /** Calls of a handler that rejects, in all, before the message is dropped (and logged). @default 3 */
  readonly handlerAttempts?: number;
  /** First and largest pause between failed reads (or handler calls); doubled each time, jittered. @default { firstMs: 100, maxMs: 5000 } */
  readonly backoff?: { readonly firstMs: number; readonly maxMs: number };
}

/**
 * The `Bus` of the redis shape, on Redis Streams: one stream per node
 * (`{bus:<node>}:stream`) and one for all nodes (`{bus}:all`). Sending is one
 * script call (XADD) per target stream. A started node reads its own stream
 * and the shared one, each with XREAD BLOCK on a connection of its own (on a
 * cluster the two live on different shards, so one XREAD cannot read both),
 * from the last id it read.
 *
 * Why Streams and not pub/sub: PUBLISH is at most once. Every message sent
 * while a subscriber's connection is down (a blip, a failover, a slow
 * consumer the server cut off) is lost, so every reconnect would have to
 * resync every stream of the node from history — a replay storm on each
 * network hiccup. A stream keeps the messages: a reader that reconnects
 * resumes from its last id and misses nothing, and it can tell when it did
 * miss something (see StreamReader), which is the only time `onMissed`
 * fires. Streams also keep send order per target, and XADD is acknowledged
 * only once stored, so a resolved `send` has really been accepted.
 *
 * At least once: a handler that rejects gets the same message again, up to
 * `handlerAttempts` calls, before the reader moves on (holding the stream's
 * order meanwhile). A message that fails to decode is logged and skipped.
 * Streams of a node that is gone stop being refreshed by its reader and
 * expire `streamTtlMs` after the last message sent to them.
 */
export class RedisBus implements Bus {
  private readonly keys: RedisKeys;
  private readonly maxStreamLength: number;
  private readonly streamTtlMs: number;
  private closed = false;
  private closing: Promise<void> | undefined;
  private starting: Promise<void> | undefined;
  private readonly readers: StreamReader[] = [];
  private readonly backoff: { readonly firstMs: number; readonly maxMs: number };

  constructor(private readonly options: RedisBusOptions) {
    this.keys = redisKeys(options.keyPrefix ?? DEFAULT_KEY_PREFIX);
    this.maxStreamLength = options.maxStreamLength ?? 10_000;
    this.streamTtlMs = options.streamTtlMs ?? 300_000;
    this.backoff = options.backoff ?? { firstMs: 100, maxMs: 5_000 };
  }

  start(nodeId: string, onMessage: BusHandler, onMissed?: MissedHandler): Promise<void> {
    if (this.closed) return Promise.reject(unavailable('bus is closed'));
    if (this.starting) return Promise.reject(new Error('this bus was already started'));
    if (!isNodeId(nodeId)) return Promise.reject(new Error(`node id "${nodeId}" is not 1-40 characters of A-Z a-z 0-9 _ - (or is "all")`));
    const starting = this.open(nodeId, onMessage, onMissed);
    this.starting = starting;
    starting.catch(() => {
      if (this.starting === starting && !this.closed) this.starting = undefined;
    });
    return starting;
  }

  async send(message: BusMessage, target: BusTarget): Promise<void> {
    if (this.closed) throw unavailable('bus is closed');
    const bodies = encodeBusMessageWithin(message, MAX_BODY_BYTES);
    for (let i = 0; i < bodies.length; i += BODIES_PER_CALL) await this.append(this.streamOf(target), bodies.slice(i, i + BODIES_PER_CALL));
  }

  /**
   * One script call per target stream (more for a target with many bodies),
   * all in flight together, which the client pipelines. A target's calls go
   * in order, so entries to one target arrive in the order given.
   */
  async sendBatch(entries: readonly BusEntry[]): Promise<void> {
    if (this.closed) throw unavailable('bus is closed');
    const byStream = new Map<string, { keys: StreamKeys; bodies: { entry: number; body: string }[] }>();
    entries.forEach(({ message, target }, entry) => {
      const keys = this.streamOf(target);
      const group = byStream.get(keys.stream) ?? { keys, bodies: [] };
      for (const body of encodeBusMessageWithin(message, MAX_BODY_BYTES)) group.bodies.push({ entry, body });
      byStream.set(keys.stream, group);
    });
    const failed = new Set<number>();
    let lastError: unknown;
    await Promise.all(
      [...byStream.values()].map(async ({ keys, bodies }) => {
        for (let i = 0; i < bodies.length; i += BODIES_PER_CALL) {
          const call = bodies.slice(i, i + BODIES_PER_CALL);
          try {
            await this.append(keys, call.map((b) => b.body));
          } catch (error) {
            lastError = error;
            for (const { entry } of call) failed.add(entry);
          }
        }
      }),
    );
    if (failed.size > 0) throw new BusBatchError([...failed].sort((a, b) => a - b), lastError);
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  /** Both readers, or neither: a start that failed halfway stops what it began, and may be tried again. */
  private async open(nodeId: string, onMessage: BusHandler, onMissed: MissedHandler | undefined): Promise<void> {
    const { redis, log } = this.options;
    const streams: [StreamKeys, string][] = [
      [this.keys.busNode(nodeId), nodeId],
      [this.keys.busAll, ALL_NODES],
    ];
    const readers: StreamReader[] = [];
    try {
      await Promise.all(
        streams.map(async ([keys, target]) => {
          const reader = new StreamReader(await redis.dedicated(), {
            keys,
            target,
            streamTtlMs: this.streamTtlMs,
            blockMs: this.options.blockMs ?? 5_000,
            log,
            backoff: this.backoff,
            onBody: (body, entryId) => this.handle(body, entryId, target, onMessage),
            onMissed: () => onMissed?.(),
          });
          readers.push(reader);
          // Registered before it starts, so a close() from now on stops it.
          this.readers.push(reader);
          if (this.closed) throw unavailable('bus was closed while starting');
          await reader.start();
        }),
      );
      if (this.closed) throw unavailable('bus was closed while starting');
    } catch (error) {
      await Promise.all(readers.map((r) => r.stop()));
      throw error;
    }
    log.info('bus.started', { nodeId, streams: streams.map(([keys]) => keys.stream) });
  }

  /** Stops the readers there are (which ends a start's pending reads), waits for the start, then stops any it added. */
  private async shutdown(): Promise<void> {
    this.closed = true;
    const stopAll = (): Promise<unknown> => Promise.all(this.readers.map((r) => r.stop()));
    await stopAll();
    await this.starting?.catch(() => undefined);
    await stopAll();
  }

  private streamOf(target: BusTarget): StreamKeys {
    if (target === 'all') return this.keys.busAll;
    if (!isNodeId(target.node)) throw new Error(`cannot send to node "${target.node}": not a node id`);
    return this.keys.busNode(target.node);
  }

  /** A reply lost to a timeout may hide a stored message: sending again then delivers it twice, which at least once allows. */
  private async append(keys: StreamKeys, bodies: readonly string[]): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.options.redis.script(SEND, [keys.stream, keys.seq], [String(this.maxStreamLength), String(this.streamTtlMs), ...bodies]);
        return;
      } catch (error) {
        if (this.closed || attempt >= SEND_ATTEMPTS || !isUnavailable(error)) throw error;
        await new Promise((resolve) => setTimeout(resolve, 50 + Math.random() * 100));
      }
    }
  }

  /** Decodes and hands one body to the handler, calling it again after a rejection; never rejects. */
  private async handle(body: string, entryId: string, target: string, onMessage: BusHandler): Promise<void> {
    const { log } = this.options;
    let message: BusMessage;
    try {
      message = parseBusMessage(body, { node: target });
    } catch (error) {
      // Never the body nor the refusal's text, which quotes it: it may hold event data (docs/operations.md, "Logs").
      log.warn('bus.message_malformed', { entryId, ...malformedMessageFacts(body, error) });
      return;
    }
    const attempts = this.options.handlerAttempts ?? 3;
    for (let attempt = 1; !this.closed; attempt++) {
      try {
        await invoke(onMessage, message);
        return;
      } catch (error) {
        log.warn('bus.handler_failed', { entryId, kind: message.kind, attempt, error });
        if (attempt >= attempts) return;
        await delay(backoffCeiling(attempt - 1, this.backoff));
      }
    }
  }
}

function isUnavailable(error: unknown): boolean {
  return error instanceof HeraldError && error.code === 'unavailable';
}

/**
 * Calls the handler now, with a synchronous throw counted as a rejection, so
 * that a faulty handler cannot end the reader's loop.
 */
function invoke(handler: BusHandler, message: BusMessage): Promise<void> {
  try {
    return handler(message);
  } catch (error) {
    return Promise.reject(error instanceof Error ? error : new Error(String(error)));
  }
}
