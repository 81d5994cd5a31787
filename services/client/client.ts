import type { BackoffOptions } from './backoff';
import { DedupeWindow } from './dedupe-window';
import { browserEnvironment, type ClientEnvironment } from './environment';
import { RESERVED_EVENTS, StreamDriver, type ConnectionStatus, type GapInfo, type StreamMessage } from './stream-driver';
import { TabGroup, type GroupMessage } from './tab-group';

/** `solo`: this tab holds its own stream; `leader`/`follower`: shared-tab mode. */
export type TabRole = 'solo' | 'leader' | 'follower';

/** Event name → the type of its `data` (a type or an interface). Without one, every name is allowed and `data` is `unknown`. */
export type EventMap = Record<string, unknown>;

export interface EventMeta {
  readonly id: string;
  readonly event: string;
}

export type EventHandler<T> = (data: T, meta: EventMeta) => void;

export interface HeraldClientOptions {
  /** The stream, absolute or relative to the page. @default '/events' */
  readonly url?: string;
  /** Send cookies to a stream on another origin (CORS with credentials). @default false */
  readonly withCredentials?: boolean;
  /** One stream for all of this origin's tabs (Web Locks + BroadcastChannel). @default false */
  readonly share?: boolean;
  /** Resume after this id on the first connect (e.g. one the app kept). */
  readonly lastEventId?: string;
  /** Names to subscribe from the start; `on()` adds more. */
  readonly events?: readonly string[];
  /** How many recent ids are remembered to drop repeats. @default 1000 */
  readonly dedupeWindow?: number;
  /** Heartbeat period assumed until the stream's `ready` gives it. @default 15000 */
  readonly heartbeatMs?: number;
  /** Heartbeat periods of silence after which the stream is reopened. @default 2.5 */
  readonly watchdogFactor?: number;
  /** Reconnect delays. @default { initialMs: 1000, maxMs: 30000 } */
  readonly backoff?: BackoffOptions;
  /** The credentials were refused (401) or expired: renew the cookie; the client resumes when this settles. */
  readonly onAuthExpired?: () => void | Promise<void>;
  /** Another tab (or device) of this user took over; show "Use here", which calls `takeOver()`. */
  readonly onReplaced?: () => void;
  /** The resume position was unknown or too old: refetch the app's state. */
  readonly onGap?: (info: GapInfo) => void;
  readonly onStatus?: (status: ConnectionStatus, role: TabRole) => void;
  /** Test seam: the browser APIs the client uses. */
  readonly environment?: ClientEnvironment;
}

export interface HeraldClient<E extends object = EventMap> {
  /** Calls `handler` with each new event of that name, parsed; returns an unsubscribe function. */
  on<K extends keyof E & string>(event: K, handler: EventHandler<E[K]>): () => void;
  /** Reconnects and becomes the active tab again ("Use here"). */
  takeOver(): void;
  /** Closes the stream for good (and hands leadership to another tab). */
  close(): void;
  readonly status: ConnectionStatus;
  readonly role: TabRole;
  /** The id of the last new event, where a fresh stream resumes. */
  readonly lastEventId: string | undefined;
}

/** Tabs of one origin share a stream only with tabs that use the same URL and protocol version. */
const GROUP_PREFIX = 'herald/1 ';

export function createHeraldClient<E extends object = EventMap>(options: HeraldClientOptions = {}): HeraldClient<E> {
  return new Client<E>(options);
}

class Client<E extends object> implements HeraldClient<E> {
  status: ConnectionStatus = 'connecting';
  role: TabRole = 'solo';
  lastEventId: string | undefined;
  private readonly env: ClientEnvironment;
  private readonly url: string;
  private readonly handlers = new Map<string, Set<EventHandler<never>>>();
  /** Names this tab listens to, and (shared-tab mode) those other tabs announced. */
  private readonly names = new Set<string>();
  private readonly seen: DedupeWindow;
  private driver: StreamDriver | undefined;
  private group: TabGroup | undefined;
  private closed = false;

  constructor(private readonly options: HeraldClientOptions) {
    this.env = options.environment ?? browserEnvironment();
    this.url = new URL(options.url ?? '/events', this.env.baseUrl).toString();
    this.seen = new DedupeWindow(options.dedupeWindow ?? 1000);
    this.lastEventId = options.lastEventId;
    for (const name of options.events ?? []) this.addName(checkName(name));
    const { locks, openChannel } = this.env;
    if (options.share === true && locks && openChannel) {
      this.role = 'follower';
      this.group = new TabGroup(locks, openChannel, GROUP_PREFIX + this.url, (message) => this.onGroupMessage(message));
      this.group.post({ type: 'hello' });
      this.group.post({ type: 'names', names: [...this.names] });
      this.group.elect(() => this.lead());
    } else {
      this.lead();
    }
  }

  on<K extends keyof E & string>(event: K, handler: EventHandler<E[K]>): () => void {
    checkName(event);
    let set = this.handlers.get(event);
    if (!set) this.handlers.set(event, (set = new Set()));
    set.add(handler);
    if (!this.names.has(event)) {
      this.addName(event);
      this.group?.post({ type: 'names', names: [event] });
    }
    return () => set.delete(handler);
  }

  takeOver(): void {
    if (this.closed) return;
    if (this.driver) this.driver.restart();
    else this.group?.post({ type: 'takeover' });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.driver?.stop('closed');
    this.group?.leave();
    this.setStatus('closed');
  }

  /** Solo, or elected: this tab holds the stream. */
  private lead(): void {
    if (this.closed) return;
    if (this.group) {
      this.role = 'leader';
      this.options.onStatus?.(this.status, this.role);
    }
    this.driver = new StreamDriver(
      this.env,
      {
        url: this.url,
        withCredentials: this.options.withCredentials ?? false,
        heartbeatMs: this.options.heartbeatMs ?? 15_000,
        watchdogFactor: this.options.watchdogFactor ?? 2.5,
        backoff: this.options.backoff ?? {},
        position: () => this.lastEventId,
      },
      {
        message: (message) => this.receive(message),
        position: (id) => {
          // A later tab that leads after this one resumes from here, even if no event ever came.
          this.lastEventId = id;
          this.group?.post({ type: 'position', id });
        },
        gap: (info) => {
          this.group?.post({ type: 'gap', info });
          this.options.onGap?.(info);
        },
        // Followers learn it from the `replaced` status, which the driver reports first.
        replaced: () => this.options.onReplaced?.(),
        status: (status) => {
          // This tab closing is its own affair: the group's stream passes to the next leader.
          if (status !== 'closed') this.group?.post({ type: 'status', status });
          this.setStatus(status);
        },
        authExpired: async () => {
          await this.options.onAuthExpired?.();
        },
      },
    );
    for (const name of this.names) this.driver.listen(name);
    // A group whose stream was displaced stays displaced when its leader tab
    // closes: the next leader waits for "Use here" rather than taking back the account.
    if (this.status !== 'replaced') this.driver.start();
    else this.setStatus('replaced');
  }

  private onGroupMessage(message: GroupMessage): void {
    const leading = this.driver !== undefined;
    switch (message.type) {
      case 'event':
        if (!leading) this.receive({ id: message.id, event: message.event, data: message.data });
        break;
      case 'gap':
        if (!leading) this.options.onGap?.(message.info);
        break;
      case 'position':
        if (!leading && typeof message.id === 'string') this.lastEventId = message.id;
        break;
      case 'status':
        if (leading || message.status === this.status) break;
        this.setStatus(message.status);
        // Also when this tab joins a group that was already displaced: it shows "Use here" too.
        if (message.status === 'replaced') this.options.onReplaced?.();
        break;
      case 'takeover':
        if (leading) this.takeOver();
        break;
      case 'names':
        for (const name of message.names) if (typeof name === 'string' && !RESERVED_EVENTS.has(name)) this.addName(name);
        break;
      case 'hello':
        this.group?.post({ type: 'names', names: [...this.names] });
        if (leading) {
          this.group?.post({ type: 'status', status: this.status });
          // A tab that joins after the last event would otherwise lead from nowhere.
          if (this.lastEventId !== undefined) this.group?.post({ type: 'position', id: this.lastEventId });
        }
        break;
    }
  }

  private addName(name: string): void {
    this.names.add(name);
    this.driver?.listen(name);
  }

  /** Every event passes here once per tab: dropped if seen, else it moves the position and reaches the handlers. */
  private receive(message: StreamMessage): void {
    if (message.id === '' || !this.seen.admit(message.id)) return;
    this.lastEventId = message.id;
    if (this.driver) this.group?.post({ type: 'event', ...message });
    const handlers = this.handlers.get(message.event);
    if (!handlers || handlers.size === 0) return;
    const data = parseData(message.data);
    const meta: EventMeta = { id: message.id, event: message.event };
    for (const handler of [...handlers]) {
      try {
        (handler as EventHandler<unknown>)(data, meta);
      } catch (error) {
        // One failing handler must not starve the others; report it as uncaught.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }

  private setStatus(status: ConnectionStatus): void {
    if (status === this.status) return;
    this.status = status;
    this.options.onStatus?.(status, this.role);
  }
}

function checkName(name: string): string {
  if (RESERVED_EVENTS.has(name)) throw new TypeError(`"${name}" is a control event of the stream; use the client's hooks instead`);
  return name;
}

function parseData(data: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    return data;
  }
}
