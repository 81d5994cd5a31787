/**
 * The one parser of each notification field, shared by every way a notification
 * arrives: a publish envelope (`POST /publish`, the Lambda, the library) and a
 * deliver message read from the bus. Two copies had drifted — a reserved name
 * was `event_name_invalid` on the bus but `event_name_reserved` at publish, too
 * many users `recipients_invalid` vs `too_many_recipients`, and only publish
 * removed repeated users — so a bad field got a different answer depending on
 * its path. Each parser refuses with a stable code and `details.field`; none repairs.
 */
import type { Recipients } from './envelope';
import { HeraldError, type ErrorCode } from './errors';
import { eventIdTimeMs, isEventId } from './event-id';
import { EVENT_NAME_PATTERN, MAX_ID_AGE_MS, MAX_ID_CLOCK_SKEW_MS, MAX_RECIPIENTS, MAX_TTL_SECONDS, MAX_USER_ID_LENGTH, RESERVED_EVENT_NAMES } from './limits';
import { isWellFormedUtf16, utf8Length } from './utf8';

// Control characters (C0, DEL, C1) are exactly what this refuses: they corrupt logs and storage keys.
// eslint-disable-next-line no-control-regex
const USER_ID_PATTERN = /^[^\u0000-\u001f\u007f-\u009f]+$/;

function invalid(code: ErrorCode, message: string, field: string): HeraldError {
  return new HeraldError(code, message, { field });
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Refuses the first key of `input` not in `allowed`, with `envelope_invalid` naming it. */
export function refuseUnknownFields(input: Record<string, unknown>, allowed: ReadonlySet<string>): void {
  for (const key of Object.keys(input)) {
    if (!allowed.has(key)) throw invalid('envelope_invalid', `unknown field "${key}"`, key);
  }
}

/**
 * Runs `parse` for item `index` of a list, adding that index to a refusal: a
 * publish batch and a multi-event bus message point at the offending item alike.
 */
export function atIndex<T>(index: number, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof HeraldError) throw new HeraldError(error.code, error.message, { ...error.details, index });
    throw error;
  }
}

/** 1-128 UTF-16 units, no control characters, and well-formed: no unpaired surrogate. */
export function isValidUserId(value: unknown): value is string {
  return typeof value === 'string' && value.length <= MAX_USER_ID_LENGTH && USER_ID_PATTERN.test(value) && isWellFormedUtf16(value);
}

const USER_ID_RULE = `user ids are strings of 1-${MAX_USER_ID_LENGTH} characters without control characters or unpaired surrogates`;

/**
 * An event id: a ULID. Given `nowMs` (the publish path), its time is also
 * within `MAX_ID_CLOCK_SKEW_MS` ahead of that clock and `MAX_ID_AGE_MS` behind
 * it: an id becomes the replay position of every tab it reaches, and one from
 * the future would hide everything published before it, one from long ago
 * move them back. The bus path passes none: the publisher checked against its
 * own clock, and nodes' clocks differ.
 */
export function parseEventId(value: unknown, nowMs?: number): string {
  if (!isEventId(value)) throw invalid('event_id_invalid', 'id is a ULID (26 characters, Crockford base32)', 'id');
  if (nowMs === undefined) return value;
  const timeMs = eventIdTimeMs(value);
  if (timeMs > nowMs + MAX_ID_CLOCK_SKEW_MS) {
    throw invalid('event_id_invalid', "id is from the future: its time is ahead of this server's clock", 'id');
  }
  if (timeMs < nowMs - MAX_ID_AGE_MS) {
    throw invalid('event_id_out_of_range', `id is from more than ${MAX_ID_AGE_MS / 3_600_000} hours ago: give a fresh one (or none)`, 'id');
  }
  return value;
}

export function parseEventName(value: unknown): string {
  if (typeof value !== 'string' || !EVENT_NAME_PATTERN.test(value)) {
    throw invalid('event_name_invalid', 'event is 1-64 characters of A-Z a-z 0-9 _ . : -', 'event');
  }
  if (RESERVED_EVENT_NAMES.has(value)) throw invalid('event_name_reserved', `"${value}" is used by the stream itself`, 'event');
  return value;
}

/** `{"users":[...]}` with repeats removed (first-seen order kept), or `{"all":true}`. */
export function parseRecipients(value: unknown): Recipients {
  const shape = '`to` must be {"users":[...]} or {"all":true}';
  if (!isPlainObject(value)) throw invalid('recipients_invalid', shape, 'to');
  const keys = Object.keys(value);
  if (keys.length === 1 && value.all === true) return { all: true };
  if (keys.length !== 1 || !Array.isArray(value.users)) throw invalid('recipients_invalid', shape, 'to');
  const users: unknown[] = value.users;
  if (users.length === 0) throw invalid('recipients_invalid', '`to.users` is empty', 'to.users');
  users.forEach((user, i) => {
    if (!isValidUserId(user)) {
      throw invalid('recipients_invalid', USER_ID_RULE, `to.users[${i}]`);
    }
  });
  // Repeating a user is harmless; delivering twice would not be.
  const unique = [...new Set(users as string[])];
  if (unique.length > MAX_RECIPIENTS) throw invalid('too_many_recipients', `at most ${MAX_RECIPIENTS} users per notification`, 'to.users');
  return { users: unique };
}

/** Whole seconds of replay retention; `defaultSeconds` stands in for an absent ttl where one may be absent. */
export function parseTtl(value: unknown, defaultSeconds?: number): number {
  if (value === undefined && defaultSeconds !== undefined) return defaultSeconds;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_TTL_SECONDS) {
    throw invalid('ttl_invalid', `ttl is whole seconds from 0 to ${MAX_TTL_SECONDS}`, 'ttl');
  }
  return value;
}

/**
 * `data` (any JSON value) as one line of JSON of at most `maxBytes` UTF-8 bytes.
 * JSON.stringify escapes CR and LF inside strings, so the result is always one
 * SSE line; for data read back from JSON it gives the text it was written as.
 */
export function serializeData(value: unknown, maxBytes: number): string {
  if (value === undefined) throw invalid('envelope_invalid', '`data` is required (any JSON value)', 'data');
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch {
    json = undefined; // BigInt, circular: not JSON
  }
  if (json === undefined) throw invalid('envelope_invalid', '`data` must be a JSON value', 'data');
  const bytes = utf8Length(json);
  if (bytes > maxBytes) throw invalid('payload_too_large', `data is ${bytes} bytes serialized; the limit is ${maxBytes}`, 'data');
  return json;
}

/** When the publisher accepted the event: whole epoch milliseconds. Only the bus carries it. */
export function parsePublishedAtMs(value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw invalid('envelope_invalid', 'publishedAtMs is whole epoch milliseconds', 'publishedAtMs');
  }
  return value;
}
