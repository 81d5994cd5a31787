/**
 * Server-Sent Events framing (HTML Living Standard, "Server-sent events").
 * Every frame is built once as a string; the node encodes it once and writes the
 * same bytes to every recipient. Fields that could break framing are refused
 * here, never rewritten.
 */
import type { HeraldEvent } from './envelope';
import type { CloseReason, GapReason, TabPolicy } from './stream-terms';

/** Prefix of the id carried by `replaced`; a reconnect that presents it is told to stop. */
export const REPLACED_ID_PREFIX = 'replaced:';

export interface ReadyData {
  readonly connectionId: string;
  readonly nodeId: string;
  readonly policy: TabPolicy;
  readonly heartbeatMs: number;
}


const LINE_BREAK = /[\r\n]/;

function assertOneLine(field: string, value: string): void {
  if (LINE_BREAK.test(value)) throw new Error(`SSE ${field} must not contain CR or LF`);
}

/**
 * NEL, LS and PS are not line ends to SSE (only CR and LF are) and JSON keeps
 * them raw, but line-splitting readers (Python's `str.splitlines`, some log
 * shippers and proxies) cut a `data:` line there; the C0 characters they also
 * split on JSON escapes already. In JSON text these three can only stand
 * inside strings, where the `\uXXXX` escape is the same value.
 */
const UNICODE_LINE_BREAKS = /[\u0085\u2028\u2029]/g;

function escapeUnicodeLineBreaks(json: string): string {
  return json.replace(UNICODE_LINE_BREAKS, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * A notification. `id` sets the browser's `lastEventId`, which drives replay on
 * reconnect. `data` is JSON text, from the envelope or from history and the bus.
 */
export function frameEvent(event: Pick<HeraldEvent, 'id' | 'event' | 'data'>): string {
  assertOneLine('id', event.id);
  assertOneLine('event', event.event);
  assertOneLine('data', event.data);
  return `id: ${event.id}\nevent: ${event.event}\ndata: ${escapeUnicodeLineBreaks(event.data)}\n\n`;
}

/** How long the browser waits before reconnecting; jittered by the caller so a fleet spreads out. */
export function frameRetry(ms: number): string {
  if (!Number.isFinite(ms)) throw new RangeError(`retry must be a finite number of ms, got ${ms}`);
  return `retry: ${Math.max(0, Math.round(ms))}\n\n`;
}

// Control events carry no `id:` line, so they never move the browser's
// lastEventId: replay resumes from the last notification actually received.
// The one exception is `ready` on a stream that starts without a position.
function frameControl(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${escapeUnicodeLineBreaks(JSON.stringify(data))}\n\n`;
}

/**
 * `position`, for a stream that starts without one, becomes the browser's
 * lastEventId: were the stream cut before its first event, the reconnect would
 * otherwise carry no Last-Event-ID and lose what was published meanwhile.
 */
export function frameReady(data: ReadyData, position?: string): string {
  if (position === undefined) return frameControl('ready', data);
  assertOneLine('id', position);
  return `id: ${position}\n${frameControl('ready', data)}`;
}

/**
 * `EventSource` ignores an event with no data (spec: "if the data buffer is an
 * empty string … return"), so the ping carries `{}` to be observable by a
 * client-side watchdog.
 */
export const PING_FRAME = frameControl('ping', {});

export function frameGap(lastEventId: string, reason: GapReason): string {
  return frameControl('gap', { lastEventId, reason });
}

/**
 * The old tab's final event. Its id is what the browser sends back as
 * `Last-Event-ID` if it reconnects, and the node answers that with 204.
 */
export function frameReplaced(connectionId: string): string {
  return `id: ${REPLACED_ID_PREFIX}${connectionId}\nevent: replaced\ndata: ${escapeUnicodeLineBreaks(JSON.stringify({ connectionId }))}\n\n`;
}

export function frameClosing(reason: CloseReason, retryMs?: number): string {
  const retry = retryMs === undefined ? '' : frameRetry(retryMs);
  return retry + frameControl('closing', { reason });
}
