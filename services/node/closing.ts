import { frameClosing } from '../protocol/sse-frame';
import type { CloseReason } from '../protocol/stream-terms';
import type { Connection } from './connection';
import { chunk } from './http-stream-sink';
import { jittered } from './jitter';

/** Why the server itself ends a stream (not the client leaving, nor a newer tab taking over). */
export type ServerCloseReason = Exclude<CloseReason, 'replaced' | 'client_closed' | 'slow_consumer'>;

/** How soon a tab told to `reclaim` its place reconnects: at once, give or take. */
export const RECLAIM_RETRY_MS = 200;

/** The last frame of a stream the server ends: `closing`, after a jittered `retry:` around `retryMs`. */
export function closingFrame(reason: ServerCloseReason, retryMs: number): string {
  // A reclaiming tab should come back at once; a drained fleet spread out.
  const ms = reason === 'draining' ? jittered(retryMs, 1) : reason === 'reclaim' ? jittered(RECLAIM_RETRY_MS, 0.5) : jittered(retryMs, 0.5);
  return frameClosing(reason, ms);
}

/** Ends a stream from the server's side, with `closingFrame` as its last frame. */
export function closeWith(connection: Connection, reason: ServerCloseReason, retryMs: number): void {
  connection.close(reason, chunk(closingFrame(reason, retryMs)));
}
