/**
 * Protocol limits. Each is enforced in exactly one place and tested at its
 * boundary. Values that operators may lower live in the node's config instead.
 */

/** Event names: short, safe in an SSE `event:` line, usable as a JS property. */
export const EVENT_NAME_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;

/**
 * Names the stream itself uses, and the `EventSource` built-ins `open` and
 * `error`: an app listening for `error` would otherwise mistake a notification for
 * a transport failure. `message` stays allowed; it is the natural name for a chat
 * message and has no control meaning.
 */
export const RESERVED_EVENT_NAMES: ReadonlySet<string> = new Set([
  'ready',
  'ping',
  'gap',
  'replaced',
  'closing',
  'open',
  'error',
]);

/** Default cap on the serialized `data` of one event (UTF-8 bytes). */
export const DEFAULT_MAX_DATA_BYTES = 64 * 1024;

/**
 * Upper bound for the configurable data cap. SNS carries at most 256 KiB per
 * message including attributes and our routing fields; 200 KiB leaves room.
 */
export const MAX_DATA_BYTES_CEILING = 200 * 1024;

/**
 * Room in a publish body beyond the data: ids, names and recipient lists. 8 MiB
 * holds a full batch addressed to about 1,000 users each with ids of ~80 bytes.
 */
export const ENVELOPES_ALLOWANCE_BYTES = 8 * 1024 * 1024;

/** Largest `POST /publish` body: a full batch of maximum-size data plus the allowance. */
export function maxPublishBodyBytes(maxDataBytes: number): number {
  return MAX_BATCH * maxDataBytes + ENVELOPES_ALLOWANCE_BYTES;
}

/**
 * How far ahead of this clock a publisher-supplied id may be. An id from the
 * future becomes a tab's replay position and would hide every event published
 * before that instant; servers kept in sync by NTP are well inside this.
 */
export const MAX_ID_CLOCK_SKEW_MS = 10_000;

/**
 * How far behind this clock a publisher-supplied id may be: 24 hours. An id
 * becomes the position of every tab it reaches; one far in the past moves
 * them back, and a reconnect from it (once the event is gone from history)
 * replays everything since then, or a gap. 24 hours is as far back as the
 * DynamoDB and Redis histories vouch for a position, and covers a publisher's
 * retries with the same ids (an async Lambda's retries stop after 6 hours).
 */
export const MAX_ID_AGE_MS = 24 * 3600 * 1000;

export const MAX_RECIPIENTS = 1000;
export const MAX_USER_ID_LENGTH = 128;
export const MAX_BATCH = 100;

/** Longest replay retention a publisher may ask for: 7 days. */
export const MAX_TTL_SECONDS = 7 * 24 * 3600;
