import type { ChannelLike, ClientEnvironment, LockManagerLike } from './environment';
import type { ConnectionStatus, GapInfo, StreamMessage } from './stream-driver';

/** What the tabs of one origin tell each other about one stream URL. */
export type GroupMessage =
  /** leader → all: a notification, once, after the leader's dedupe. */
  | ({ readonly type: 'event' } & StreamMessage)
  | { readonly type: 'gap'; readonly info: GapInfo }
  /** leader → all: the stream's position when no event gave one (its start, or the group's last id for a new tab). */
  | { readonly type: 'position'; readonly id: string }
  /** leader → all: the shared stream's state (`replaced` included). */
  | { readonly type: 'status'; readonly status: ConnectionStatus }
  /** any → leader: "Use here" was pressed in a follower. */
  | { readonly type: 'takeover' }
  /** any → all: event names some tab listens to; the leader subscribes them all. */
  | { readonly type: 'names'; readonly names: readonly string[] }
  /** a new tab → all: answer with names (and the leader with its status). */
  | { readonly type: 'hello' };

const TYPES: ReadonlySet<string> = new Set(['event', 'gap', 'position', 'status', 'takeover', 'names', 'hello']);

function isGroupMessage(value: unknown): value is GroupMessage {
  return typeof value === 'object' && value !== null && TYPES.has(String((value as { type?: unknown }).type));
}

/**
 * The tabs of one origin that share a stream. Leadership is a Web Lock: one tab
 * holds it, the others wait in its queue, and the browser hands it to the next
 * one as soon as the holder releases it or its document goes away (a closed or
 * crashed tab). Messages go over a BroadcastChannel, which never echoes to the
 * sender.
 */
export class TabGroup {
  private readonly channel: ChannelLike;
  private readonly abort = new AbortController();
  private releaseLock: (() => void) | undefined;
  private left = false;

  constructor(
    private readonly locks: LockManagerLike,
    openChannel: NonNullable<ClientEnvironment['openChannel']>,
    private readonly name: string,
    onMessage: (message: GroupMessage) => void,
  ) {
    this.channel = openChannel(name);
    this.channel.onmessage = (event) => {
      if (!this.left && isGroupMessage(event.data)) onMessage(event.data);
    };
  }

  /** Queues for leadership; `onLeader` runs once this tab holds the lock. */
  elect(onLeader: () => void): void {
    this.locks
      .request(this.name, { signal: this.abort.signal }, () => {
        if (this.left) return Promise.resolve();
        onLeader();
        return new Promise<void>((resolve) => (this.releaseLock = resolve));
      })
      // An aborted request (the tab left while waiting) rejects with AbortError.
      .catch(() => undefined);
  }

  post(message: GroupMessage): void {
    if (!this.left) this.channel.postMessage(message);
  }

  /** Leaves the group: gives up leadership or its place in the queue. */
  leave(): void {
    if (this.left) return;
    this.left = true;
    this.abort.abort();
    this.releaseLock?.();
    this.channel.close();
  }
}
