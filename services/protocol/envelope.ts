import { HeraldError } from './errors';
import { newEventId } from './event-id';
import { DEFAULT_MAX_DATA_BYTES, MAX_BATCH } from './limits';
import {
  atIndex,
  isPlainObject,
  parseEventId,
  parseEventName,
  parseRecipients,
  parseTtl,
  refuseUnknownFields,
  serializeData,
} from './notification-fields';

export { isValidUserId } from './notification-fields';

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
  /**
   * Set when Herald assigned the id at validation (the envelope had none): no
   * earlier publish can have used it, so history stores it without a
   * duplicate check. Never on the wire: only the publishing process knows it.
   */
  readonly minted?: true;
}

export interface EnvelopeOptions {
  readonly maxDataBytes?: number;
  /** Retention when the envelope has no `ttl`. */
  readonly defaultTtlSeconds?: number;
  readonly nowMs?: number;
}

const ENVELOPE_KEYS: ReadonlySet<string> = new Set(['id', 'to', 'event', 'data', 'ttl']);

/**
 * The one schema of a publish envelope. Refuses, never repairs: unknown keys,
 * bad names and oversize data are errors with a stable code and the field.
 */
export function parseEnvelope(input: unknown, options: EnvelopeOptions = {}): HeraldEvent {
  if (!isPlainObject(input)) throw new HeraldError('envelope_invalid', 'a notification is a JSON object', { field: '' });
  refuseUnknownFields(input, ENVELOPE_KEYS);
  const nowMs = options.nowMs ?? Date.now();
  const id = input.id === undefined ? newEventId(nowMs) : parseEventId(input.id, nowMs);
  const event = parseEventName(input.event);
  const data = serializeData(input.data, options.maxDataBytes ?? DEFAULT_MAX_DATA_BYTES);
  const to = parseRecipients(input.to);
  const ttlSeconds = parseTtl(input.ttl, options.defaultTtlSeconds ?? 3600);
  // Two literals rather than a spread: one fixed shape each, built in one step.
  return input.id === undefined
    ? { id, minted: true, event, data, to, ttlSeconds, publishedAtMs: nowMs }
    : { id, event, data, to, ttlSeconds, publishedAtMs: nowMs };
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
    return items.map((item: unknown, index) => atIndex(index, () => parseEnvelope(item, options)));
  }
  return [parseEnvelope(body, options)];
}
