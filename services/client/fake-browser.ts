/**
 * Fakes of the browser APIs the client uses, for unit tests (not bundled).
 * Timers are the global ones, so `vi.useFakeTimers()` drives them.
 */
import { CLOSED, CONNECTING, OPEN, type ChannelLike, type ClientEnvironment, type EventSourceLike, type LockManagerLike } from './environment';

type Listener = (event: MessageEvent<string>) => void;

/** An `EventSource` the test drives: `emit` what the server would send, `fail` the connection. */
export class FakeEventSource implements EventSourceLike {
  readyState = CONNECTING;
  /** Like the browser's: set by events with an id, inherited by events without one. */
  private lastId = '';
  private readonly listeners = new Map<string, Listener[]>();

  constructor(
    readonly url: string,
    readonly withCredentials: boolean,
  ) {}

  addEventListener(type: string, listener: Listener): void {
    const list = this.listeners.get(type) ?? [];
    list.push(listener);
    this.listeners.set(type, list);
  }

  close(): void {
    this.readyState = CLOSED;
  }

  get closed(): boolean {
    return this.readyState === CLOSED;
  }

  /** The `lastEventId` query parameter this stream was opened with. */
  get position(): string | null {
    return new URL(this.url).searchParams.get('lastEventId');
  }

  emit(type: string, data: unknown, id?: string): void {
    if (this.readyState === CLOSED) throw new Error(`emit(${type}) on a closed EventSource`);
    this.readyState = OPEN;
    if (id !== undefined) this.lastId = id;
    const event = { type, data: typeof data === 'string' ? data : JSON.stringify(data), lastEventId: this.lastId } as MessageEvent<string>;
    for (const listener of this.listeners.get(type) ?? []) listener(event);
  }

  /** `position`: the start position a server gives a stream opened without one. */
  ready(heartbeatMs = 15_000, position?: string): void {
    this.emit('ready', { connectionId: 'c1', nodeId: 'n1', policy: 'single', heartbeatMs }, position);
  }

  /** `error` as the browser fires it: CONNECTING when it will retry itself, CLOSED when it gave up. */
  fail(readyState: typeof CONNECTING | typeof CLOSED): void {
    this.readyState = readyState;
    for (const listener of this.listeners.get('error') ?? []) listener({ type: 'error' } as MessageEvent<string>);
  }
}

/** The Web Locks API's queue: one holder per name, the next waiter granted when it releases. */
export class FakeLocks implements LockManagerLike {
  private readonly queues = new Map<string, Array<() => void>>();
  private readonly held = new Set<string>();

  request(name: string, options: { signal: AbortSignal }, callback: () => Promise<void>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const grant = (): void => {
        this.held.add(name);
        void callback().finally(() => {
          this.held.delete(name);
          resolve();
          this.queues.get(name)?.shift()?.();
        });
      };
      options.signal.addEventListener('abort', () => {
        const queue = this.queues.get(name) ?? [];
        const at = queue.indexOf(grant);
        if (at >= 0) {
          queue.splice(at, 1);
          reject(new DOMException('aborted', 'AbortError'));
        }
      });
      if (this.held.has(name)) {
        const queue = this.queues.get(name) ?? [];
        queue.push(grant);
        this.queues.set(name, queue);
      } else {
        queueMicrotask(grant);
        this.held.add(name);
      }
    });
  }
}

/** BroadcastChannels of one origin: a message reaches every other open channel of the same name, asynchronously. */
export class FakeChannels {
  private readonly open = new Set<{ name: string; channel: ChannelLike }>();
  readonly posted: unknown[] = [];

  readonly openChannel = (name: string): ChannelLike => {
    const entry = {
      name,
      channel: {
        onmessage: null as ((event: MessageEvent) => void) | null,
        postMessage: (message: unknown) => {
          this.posted.push(message);
          const copy: unknown = structuredClone(message);
          for (const other of this.open) {
            if (other !== entry && other.name === name) queueMicrotask(() => other.channel.onmessage?.({ data: copy } as MessageEvent));
          }
        },
        close: () => this.open.delete(entry),
      },
    };
    this.open.add(entry);
    return entry.channel;
  };
}

export interface FakeBrowser {
  readonly env: ClientEnvironment;
  /** Every EventSource made, in order. */
  readonly sources: FakeEventSource[];
  /** Every probe `fetch`: its URL and init. */
  readonly probes: Array<{ url: string; init: RequestInit }>;
  /** What the next probes answer, in order; then `200`. */
  readonly answers: Array<Response | Error>;
  latest(): FakeEventSource;
}

export interface FakeBrowserOptions {
  readonly locks?: FakeLocks;
  readonly channels?: FakeChannels;
  readonly random?: () => number;
}

export function fakeBrowser(options: FakeBrowserOptions = {}): FakeBrowser {
  const sources: FakeEventSource[] = [];
  const probes: FakeBrowser['probes'] = [];
  const answers: FakeBrowser['answers'] = [];
  const env: ClientEnvironment = {
    baseUrl: 'https://app.example/inbox',
    openEventSource: (url, withCredentials) => {
      const source = new FakeEventSource(url, withCredentials);
      sources.push(source);
      return source;
    },
    fetch: (url, init) => {
      probes.push({ url, init });
      const answer = answers.shift() ?? new Response('', { status: 200 });
      return answer instanceof Error ? Promise.reject(answer) : Promise.resolve(answer);
    },
    setTimeout: (callback, ms) => setTimeout(callback, ms),
    clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
    random: options.random ?? (() => 0.5),
    locks: options.locks,
    openChannel: options.channels?.openChannel,
  };
  return {
    env,
    sources,
    probes,
    answers,
    latest() {
      const source = sources.at(-1);
      if (!source) throw new Error('no EventSource was opened');
      return source;
    },
  };
}
