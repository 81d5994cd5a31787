import { request } from 'node:http';
import { createParser } from 'eventsource-parser';
import { withDeadline } from '../../scripts/fleet/deadline';

/** One thing seen on a stream, in arrival order, with the local time it was parsed. */
export type Recorded =
  | { readonly kind: 'retry'; readonly ms: number; readonly atMs: number }
  | { readonly kind: 'event'; readonly event: string; readonly id: string | undefined; readonly data: string; readonly atMs: number }
  | { readonly kind: 'end'; readonly atMs: number };

/**
 * An SSE stream recorded as a timeline: `retry:` fields as items of their own
 * (so a test can tell which `retry:` came with which event), events, and the
 * end, each stamped with `Date.now()`. For tests about timing and framing,
 * such as the drain; `SseStream` (sse-client.ts) is the everyday client.
 */
export class RecordedStream {
  readonly items: Recorded[] = [];
  private waiters: Array<() => void> = [];

  constructor(
    readonly label: string,
    private readonly destroy: () => void,
  ) {}

  /** Closes the stream from the client side. */
  close(): void {
    this.destroy();
  }

  get ended(): boolean {
    return this.items.some((i) => i.kind === 'end');
  }

  push(item: Recorded): void {
    if (this.ended) return;
    this.items.push(item);
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /** Waits until `predicate` holds for the timeline. */
  async until(predicate: (items: readonly Recorded[]) => boolean, what: string, timeoutMs = 3000): Promise<void> {
    await withDeadline(
      (async () => {
        while (!predicate(this.items)) {
          if (this.ended) throw new Error(`${this.label} ended before ${what}`);
          await new Promise<void>((resolve) => this.waiters.push(resolve));
        }
      })(),
      timeoutMs,
      `${what} on ${this.label}`,
    );
  }

  /** Resolves when the stream ends (the server closed it). */
  async closed(timeoutMs = 3000): Promise<void> {
    await withDeadline(
      (async () => {
        while (!this.ended) await new Promise<void>((resolve) => this.waiters.push(resolve));
      })(),
      timeoutMs,
      `the end of ${this.label}`,
    );
  }
}

/** Opens `GET /events` with a bearer token; resolves on a 200 event stream, rejects otherwise. */
export function openRecordedStream(baseUrl: string, token: string, label: string): Promise<RecordedStream> {
  return withDeadline(
    new Promise<RecordedStream>((resolve, reject) => {
      const req = request(new URL('/events', baseUrl), { headers: { Accept: 'text/event-stream', Authorization: `Bearer ${token}` }, agent: false }, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(new Error(`${label}: GET /events answered ${res.statusCode}`));
          return;
        }
        const stream = new RecordedStream(label, () => res.destroy());
        const parser = createParser({
          onEvent: (m) => stream.push({ kind: 'event', event: m.event ?? 'message', id: m.id, data: m.data, atMs: Date.now() }),
          onRetry: (ms) => stream.push({ kind: 'retry', ms, atMs: Date.now() }),
        });
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => parser.feed(chunk));
        const end = (): void => stream.push({ kind: 'end', atMs: Date.now() });
        res.on('end', end);
        res.on('close', end);
        res.on('error', end);
        resolve(stream);
      });
      req.on('error', reject);
      req.end();
    }),
    5000,
    `the response to GET /events on ${label}`,
  );
}
