/**
 * A tab that keeps its stream open as the Herald client does: when a stream
 * ends it reconnects after the `retry:` it was given, with `Last-Event-ID`,
 * and a refusal (a 503 while the node cannot claim) is retried too, where a
 * bare `EventSource` would give up. Each connection is kept, so a test can
 * look at what each one carried. It stops on a 204 or `close()`.
 */
import { openStream, type SseEvent, type SseStream } from './sse-client';

export interface Gap {
  readonly lastEventId: string;
  readonly reason: string;
}

/** A refused connect is tried again after this; a stream that gave no `retry:` too. */
const REFUSED_RETRY_MS = 200;

export class ReconnectingTab {
  readonly connections: SseStream[] = [];
  /** Statuses of refused connects, in order. */
  readonly refusals: number[] = [];
  /** What the last stream told it before it ended, as EventSource keeps it. */
  lastEventId: string | undefined;
  private stopped = false;
  private readonly loop: Promise<void>;

  constructor(
    private readonly baseUrl: string,
    private readonly token: string,
    readonly user: string,
  ) {
    this.loop = this.run();
  }

  /** Notification ids of every connection, in arrival order, repeats included. */
  ids(): string[] {
    return this.connections.flatMap((c) => c.notifications().map((e) => e.id ?? ''));
  }

  /** Ids that one connection carried more than once: a stream must never repeat an id. */
  repeatedWithinAConnection(): string[] {
    return this.connections.flatMap((c) => {
      const ids = c.notifications().map((e) => e.id ?? '');
      return ids.filter((id, i) => ids.indexOf(id) !== i);
    });
  }

  events(name: string): SseEvent[] {
    return this.connections.flatMap((c) => c.events.filter((e) => e.event === name));
  }

  gaps(): Gap[] {
    return this.events('gap').map((e) => JSON.parse(e.data) as Gap);
  }

  closings(): string[] {
    return this.events('closing').map((e) => (JSON.parse(e.data) as { reason: string }).reason);
  }

  /** Streams that have ended, of all it opened. */
  ended(): number {
    return this.connections.filter((c) => c.ended).length;
  }

  async close(): Promise<void> {
    this.stopped = true;
    this.connections.at(-1)?.close();
    await this.loop;
  }

  /** A call, not the field: the loop's `await`s let close() change it, which narrowing would not see. */
  private isStopped(): boolean {
    return this.stopped;
  }

  private async run(): Promise<void> {
    while (!this.isStopped()) {
      const label = `${this.user} connection ${this.connections.length + 1}`;
      const stream = await openStream(this.baseUrl, {
        token: this.token,
        label,
        ...(this.lastEventId === undefined ? {} : { lastEventId: this.lastEventId }),
      }).catch(() => undefined);
      if (stream === undefined || stream.status !== 200) {
        if (stream?.status === 204) return;
        if (stream !== undefined) this.refusals.push(stream.status);
        await sleep(REFUSED_RETRY_MS);
        continue;
      }
      this.connections.push(stream);
      if (this.isStopped()) stream.close();
      await stream.closed(24 * 3600 * 1000).catch(() => undefined);
      const withId = stream.events.filter((e) => e.id !== undefined);
      if (withId.length > 0) this.lastEventId = withId.at(-1)!.id;
      if (!this.isStopped()) await sleep(stream.retry ?? REFUSED_RETRY_MS);
    }
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
