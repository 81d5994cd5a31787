import { HeraldError } from './errors';
import { eventIdTimeMs, isEventId, newEventId } from './event-id';
import {
  DEFAULT_MAX_DATA_BYTES,
  EVENT_NAME_PATTERN,
  MAX_BATCH,
  MAX_ID_CLOCK_SKEW_MS,
  MAX_RECIPIENTS,
  MAX_TTL_SECONDS,
  MAX_USER_ID_LENGTH,
  RESERVED_EVENT_NAMES,
} from './limits';
import { utf8Length } from './utf8';

/** Who receives an event: named users, or every connected user. */
export type Recipients = { readonly users: readonly string[] } | { readonly all: true };

/**
 * A validated notification, as it travels through history, the bus and the
 * node. `data` is already serialized to one line of JSON, so it is framed
 * without being encoded again.
 */
export interface HeraldEvent {
  readonly id: string;
  readonly event: string;
  readonly data: string;
  readonly to: Recipients;
  /** Seconds kept for replay; 0 means live only. */
  readonly ttlSeconds: number;
  /** When the publisher accepted it; feeds the publish→write latency metric. */
  readonly publishedAtMs: number;
}

export interface EnvelopeOptions {
  readonly maxDataBytes?: number;
  /** Retention when the envelope has no `ttl`. */
  readonly defaultTtlSeconds?: number;
  readonly nowMs?: number;
}

const ENVELOPE_KEYS: ReadonlySet<string> = new Set(['id', 'to', 'event', 'data', 'ttl']);
// Control characters (C0, DEL, C1) are exactly what this refuses: they corrupt logs and storage keys.
// eslint-disable-next-line no-control-regex
const USER_ID_PATTERN = /^[^\u0000-\u001f\u007f-\u009f]+$/;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function invalid(code: ConstructorParameters<typeof HeraldError>[0], message: string, field: string): HeraldError {
  return new HeraldError(code, message, { field });
}

export function isValidUserId(value: unknown): value is string {
  return typeof value === 'string' && value.length <= MAX_USER_ID_LENGTH && USER_ID_PATTERN.test(value);
}

function parseRecipients(to: unknown): Recipients {
  if (!isPlainObject(to)) throw invalid('recipients_invalid', '`to` must be {"users":[...]} or {"all":true}', 'to');
  const keys = Object.keys(to);
  if (keys.length === 1 && to.all === true) return { all: true };
  if (keys.length !== 1 || !Array.isArray(to.users)) {
    throw invalid('recipients_invalid', '`to` must be {"users":[...]} or {"all":true}', 'to');
  }
  const users: unknown[] = to.users;
  if (users.length === 0) throw invalid('recipients_invalid', '`to.users` is empty', 'to.users');
  users.forEach((user, i) => {
    if (!isValidUserId(user)) {
      throw invalid(
        'recipients_invalid',
        `user ids are strings of 1-${MAX_USER_ID_LENGTH} characters without control characters`,
        `to.users[${i}]`,
      );
    }
  });
  // Repeating a user is harmless; delivering twice would not be.
  const unique = [...new Set(users as string[])];
  if (unique.length > MAX_RECIPIENTS) {
    throw invalid('too_many_recipients', `at most ${MAX_RECIPIENTS} users per notification`, 'to.users');
  }
  return { users: unique };
}

function parseTtl(ttl: unknown, fallback: number): number {
  if (ttl === undefined) return fallback;
  if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 0 || ttl > MAX_TTL_SECONDS) {
    throw invalid('ttl_invalid', `ttl is whole seconds from 0 to ${MAX_TTL_SECONDS}`, 'ttl');
  }
  return ttl;
}

function parseEventName(event: unknown): string {
  if (typeof event !== 'string' || !EVENT_NAME_PATTERN.test(event)) {
    throw invalid('event_name_invalid', 'event is 1-64 characters of A-Z a-z 0-9 _ . : -', 'event');
  }
  if (RESERVED_EVENT_NAMES.has(event)) {
    throw invalid('event_name_reserved', `"${event}" is used by the stream itself`, 'event');
  }
  return event;
}

function serializeData(data: unknown, maxBytes: number): string {
  if (data === undefined) throw invalid('envelope_invalid', '`data` is required (any JSON value)', 'data');
  // JSON.stringify escapes CR and LF inside strings, so the result is always one SSE line.
  let json: string | undefined;
  try {
    json = JSON.stringify(data);
  } catch {
    json = undefined; // BigInt, circular: not JSON
  }
  if (json === undefined) throw invalid('envelope_invalid', '`data` must be a JSON value', 'data');
  const bytes = utf8Length(json);
  if (bytes > maxBytes) {
    throw invalid('payload_too_large', `data is ${bytes} bytes serialized; the limit is ${maxBytes}`, 'data');
  }
  return json;
}

/**
 * The one schema of a publish envelope. Refuses, never repairs: unknown keys,
 * bad names and oversize data are errors with a stable code and the field.
 */
export function parseEnvelope(input: unknown, options: EnvelopeOptions = {}): HeraldEvent {
  if (!isPlainObject(input)) throw invalid('envelope_invalid', 'a notification is a JSON object', '');
  for (const key of Object.keys(input)) {
    if (!ENVELOPE_KEYS.has(key)) throw invalid('envelope_invalid', `unknown field "${key}"`, key);
  }
  if (input.id !== undefined && !isEventId(input.id)) {
    throw invalid('event_id_invalid', 'id, when given, is a ULID (26 characters, Crockford base32)', 'id');
  }
  const nowMs = options.nowMs ?? Date.now();
  if (typeof input.id === 'string' && eventIdTimeMs(input.id) > nowMs + MAX_ID_CLOCK_SKEW_MS) {
    throw invalid('event_id_invalid', 'id is from the future: its time is ahead of this server\'s clock', 'id');
  }
  return {
    id: typeof input.id === 'string' ? input.id : newEventId(nowMs),
    event: parseEventName(input.event),
    data: serializeData(input.data, options.maxDataBytes ?? DEFAULT_MAX_DATA_BYTES),
    to: parseRecipients(input.to),
    ttlSeconds: parseTtl(input.ttl, options.defaultTtlSeconds ?? 3600),
    publishedAtMs: nowMs,
  };
}

/**
 * A publish request body is one envelope or `{ "notifications": [...] }`.
 * Every item is validated before anything is published, so a refusal never
 * leaves half a batch delivered.
 */
export function parsePublishBody(body: unknown, options: EnvelopeOptions = {}): HeraldEvent[] {
  if (isPlainObject(body) && 'notifications' in body) {
    const items = body.notifications;
    if (!Array.isArray(items) || items.length === 0 || Object.keys(body).length !== 1) {
      throw new HeraldError('batch_invalid', 'a batch is {"notifications":[...]} with at least one item');
    }
    if (items.length > MAX_BATCH) {
      throw new HeraldError('batch_invalid', `at most ${MAX_BATCH} notifications per batch`);
    }
    return items.map((item: unknown, index) => {
      try {
        return parseEnvelope(item, options);
      } catch (error) {
        if (error instanceof HeraldError) {
          throw new HeraldError(error.code, error.message, { ...error.details, index });
        }
        throw error;
      }
    });
  }
  return [parseEnvelope(body, options)];
}
