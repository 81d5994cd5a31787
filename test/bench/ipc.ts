/**
 * Request/reply over the Node IPC channel between the bench and the processes
 * it starts. Children are spawned with `serialization: 'advanced'` (structured
 * clone), so bigints and typed arrays travel as they are.
 */
import type { HistogramData } from './stats';

export interface Request {
  readonly id: number;
  readonly cmd: string;
  readonly [field: string]: unknown;
}

export type Reply = { readonly id: number; readonly ok: true; readonly result: unknown } | { readonly id: number; readonly ok: false; readonly error: string };

/** The first message a child sends once it can take requests. */
export interface Hello {
  readonly hello: true;
  readonly pid: number;
  readonly [field: string]: unknown;
}

export type Handler = (request: Request) => unknown;

/**
 * The child's side: answers each request with its handler's result. A child
 * whose parent has gone (the IPC channel closed) exits at once, so a bench
 * killed with SIGKILL does not leave orphans holding sockets.
 */
export function serve(handlers: Readonly<Record<string, Handler>>, hello: Record<string, unknown>): void {
  const send = process.send?.bind(process);
  if (!send) throw new Error('this module runs as a child of the bench, with an IPC channel');
  process.on('disconnect', () => process.exit(0));
  process.on('message', (message: Request) => {
    const handler = handlers[message.cmd];
    void (async () => {
      try {
        if (!handler) throw new Error(`unknown command ${message.cmd}`);
        const reply: Reply = { id: message.id, ok: true, result: await handler(message) };
        send(reply);
      } catch (error) {
        const reply: Reply = { id: message.id, ok: false, error: error instanceof Error ? (error.stack ?? error.message) : String(error) };
        send(reply);
      }
    })();
  });
  const first: Hello = { ...hello, hello: true, pid: process.pid };
  send(first);
}

// ---- messages between the bench and a load client ----

/**
 * How a stream is opened and when it counts as ready, where it is not a
 * Herald node's (`GET /events` with a JWT, ready on `event: ready`).
 */
export interface StreamSpec {
  /** Request path; `{user}` is replaced by the user's name (`u<i>`). */
  readonly path: string;
  /** Whether to send `Authorization: Bearer <JWT for the user>`. */
  readonly jwt: boolean;
  /** The stream is ready once it reads this exact line (e.g. Nchan's `: hi` comment, sent once it has subscribed). */
  readonly readyLine: string;
}

export interface OpenCommand {
  /** `http://127.0.0.1:port` of the node. */
  readonly url: string;
  /** Several nodes (the cluster shape): user i connects to `urls[i mod n]`, so streams spread evenly. */
  readonly urls?: readonly string[];
  /** Users `u<first>` … `u<first + count - 1>`. */
  readonly first: number;
  readonly count: number;
  /** Source address for every socket of this client, e.g. 127.0.0.2. */
  readonly localAddress: string;
  readonly secret: string;
  /** Handshakes in flight at once. */
  readonly concurrency: number;
  /** How long one connection may take to reach `ready`. */
  readonly timeoutMs: number;
  /** `process.hrtime.bigint()` of the bench at start: timestamps in event data are ns since then. */
  readonly epochNs: bigint;
  /** Another server's streams (Nchan's); absent: a Herald node's. */
  readonly stream?: StreamSpec;
}

export interface OpenResult {
  /** User numbers whose stream reached `ready`. */
  readonly opened: number[];
  /** Failed connects by reason: `http 429 too_many_connects`, `ECONNREFUSED`, `timeout`. */
  readonly failures: Record<string, number>;
  readonly ms: number;
}

/** Close `count` of a client's live streams and open each again, as a browser does: same user, `Last-Event-ID`. */
export interface ReconnectCommand {
  readonly count: number;
  readonly concurrency: number;
  readonly timeoutMs: number;
}

export interface TagReport {
  readonly count: number;
  /** ns since the epoch when the last event with this tag was read. */
  readonly lastArrivalNs: number;
  /** Publish→read latency of every event with this tag. */
  readonly latency: HistogramData;
}

export interface ClientReport {
  /** Streams open now. */
  readonly open: number;
  /** Streams that ended after `ready`, by reason: `end` (server closed), `ECONNRESET`, … */
  readonly lost: Record<string, number>;
  /** Events read, by `event:` name (ready, ping, bench, closing, replaced, …). */
  readonly events: Record<string, number>;
  readonly tags: Record<string, TagReport>;
  /** CPU time this client process has used, in µs. */
  readonly cpuUs: number;
}

// ---- messages between the bench and node-under-test ----

export interface NodeMemory {
  readonly rss: number;
  readonly heapUsed: number;
  readonly heapTotal: number;
  readonly external: number;
  readonly arrayBuffers: number;
}

/** How late the node's event loop ran its timers: a stalled loop (GC, a long tick) shows here. */
export interface LoopDelay {
  readonly p50Us: number;
  readonly p99Us: number;
  readonly maxUs: number;
}

export interface NodeSample {
  readonly memory: NodeMemory;
  /** User + system CPU time of the node process, in µs. */
  readonly cpuUs: number;
  readonly systemCpuUs: number;
}
