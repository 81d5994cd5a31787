import { request, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { RESERVED_EVENT_NAMES } from '../../services/protocol/limits';
import { withDeadline } from '../../scripts/fleet/deadline';

export interface StreamOptions {
  readonly token?: string;
  readonly cookie?: string;
  /** Sent as the `Last-Event-ID` header, as `EventSource` does on its own reconnects. */
  readonly lastEventId?: string;
  /** Appended to the URL, e.g. `?lastEventId=…`. */
  readonly query?: Record<string, string>;
  readonly headers?: Record<string, string>;
  /** Source address, e.g. 127.0.0.7, to look like another client. */
  readonly localAddress?: string;
  /** A name for failure messages: "waiting for `replaced` on tab 1". */
  readonly label?: string;
  /** Aborting it destroys the request: a client that leaves before the response head. */
  readonly signal?: AbortSignal;
}

export interface SseEvent {
  readonly id: string | undefined;
  readonly event: string;
  readonly data: string;
  /** `retry:` values seen before this event. */
  readonly retry: number | undefined;
}

/**
 * A real SSE client over `node:http`, parsed by eventsource-parser (the parser
 * the `eventsource` package uses). Unlike `EventSource` it shows status codes
 * and headers and never reconnects on its own, so a test decides what happens
 * after a stream ends.
 */
export class SseStream {
  readonly events: SseEvent[] = [];
  /** Everything received, decoded: for what a parser hides (how lines are escaped). */
  text = '';
  retry: number | undefined;
  ended = false;
  private waiters: Array<() => void> = [];

  constructor(
    readonly status: number,
    readonly headers: IncomingHttpHeaders,
    readonly body: string,
    private readonly response: IncomingMessage | undefined,
    readonly label: string,
  ) {
    if (!response) {
      this.ended = true;
      return;
    }
    const parser = createParser({
      onEvent: (message: EventSourceMessage) => {
        this.events.push({ id: message.id, event: message.event ?? 'message', data: message.data, retry: this.retry });
        this.wake();
      },
      onRetry: (ms) => {
        this.retry = ms;
      },
    });
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => {
      this.text += chunk;
      parser.feed(chunk);
    });
    const end = (): void => {
      this.ended = true;
      this.wake();
    };
    response.on('end', end);
    response.on('close', end);
    response.on('error', end);
  }

  /** Waits for the first event named `name` at or after index `from`. */
  async next(name: string, options: { from?: number; timeoutMs?: number } = {}): Promise<SseEvent> {
    return this.waitFor((e) => e.event === name, `\`${name}\``, options);
  }

  /** Waits for an event matching `predicate`; fails if the stream ends first. */
  async waitFor(predicate: (event: SseEvent) => boolean, what: string, options: { from?: number; timeoutMs?: number } = {}): Promise<SseEvent> {
    const timeoutMs = options.timeoutMs ?? 3000;
    const search = (): SseEvent | undefined => this.events.slice(options.from ?? 0).find(predicate);
    return withDeadline(
      (async () => {
        for (;;) {
          const found = search();
          if (found) return found;
          if (this.ended) throw new Error(`stream ${this.label} ended before ${what}; got ${this.names().join(', ')}`);
          await new Promise<void>((resolve) => this.waiters.push(resolve));
        }
      })(),
      timeoutMs,
      `${what} on ${this.label}`,
    );
  }

  /** Resolves when the server ends the stream. */
  async closed(timeoutMs = 3000): Promise<void> {
    await withDeadline(
      (async () => {
        while (!this.ended) await new Promise<void>((resolve) => this.waiters.push(resolve));
      })(),
      timeoutMs,
      `the end of ${this.label}`,
    );
  }

  /** The notifications only: events with an id that are not control events (`ready` may carry a start position, `replaced` its own id). */
  notifications(): SseEvent[] {
    return this.events.filter((e) => e.id !== undefined && !RESERVED_EVENT_NAMES.has(e.event));
  }

  names(): string[] {
    return this.events.map((e) => e.event);
  }

  /** Stops reading without closing: the socket's receive buffer fills, as with a stalled client. */
  pause(): void {
    this.response?.pause();
    this.response?.socket.pause();
  }

  close(): void {
    this.response?.destroy();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}

/** Opens `GET /events` and resolves once the response head arrives (any status). */
export function openStream(baseUrl: string, options: StreamOptions = {}): Promise<SseStream> {
  const url = new URL('/events', baseUrl);
  for (const [key, value] of Object.entries(options.query ?? {})) url.searchParams.set(key, value);
  const headers: Record<string, string> = { Accept: 'text/event-stream', ...options.headers };
  if (options.token !== undefined) headers.Authorization = `Bearer ${options.token}`;
  if (options.cookie !== undefined) headers.Cookie = options.cookie;
  if (options.lastEventId !== undefined) headers['Last-Event-ID'] = options.lastEventId;
  const label = options.label ?? 'stream';

  const requestOptions = {
    headers,
    agent: false,
    ...(options.localAddress ? { localAddress: options.localAddress } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  };

  return withDeadline(
    new Promise<SseStream>((resolve, reject) => {
      const req = request(url, requestOptions, (res) => {
        const status = res.statusCode ?? 0;
        if (status === 200 && String(res.headers['content-type']).startsWith('text/event-stream')) {
          resolve(new SseStream(status, res.headers, '', res, label));
          return;
        }
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve(new SseStream(status, res.headers, body, undefined, label)));
      });
      req.on('error', reject);
      req.end();
    }),
    5000,
    `the response to GET /events on ${label}`,
  );
}

export interface ReadyStream {
  readonly stream: SseStream;
  /** The `ready` event's data: which connection and node the stream landed on. */
  readonly connectionId: string;
  readonly nodeId: string;
}

/** Opens `GET /events` at `baseUrl` (a node or a proxy) and waits for `ready`; throws on any other answer. */
export async function connectUser(baseUrl: string, token: string, label: string, options: Omit<StreamOptions, 'token' | 'label'> = {}): Promise<ReadyStream> {
  const stream = await openStream(baseUrl, { ...options, token, label });
  if (stream.status !== 200) throw new Error(`GET /events for ${label} answered ${stream.status}: ${stream.body}`);
  const ready = JSON.parse((await stream.next('ready', { timeoutMs: 5_000 })).data) as { connectionId: string; nodeId: string };
  return { stream, connectionId: ready.connectionId, nodeId: ready.nodeId };
}
