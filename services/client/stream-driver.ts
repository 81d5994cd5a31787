import { Backoff, type BackoffOptions } from './backoff';
import { CLOSED, type ClientEnvironment, type EventSourceLike } from './environment';
import { probeStream } from './probe';
import { Watchdog } from './watchdog';

export type ConnectionStatus =
  /** The first stream is opening. */
  | 'connecting'
  /** `ready` arrived: events flow. */
  | 'open'
  /** The stream was lost or refused; a new one is on its way (with backoff). */
  | 'reconnecting'
  /** 401 or `closing: token_expired`: waiting for `onAuthExpired` to renew the credentials. */
  | 'unauthorized'
  /** Another tab took over; nothing reconnects until `takeOver()`. */
  | 'replaced'
  /** `close()` was called. */
  | 'closed';

export interface StreamMessage {
  readonly id: string;
  readonly event: string;
  /** The event's `data:` line, JSON text. */
  readonly data: string;
}

export interface GapInfo {
  /** The position the stream was asked to resume from. */
  readonly lastEventId: string;
  readonly reason: 'unknown_position' | 'history_trimmed' | 'replay_limit';
}

export interface DriverHandlers {
  message(message: StreamMessage): void;
  /** The id a stream that started without a position was given (its `ready` carries it). */
  position(id: string): void;
  gap(info: GapInfo): void;
  replaced(): void;
  status(status: ConnectionStatus): void;
  /** Renew the credentials; the driver reconnects once this settles. */
  authExpired(): Promise<void>;
}

export interface DriverOptions {
  /** Absolute stream URL, without a position. */
  readonly url: string;
  readonly withCredentials: boolean;
  /** Assumed until a `ready` gives the server's period. */
  readonly heartbeatMs: number;
  readonly watchdogFactor: number;
  readonly backoff: BackoffOptions;
  /** The id to resume after when a fresh `EventSource` has to be made. */
  position(): string | undefined;
}

/**
 * Names the stream uses for itself (control events carry no id, but `replaced`, and `ready` on a stream without a position)
 * and `EventSource`'s own `open` and `error`: the server refuses them at publish.
 */
export const RESERVED_EVENTS: ReadonlySet<string> = new Set(['ready', 'ping', 'gap', 'replaced', 'closing', 'open', 'error']);

function parse<T>(data: string): Partial<T> {
  try {
    const value: unknown = JSON.parse(data);
    return typeof value === 'object' && value !== null ? value : {};
  } catch {
    return {};
  }
}

export function withPosition(url: string, position: string | undefined): string {
  if (position === undefined) return url;
  const target = new URL(url);
  target.searchParams.set('lastEventId', position);
  return target.toString();
}

/**
 * Holds one `EventSource` at a time and keeps it alive:
 *
 * - the browser's own reconnect (it sends `Last-Event-ID`) is kept for a stream
 *   that was open; a second failure before `ready` comes here instead;
 * - a CLOSED `EventSource` (a refusal the browser treats as final) is probed to
 *   tell 401 from 503/429 from no answer, then reopened with
 *   `?lastEventId=<position>` after a jittered backoff;
 * - the watchdog reopens a stream that went silent;
 * - `replaced` stops everything until `restart()`.
 *
 * Every `EventSource` belongs to a generation; callbacks of an older one are ignored.
 */
export class StreamDriver {
  private source: EventSourceLike | undefined;
  private generation = 0;
  private readonly names = new Set<string>();
  private readonly watchdog: Watchdog;
  private readonly backoff: Backoff;
  private retryTimer: unknown;
  private running = false;
  /** `ready` arrived since the last error: the browser may reconnect on its own once. */
  private openedSinceError = false;
  private opens = 0;
  private current: ConnectionStatus = 'connecting';

  constructor(
    private readonly env: ClientEnvironment,
    private readonly options: DriverOptions,
    private readonly handlers: DriverHandlers,
  ) {
    this.watchdog = new Watchdog(env, () => this.onSilence(), options.heartbeatMs, options.watchdogFactor);
    this.backoff = new Backoff(() => env.random(), options.backoff);
  }

  get status(): ConnectionStatus {
    return this.current;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.open();
  }

  /** Reconnects now, whatever the state: "Use here" after `replaced`. */
  restart(): void {
    this.running = true;
    this.backoff.reset();
    this.open();
  }

  stop(status: 'closed' | 'replaced'): void {
    this.running = false;
    this.closeSource();
    this.clearRetry();
    this.setStatus(status);
  }

  /** Subscribes an event name on this and every later `EventSource`. */
  listen(name: string): void {
    if (this.names.has(name)) return;
    this.names.add(name);
    if (this.source) this.attach(this.source, this.generation, name);
  }

  private open(): void {
    this.closeSource();
    this.clearRetry();
    const generation = this.generation;
    const source = this.env.openEventSource(withPosition(this.options.url, this.options.position()), this.options.withCredentials);
    this.source = source;
    this.setStatus(this.opens++ === 0 ? 'connecting' : 'reconnecting');
    const on = (type: string, listener: (event: MessageEvent<string>) => void): void => {
      source.addEventListener(type, (event) => {
        if (generation === this.generation) listener(event);
      });
    };
    on('ready', (event) => {
      // Set only on a stream opened without a position; otherwise it is the browser's own last id.
      if (event.lastEventId !== '') this.handlers.position(event.lastEventId);
      const { heartbeatMs } = parse<{ heartbeatMs: number }>(event.data);
      if (typeof heartbeatMs === 'number') this.watchdog.setHeartbeat(heartbeatMs);
      this.watchdog.feed();
      this.openedSinceError = true;
      this.backoff.reset();
      this.setStatus('open');
    });
    on('ping', () => this.watchdog.feed());
    on('gap', (event) => {
      this.watchdog.feed();
      const info = parse<GapInfo>(event.data);
      this.handlers.gap({ lastEventId: info.lastEventId ?? '', reason: info.reason ?? 'unknown_position' });
    });
    on('replaced', () => {
      // Closing here, before the browser can reconnect with `replaced:<id>`
      // (which the server would answer 204), leaves no request at all.
      this.stop('replaced');
      this.handlers.replaced();
    });
    on('closing', (event) => this.onClosing(parse<{ reason: string }>(event.data).reason));
    on('error', () => this.onError(source));
    for (const name of this.names) this.attach(source, generation, name);
    // Armed from the start: it also catches a connect that never answers.
    this.watchdog.feed();
  }

  private attach(source: EventSourceLike, generation: number, name: string): void {
    source.addEventListener(name, (event) => {
      if (generation !== this.generation) return;
      this.watchdog.feed();
      this.handlers.message({ id: event.lastEventId, event: name, data: event.data });
    });
  }

  private onClosing(reason: string | undefined): void {
    this.watchdog.feed();
    if (reason !== 'token_expired') return; // draining, server_error: the browser reconnects after the `retry:` sent with it
    this.closeSource();
    this.renewCredentials();
  }

  private onError(source: EventSourceLike): void {
    if (source.readyState !== CLOSED && this.openedSinceError) {
      // The stream was cut after it opened; the browser reconnects by itself
      // after the server's jittered `retry:`, sending Last-Event-ID.
      this.openedSinceError = false;
      this.setStatus('reconnecting');
      return;
    }
    this.recover();
  }

  /** A refusal or repeated failure: find out why, then reopen after a backoff. */
  private recover(): void {
    this.closeSource();
    this.setStatus('reconnecting');
    const generation = this.generation;
    void probeStream(this.env, this.options.url, this.options.withCredentials).then((result) => {
      if (generation !== this.generation || !this.running) return;
      if (result.kind === 'unauthorized') {
        // The first 401 is renewed at once; a renewal that did not help backs off.
        const first = this.backoff.failures === 0;
        const delay = this.backoff.next();
        this.setStatus('unauthorized');
        this.schedule(first ? 0 : delay, () => this.renewCredentials());
        return;
      }
      let delay = this.backoff.next();
      if (result.kind === 'refused' && result.retryAfterMs !== undefined) {
        // Honour Retry-After, spread over another half of it.
        delay = Math.max(delay, result.retryAfterMs * (1 + this.env.random() / 2));
      }
      this.schedule(delay, () => this.open());
    });
  }

  private renewCredentials(): void {
    this.setStatus('unauthorized');
    const generation = this.generation;
    const resume = (): void => {
      if (generation === this.generation && this.running) this.open();
    };
    this.handlers.authExpired().then(resume, resume);
  }

  private onSilence(): void {
    this.closeSource();
    this.setStatus('reconnecting');
    this.schedule(this.backoff.next(), () => this.open());
  }

  private schedule(ms: number, action: () => void): void {
    this.clearRetry();
    this.retryTimer = this.env.setTimeout(() => {
      this.retryTimer = undefined;
      action();
    }, ms);
  }

  private clearRetry(): void {
    if (this.retryTimer === undefined) return;
    this.env.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  private closeSource(): void {
    this.generation++;
    this.watchdog.stop();
    this.source?.close();
    this.source = undefined;
  }

  private setStatus(status: ConnectionStatus): void {
    if (status === this.current) return;
    this.current = status;
    this.handlers.status(status);
  }
}
