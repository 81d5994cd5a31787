/**
 * The one wire schema of a bus message: what a node reads from its queue and
 * what every sender (node, publisher library, Lambda) writes to the topic.
 *
 * A Herald message is one JSON object with a version field:
 *
 *   {"v":1,"kind":"deliver","id":"01J…","event":"message","to":{"users":["alice"]},
 *    "ttl":3600,"publishedAtMs":1764064217000,"data":{"text":"Hello 👋"}}
 *   {"v":1,"kind":"replace","userId":"alice","connectionId":"c-1","byConnectionId":"c-2"}
 *   {"v":1,"kind":"replace","userId":"alice","connectionId":"c-1","byConnectionId":"c-2","reclaim":true}
 *   {"v":1,"kind":"drain"}
 *   {"v":1,"kind":"probe","nonce":"kq3…"}
 *
 * A probe is internal to the SNS→SQS bus: a starting node sends it to itself to
 * confirm that its subscription delivers. The bus consumes it; no handler sees it.
 *
 * The event's `data` is already serialized JSON, so it is spliced in raw: quoting
 * it as a string would escape every `"` and nearly double it against SNS's
 * 256 KiB message limit (DESIGN.md, "Publish envelope").
 *
 * A body without `v` is a plain publish envelope: a service publishing straight
 * to the topic. It is read with `parseEnvelope`, so it gets an id when it has
 * none — but it bypasses history (nothing stored it), so a tab that reconnects
 * cannot replay it, and a redelivered copy without an id gets a fresh id that
 * clients cannot dedupe. Direct publishers should send an `id`.
 */
import { parseEnvelope, isValidUserId, type EnvelopeOptions, type HeraldEvent, type Recipients } from './envelope';
import type { BusMessage } from '../ports/bus';
import { HeraldError, type ErrorCode } from './errors';
import { isEventId } from './event-id';
import { EVENT_NAME_PATTERN, MAX_DATA_BYTES_CEILING, MAX_RECIPIENTS, MAX_TTL_SECONDS, RESERVED_EVENT_NAMES } from './limits';
import { utf8Length } from './utf8';

export const BUS_WIRE_VERSION = 1;

/** The SNS message attribute that routes a message: a node id, or `all`. */
export const NODE_ATTRIBUTE = 'node';
export const ALL_NODES = 'all';

/**
 * A node id as it travels in the `node` attribute and names a queue
 * (`<prefix>_<nodeId>`, at most 80 characters in all). `all` is not a node id.
 */
export const NODE_ID_PATTERN = /^[A-Za-z0-9_-]{1,40}$/;

/**
 * Between the queue prefix and the node id in a node queue's name:
 * `<prefix>_<nodeId>`. A prefix cannot contain it, nor can a CloudFormation
 * stack name (the default prefix), so the queues of a stack `Herald` (`Herald_…`)
 * never share a name prefix with those of `Herald-prod` (`Herald-prod_…`), and
 * IAM, alarms and the janitor can select one deployment's queues by `<prefix>_`.
 * Node ids may contain `_`: the node id is what follows the first one.
 */
export const NODE_QUEUE_SEPARATOR = '_';

/** A queue prefix: 1-39 of A-Z a-z 0-9 - (no `_`), which leaves the node id 40 of SQS's 80 characters. */
export const QUEUE_PREFIX_PATTERN = /^[A-Za-z0-9-]{1,39}$/;

export function isNodeId(value: string): boolean {
  return NODE_ID_PATTERN.test(value) && value !== ALL_NODES;
}

/** The routing attributes that came with a body (for SQS: its message attributes, read as strings). */
export interface BusAttributes {
  readonly node?: string | undefined;
}

const DELIVER_KEYS: ReadonlySet<string> = new Set(['v', 'kind', 'id', 'event', 'to', 'ttl', 'publishedAtMs', 'data']);
const REPLACE_KEYS: ReadonlySet<string> = new Set(['v', 'kind', 'userId', 'connectionId', 'byConnectionId', 'reclaim']);
const DRAIN_KEYS: ReadonlySet<string> = new Set(['v', 'kind']);
const PROBE_KEYS: ReadonlySet<string> = new Set(['v', 'kind', 'nonce']);

/**
 * A message the SNS→SQS bus sends to its own node to confirm that the path
 * topic → subscription → queue delivers (filter policies and queue policies
 * take effect eventually on AWS). Never a `BusMessage`: no handler sees it.
 */
export interface BusProbe {
  readonly kind: 'probe';
  readonly nonce: string;
}

/** Whatever may arrive on a node queue: a message for the handler, or a probe for the bus itself. */
export type BusWireMessage = BusMessage | BusProbe;

/** A probe's nonce: random, URL-safe, short. */
export const PROBE_NONCE_PATTERN = /^[A-Za-z0-9_-]{8,64}$/;

export function encodeBusProbe(nonce: string): string {
  if (!PROBE_NONCE_PATTERN.test(nonce)) throw new Error('a probe nonce is 8-64 characters of A-Z a-z 0-9 _ -');
  return JSON.stringify({ v: BUS_WIRE_VERSION, kind: 'probe', nonce });
}

// U+FFFE and U+FFFF are legal in JSON but not in an SQS body (allowed: #x9 #xA #xD
// #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF); SNS would fail to deliver them.
// They can only stand inside JSON strings, where the \u escape means the same thing.
const SQS_UNSAFE = /[\uFFFE\uFFFF]/g;

/** The body of one message. The event's `data` goes in verbatim; the caller checks the size. */
export function encodeBusMessage(message: BusMessage): string {
  let body: string;
  if (message.kind === 'replace') {
    const { userId, connectionId, byConnectionId, reclaim } = message;
    body = JSON.stringify({ v: BUS_WIRE_VERSION, kind: 'replace', userId, connectionId, byConnectionId, ...(reclaim === true ? { reclaim } : {}) });
  } else if (message.kind === 'drain') {
    body = JSON.stringify({ v: BUS_WIRE_VERSION, kind: 'drain' });
  } else {
    const { id, event, to, ttlSeconds, publishedAtMs, data } = message.event;
    const head = JSON.stringify({ v: BUS_WIRE_VERSION, kind: 'deliver', id, event, to, ttl: ttlSeconds, publishedAtMs });
    body = `${head.slice(0, -1)},"data":${data}}`;
  }
  return body.replace(SQS_UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16)}`);
}

/**
 * The bodies that carry `message` within `maxBodyBytes` each. A deliver message
 * whose recipient list makes it too big is split by recipients: each part is the
 * same event (same id) for some of the users, which the node handles exactly as
 * the whole. A message that cannot fit even for one user is refused.
 */
export function encodeBusMessageWithin(message: BusMessage, maxBodyBytes: number): string[] {
  const body = encodeBusMessage(message);
  if (utf8Length(body) <= maxBodyBytes) return [body];
  if (message.kind === 'deliver' && 'users' in message.event.to && message.event.to.users.length > 1) {
    const users = message.event.to.users;
    const half = Math.ceil(users.length / 2);
    return [users.slice(0, half), users.slice(half)].flatMap((part) =>
      encodeBusMessageWithin({ kind: 'deliver', event: { ...message.event, to: { users: part } } }, maxBodyBytes),
    );
  }
  throw new HeraldError('payload_too_large', `a bus message is at most ${maxBodyBytes} bytes; this one is ${utf8Length(body)}`, {
    field: 'data',
  });
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function refuse(code: ErrorCode, message: string, field: string): never {
  throw new HeraldError(code, `bus message: ${message}`, { field });
}

function checkKeys(input: Record<string, unknown>, allowed: ReadonlySet<string>): void {
  for (const key of Object.keys(input)) if (!allowed.has(key)) refuse('envelope_invalid', `unknown field "${key}"`, key);
}

function readRecipients(to: unknown): Recipients {
  if (isPlainObject(to) && Object.keys(to).length === 1 && to.all === true) return { all: true };
  if (!isPlainObject(to) || Object.keys(to).length !== 1 || !Array.isArray(to.users)) {
    return refuse('recipients_invalid', '`to` is {"users":[...]} or {"all":true}', 'to');
  }
  const users: unknown[] = to.users;
  if (users.length === 0 || users.length > MAX_RECIPIENTS) refuse('recipients_invalid', `1-${MAX_RECIPIENTS} users`, 'to.users');
  users.forEach((user, i) => {
    if (!isValidUserId(user)) refuse('recipients_invalid', 'not a valid user id', `to.users[${i}]`);
  });
  return { users: users as string[] };
}

function readDeliver(input: Record<string, unknown>): BusMessage {
  checkKeys(input, DELIVER_KEYS);
  const { id, event, ttl, publishedAtMs, data } = input;
  if (!isEventId(id)) return refuse('event_id_invalid', 'id is a ULID', 'id');
  if (typeof event !== 'string' || !EVENT_NAME_PATTERN.test(event) || RESERVED_EVENT_NAMES.has(event)) {
    return refuse('event_name_invalid', 'event is 1-64 characters of A-Z a-z 0-9 _ . : - and not a stream name', 'event');
  }
  if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 0 || ttl > MAX_TTL_SECONDS) {
    return refuse('ttl_invalid', `ttl is whole seconds from 0 to ${MAX_TTL_SECONDS}`, 'ttl');
  }
  if (typeof publishedAtMs !== 'number' || !Number.isSafeInteger(publishedAtMs) || publishedAtMs < 0) {
    return refuse('envelope_invalid', 'publishedAtMs is epoch milliseconds', 'publishedAtMs');
  }
  if (data === undefined) return refuse('envelope_invalid', '`data` is required', 'data');
  // Parsed with the body, so serialize it again: the same text for anything JSON.stringify produced.
  const json = JSON.stringify(data);
  if (utf8Length(json) > MAX_DATA_BYTES_CEILING) {
    return refuse('payload_too_large', `data is over ${MAX_DATA_BYTES_CEILING} bytes`, 'data');
  }
  const heraldEvent: HeraldEvent = { id, event, data: json, to: readRecipients(input.to), ttlSeconds: ttl, publishedAtMs };
  return { kind: 'deliver', event: heraldEvent };
}

function readReplace(input: Record<string, unknown>): BusMessage {
  checkKeys(input, REPLACE_KEYS);
  const { userId, connectionId, byConnectionId, reclaim } = input;
  if (!isValidUserId(userId)) return refuse('envelope_invalid', 'not a valid user id', 'userId');
  // Connection ids follow the user id rules: short, printable, safe in logs and keys.
  if (!isValidUserId(connectionId)) return refuse('envelope_invalid', 'not a valid connection id', 'connectionId');
  if (!isValidUserId(byConnectionId)) return refuse('envelope_invalid', 'not a valid connection id', 'byConnectionId');
  if (reclaim !== undefined && reclaim !== true) return refuse('envelope_invalid', 'reclaim is true or absent', 'reclaim');
  return { kind: 'replace', userId, connectionId, byConnectionId, ...(reclaim === true ? { reclaim } : {}) };
}

/**
 * Reads one body from the bus. Throws a HeraldError for anything malformed:
 * such a message can never succeed, so the adapter drops it after logging.
 * `options` apply to a plain envelope only (its defaults and clock). A probe
 * is refused here: only the bus that sent it reads it (`parseBusWireMessage`).
 */
export function parseBusMessage(body: string, attributes: BusAttributes, options: EnvelopeOptions = {}): BusMessage {
  const message = parseBusWireMessage(body, attributes, options);
  if (message.kind === 'probe') return refuse('envelope_invalid', 'a probe is internal to the bus', 'kind');
  return message;
}

/** As `parseBusMessage`, and a probe too: what the SNS→SQS bus reads from its queue. */
export function parseBusWireMessage(body: string, attributes: BusAttributes, options: EnvelopeOptions = {}): BusWireMessage {
  let input: unknown;
  try {
    input = JSON.parse(body);
  } catch {
    return refuse('json_invalid', 'the body is not JSON', '');
  }
  if (!isPlainObject(input)) return refuse('envelope_invalid', 'the body is not a JSON object', '');
  if (!('v' in input)) {
    // A service publishing straight to the topic cannot know which node holds a
    // user, so a plain envelope naming one node is not something Herald sent.
    if (attributes.node !== undefined && attributes.node !== ALL_NODES) {
      return refuse('envelope_invalid', 'a plain envelope is routed to all nodes or has no node attribute', NODE_ATTRIBUTE);
    }
    return { kind: 'deliver', event: parseEnvelope(input, { maxDataBytes: MAX_DATA_BYTES_CEILING, ...options }) };
  }
  if (input.v !== BUS_WIRE_VERSION) return refuse('envelope_invalid', `unknown version ${JSON.stringify(input.v)}`, 'v');
  if (input.kind === 'deliver') return readDeliver(input);
  if (input.kind === 'replace') return readReplace(input);
  if (input.kind === 'drain') {
    checkKeys(input, DRAIN_KEYS);
    return { kind: 'drain' };
  }
  if (input.kind === 'probe') {
    checkKeys(input, PROBE_KEYS);
    const { nonce } = input;
    if (typeof nonce !== 'string' || !PROBE_NONCE_PATTERN.test(nonce)) return refuse('envelope_invalid', 'nonce is 8-64 characters of A-Z a-z 0-9 _ -', 'nonce');
    return { kind: 'probe', nonce };
  }
  return refuse('envelope_invalid', 'kind is "deliver", "replace" or "drain"', 'kind');
}
