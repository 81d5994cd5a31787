/**
 * A browser tab's `EventSource` on `/events` (the `eventsource` package,
 * which reconnects with `Last-Event-ID` as a browser does), with the token in
 * a header, recording what each of its connections received.
 */
import { EventSource } from 'eventsource';

export class BrowserTab {
  /** Every notification id received, in arrival order, repeats included. */
  readonly ids: string[] = [];
  /** Per connection (one per `ready`): the notification ids it carried. */
  readonly connections: string[][] = [];
  /** The node of each `ready`: one entry per (re)connection. */
  readonly landings: string[] = [];
  /** The `gap` events, parsed. */
  readonly gaps: Array<{ lastEventId: string; reason: string }> = [];
  /** The reasons of the `closing` events. */
  readonly closings: string[] = [];
  private readonly source: EventSource;

  /** `events`: the notification names to record. */
  constructor(
    baseUrl: string,
    token: string,
    readonly user: string,
    events: readonly string[],
  ) {
    this.source = new EventSource(new URL('/events', baseUrl), {
      fetch: (url, init) => fetch(url, { ...init, headers: { ...init.headers, Authorization: `Bearer ${token}` } }),
    });
    this.source.addEventListener('ready', (e) => {
      this.landings.push((JSON.parse(String(e.data)) as { nodeId: string }).nodeId);
      this.connections.push([]);
    });
    this.source.addEventListener('gap', (e) => this.gaps.push(JSON.parse(String(e.data)) as { lastEventId: string; reason: string }));
    this.source.addEventListener('closing', (e) => this.closings.push((JSON.parse(String(e.data)) as { reason: string }).reason));
    for (const name of events) {
      this.source.addEventListener(name, (e) => {
        this.ids.push(e.lastEventId);
        this.connections.at(-1)?.push(e.lastEventId);
      });
    }
  }

  /** What the app keeps: each id once (the Herald client and the demo drop ids they have seen). */
  deduplicated(): string[] {
    return [...new Set(this.ids)];
  }

  /** Ids that one connection carried more than once: a stream must never repeat an id. */
  repeatedWithinAConnection(): string[] {
    return this.connections.flatMap((ids) => ids.filter((id, i) => ids.indexOf(id) !== i));
  }

  close(): void {
    this.source.close();
  }
}
