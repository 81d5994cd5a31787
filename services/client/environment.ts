/**
 * What the client needs from the browser, as one object: the real one comes
 * from `browserEnvironment()`, unit tests pass fakes (EventSource, timers,
 * Web Locks, BroadcastChannel) and drive them by hand.
 */

/** `EventSource.readyState` values (HTML spec, "The EventSource interface"). */
export const CONNECTING = 0;
export const OPEN = 1;
export const CLOSED = 2;

/** The parts of `EventSource` the client uses. */
export interface EventSourceLike {
  readonly readyState: number;
  addEventListener(type: string, listener: (event: MessageEvent<string>) => void): void;
  close(): void;
}

/** The parts of the Web Locks API's `LockManager` the client uses. */
export interface LockManagerLike {
  request(name: string, options: { signal: AbortSignal }, callback: () => Promise<void>): Promise<void>;
}

/** The parts of `BroadcastChannel` the client uses. */
export interface ChannelLike {
  postMessage(message: unknown): void;
  onmessage: ((event: MessageEvent) => void) | null;
  close(): void;
}

export interface ClientEnvironment {
  /** The page's address, against which a relative stream URL is resolved. */
  readonly baseUrl: string | undefined;
  openEventSource(url: string, withCredentials: boolean): EventSourceLike;
  fetch(url: string, init: RequestInit): Promise<Response>;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  random(): number;
  /** Absent outside secure contexts (the Web Locks API is [SecureContext]); shared-tab mode then falls back to one stream per tab. */
  readonly locks: LockManagerLike | undefined;
  readonly openChannel: ((name: string) => ChannelLike) | undefined;
}

export function browserEnvironment(): ClientEnvironment {
  const scope: Partial<WindowOrWorkerGlobalScope & { location: Location; navigator: Navigator }> = globalThis;
  const navigator = scope.navigator;
  const locks = navigator && 'locks' in navigator ? navigator.locks : undefined;
  return {
    baseUrl: scope.location?.href,
    openEventSource: (url, withCredentials) => new EventSource(url, { withCredentials }),
    fetch: (url, init) => fetch(url, init),
    setTimeout: (callback, ms) => setTimeout(callback, ms),
    clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
    random: Math.random,
    locks: locks && {
      request: (name, options, callback) => locks.request(name, options, callback),
    },
    openChannel: typeof BroadcastChannel === 'function' ? (name) => new BroadcastChannel(name) : undefined,
  };
}
