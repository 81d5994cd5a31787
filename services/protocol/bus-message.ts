/**
 * The one wire schema of a bus message: what a node reads from its queue and
 * what every sender (node, publisher library, Lambda) writes to the topic.
 *
 * A Herald message is one JSON object with a version field:
 *
 *   {"v":1,"kind":"deliver","id":"01J…","event":"message","to":{"users":["alice"]},
 *    "ttl":3600,"publishedAtMs":1764064217000,"data":{"text":"Hello 👋"}}
 *   {"v":1,"kind":"deliver","events":[
 *     {"id":"01J…","event":"message","to":{"users":["alice"]},"ttl":3600,"publishedAtMs":1764064217000,"data":{"text":"Hi"}},
 *     {"id":"01J…","event":"typing","to":{"all":true},"ttl":0,"publishedAtMs":1764064217000,"data":null}]}
 *   {"v":1,"kind":"replace","userId":"alice","connectionId":"c-1","byConnectionId":"c-2"}
 *   {"v":1,"kind":"replace","userId":"alice","connectionId":"c-1","byConnectionId":"c-2","reclaim":true}
 *   {"v":1,"kind":"drain"}
 *
 * A deliver of one event keeps the first shape, which nodes of the previous
 * release read during a rolling deploy; several events (1-`MAX_BATCH`, written
 * in order) take the `events` shape. Either reads as `{ kind: 'deliver', events }`.
 * Each field of an event is checked by the parsers a publish envelope uses
 * (`notification-fields.ts`), so a bad field gets the same code on either path.
 *
 * This is every bus's schema, whatever carries it (SNS→SQS, Redis Streams,
 * memory). What a transport adds is its own: how a message names its node on
 * the way (`BusAttributes`: an SNS message attribute, a stream's key), and any
 * message of its own that shares this envelope, such as the SNS→SQS bus's
 * probe (services/adapters/aws/bus-probe.ts), which the bus reads with
 * `readBusBody` and `parseBusObject` and consumes; here it is an unknown kind.
 *
 * An event's `data` is already serialized JSON, so it is spliced in raw: quoting
 * it as a string would escape every `"` and nearly double it against SNS's
 * 256 KiB message limit (docs/protocol.md, "Publishing: `POST /publish`").
 *
 * A body without `v` is a plain publish envelope: a service publishing straight
 * to the topic. It is read with `parseEnvelope`, so it gets an id when it has
 * none — but it bypasses history (nothing stored it), so a tab that reconnects
 * cannot replay it, and a redelivered copy without an id gets a fresh id that
 * clients cannot dedupe. Direct publishers should send an `id`.
 */
import { parseEnvelope, type EnvelopeOptions, type HeraldEvent } from './envelope';
import { HeraldError, type ErrorCode } from './errors';
import { MAX_BATCH, MAX_DATA_BYTES_CEILING } from './limits';
import {
  atIndex,
  isPlainObject,
  isValidUserId,
  parseEventId,
  parseEventName,
  parsePublishedAtMs,
  parseRecipients,
  parseTtl,
  refuseUnknownFields,
  serializeData,
} from './notification-fields';
import { utf8Length } from './utf8';

/** What travels on the bus between publishers and nodes; the wire form is below. */
export type BusMessage =
  /**
   * Write each event, in this order, to this node's connections of the users in
   * its `to` (or to all of them). At least one event; a publisher packs the
   * events of a batch bound for one node into one message.
   */
  | { readonly kind: 'deliver'; readonly events: readonly HeraldEvent[] }
  /**
   * A newer tab of `userId` claimed its place: close `connectionId` with
   * `replaced`, or, when `reclaim` is set (that newer tab never opened), with
   * `closing` reason `reclaim`, so the old tab reconnects and takes its place back.
   */
  | { readonly kind: 'replace'; readonly userId: string; readonly connectionId: string; readonly byConnectionId: string; readonly reclaim?: true }
  /**
   * This node is about to be stopped (ECS marked its task to stop and is
   * deregistering it from the load balancer): start draining now, inside the
   * deregistration delay, rather than on SIGTERM after it.
   */
  | { readonly kind: 'drain' };

export const BUS_WIRE_VERSION = 1;

/** What a message routed to every node carries in place of a node id. */
export const ALL_NODES = 'all';

/**
 * A node id as it travels with a message (`BusAttributes.node`). At most 40
 * characters, so that the SNS→SQS bus can name a queue after it
 * (`<prefix>_<nodeId>`, services/adapters/aws/bus-naming.ts). `all` is not a node id.
 */
export const NODE_ID_PATTERN = /^[A-Za-z0-9_-]{1,40}$/;

export function isNodeId(value: string): boolean {
  return NODE_ID_PATTERN.test(value) && value !== ALL_NODES;
}

/**
 * The routing that came with a body, beside it: the node it was sent to, or
 * `all` (for SQS: the `node` message attribute, read as a string).
 */
export interface BusAttributes {
  readonly node?: string | undefined;
}

const DELIVER_KEYS: ReadonlySet<string> = new Set(['v', 'kind', 'id', 'event', 'to', 'ttl', 'publishedAtMs', 'data']);
const DELIVER_EVENTS_KEYS: ReadonlySet<string> = new Set(['v', 'kind', 'events']);
const EVENT_KEYS: ReadonlySet<string> = new Set(['id', 'event', 'to', 'ttl', 'publishedAtMs', 'data']);
const REPLACE_KEYS: ReadonlySet<string> = new Set(['v', 'kind', 'userId', 'connectionId', 'byConnectionId', 'reclaim']);
const DRAIN_KEYS: ReadonlySet<string> = new Set(['v', 'kind']);

// U+FFFE and U+FFFF are legal in JSON but not in an SQS body (allowed: #x9 #xA #xD
// #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF); SNS would fail to deliver them.
// They can only stand inside JSON strings, where the \u escape means the same thing.
const SQS_UNSAFE = /[\uFFFE\uFFFF]/g;

function sqsSafe(json: string): string {
  return json.replace(SQS_UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16)}`);
}

const DELIVER_HEAD = `{"v":${BUS_WIRE_VERSION},"kind":"deliver",`;
const EVENTS_HEAD = `{"v":${BUS_WIRE_VERSION},"kind":"deliver","events":[`;
const EVENTS_TAIL = ']}';
/** Bytes a one-event body adds to its event's part (which brings its own `{`). */
const ONE_EVENT_OVERHEAD = DELIVER_HEAD.length - 1;
const EVENTS_OVERHEAD = EVENTS_HEAD.length + EVENTS_TAIL.length;

/** One event as a JSON object, `data` spliced in raw. `minted` stays behind: only the publishing process knows it. */
function encodeEvent(heraldEvent: HeraldEvent): string {
  const { id, event, to, ttlSeconds, publishedAtMs, data } = heraldEvent;
  const head = JSON.stringify({ id, event, to, ttl: ttlSeconds, publishedAtMs });
  return sqsSafe(`${head.slice(0, -1)},"data":${data}}`);
}

/** The deliver body of some encoded events: one event in the shape the previous release reads, more as `events`. */
function deliverBody(parts: readonly string[]): string {
  const [only] = parts;
  if (parts.length === 1 && only !== undefined) return DELIVER_HEAD + only.slice(1);
  return `${EVENTS_HEAD}${parts.join(',')}${EVENTS_TAIL}`;
}

function checkEventCount(count: number, max: number): void {
  if (count === 0 || count > max) throw new Error(`a deliver message carries 1-${max} events; this one has ${count}`);
}

/** The body of one message. Each event's `data` goes in verbatim; the caller checks the size. */
export function encodeBusMessage(message: BusMessage): string {
  if (message.kind === 'replace') {
    const { userId, connectionId, byConnectionId, reclaim } = message;
    return sqsSafe(JSON.stringify({ v: BUS_WIRE_VERSION, kind: 'replace', userId, connectionId, byConnectionId, ...(reclaim === true ? { reclaim } : {}) }));
  }
  if (message.kind === 'drain') return JSON.stringify({ v: BUS_WIRE_VERSION, kind: 'drain' });
  checkEventCount(message.events.length, MAX_BATCH);
  return deliverBody(message.events.map(encodeEvent));
}

function tooLarge(bytes: number, maxBodyBytes: number): HeraldError {
  return new HeraldError('payload_too_large', `a bus message is at most ${maxBodyBytes} bytes; this one is ${bytes}`, { field: 'data' });
}

/**
 * The bodies of one event that is too big for one body with all its users: the
 * same event (same id) for some of the users in each, which the node handles
 * exactly as the whole. Refused when it cannot fit even for one user.
 */
function splitByRecipients(heraldEvent: HeraldEvent, maxBodyBytes: number): string[] {
  const body = deliverBody([encodeEvent(heraldEvent)]);
  const bytes = utf8Length(body);
  if (bytes <= maxBodyBytes) return [body];
  const { to } = heraldEvent;
  if (!('users' in to) || to.users.length < 2) throw tooLarge(bytes, maxBodyBytes);
  const half = Math.ceil(to.users.length / 2);
  return [to.users.slice(0, half), to.users.slice(half)].flatMap((users) => splitByRecipients({ ...heraldEvent, to: { users } }, maxBodyBytes));
}

/**
 * The bodies that carry `message` within `maxBodyBytes` each, in order. A
 * deliver packs its events greedily: each body takes as many of the next events
 * (at most `MAX_BATCH`) as fit, each event encoded once. An event too big for a
 * body of its own is split by recipients; one that cannot fit even for one user
 * is refused with `payload_too_large`.
 */
export function encodeBusMessageWithin(message: BusMessage, maxBodyBytes: number): string[] {
  if (message.kind !== 'deliver') {
    const body = encodeBusMessage(message);
    const bytes = utf8Length(body);
    if (bytes > maxBodyBytes) throw tooLarge(bytes, maxBodyBytes);
    return [body];
  }
  checkEventCount(message.events.length, Number.POSITIVE_INFINITY);
  const bodies: string[] = [];
  let run: string[] = [];
  let runBytes = 0; // the run's parts and the commas between them
  const flush = (): void => {
    if (run.length > 0) bodies.push(deliverBody(run));
    run = [];
    runBytes = 0;
  };
  for (const heraldEvent of message.events) {
    const part = encodeEvent(heraldEvent);
    const bytes = utf8Length(part);
    if (ONE_EVENT_OVERHEAD + bytes > maxBodyBytes) {
      flush();
      bodies.push(...splitByRecipients(heraldEvent, maxBodyBytes));
    } else if (run.length === 0 || run.length === MAX_BATCH || EVENTS_OVERHEAD + runBytes + 1 + bytes > maxBodyBytes) {
      // A run of one is written in the one-event shape, which fits: checked above.
      flush();
      run = [part];
      runBytes = bytes;
    } else {
      run.push(part);
      runBytes += 1 + bytes;
    }
  }
  flush();
  return bodies;
}

function refuse(code: ErrorCode, message: string, field: string): never {
  throw new HeraldError(code, `bus message: ${message}`, { field });
}

function readEvent(input: Record<string, unknown>): HeraldEvent {
  return {
    id: parseEventId(input.id),
    event: parseEventName(input.event),
    // Parsed with the body, so serialized again: the same text for anything JSON.stringify produced.
    data: serializeData(input.data, MAX_DATA_BYTES_CEILING),
    to: parseRecipients(input.to),
    ttlSeconds: parseTtl(input.ttl),
    publishedAtMs: parsePublishedAtMs(input.publishedAtMs),
  };
}

function readDeliver(input: Record<string, unknown>): BusMessage {
  if (!('events' in input)) {
    refuseUnknownFields(input, DELIVER_KEYS);
    return { kind: 'deliver', events: [readEvent(input)] };
  }
  refuseUnknownFields(input, DELIVER_EVENTS_KEYS);
  const { events } = input;
  if (!Array.isArray(events) || events.length === 0 || events.length > MAX_BATCH) {
    return refuse('batch_invalid', `events is a list of 1-${MAX_BATCH} events`, 'events');
  }
  return {
    kind: 'deliver',
    events: events.map((item: unknown, index) =>
      atIndex(index, () => {
        if (!isPlainObject(item)) return refuse('envelope_invalid', 'an event is a JSON object', '');
        refuseUnknownFields(item, EVENT_KEYS);
        return readEvent(item);
      }),
    ),
  };
}

function readReplace(input: Record<string, unknown>): BusMessage {
  refuseUnknownFields(input, REPLACE_KEYS);
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
 * `options` apply to a plain envelope only (its defaults and clock).
 */
export function parseBusMessage(body: string, attributes: BusAttributes, options: EnvelopeOptions = {}): BusMessage {
  return parseBusObject(readBusBody(body), attributes, options);
}

/** The JSON object a body holds; refused as `parseBusMessage` refuses a body that is not one. */
export function readBusBody(body: string): Record<string, unknown> {
  let input: unknown;
  try {
    input = JSON.parse(body);
  } catch {
    return refuse('json_invalid', 'the body is not JSON', '');
  }
  if (!isPlainObject(input)) return refuse('envelope_invalid', 'the body is not a JSON object', '');
  return input;
}

/**
 * As `parseBusMessage`, from the body's object (`readBusBody`): for a bus that
 * first looks for a message of its own in it (services/adapters/aws/bus-probe.ts).
 */
export function parseBusObject(input: Record<string, unknown>, attributes: BusAttributes, options: EnvelopeOptions = {}): BusMessage {
  if (!('v' in input)) {
    // A service publishing straight to the topic cannot know which node holds a
    // user, so a plain envelope naming one node is not something Herald sent.
    if (attributes.node !== undefined && attributes.node !== ALL_NODES) {
      return refuse('envelope_invalid', 'a plain envelope is routed to all nodes or has no node attribute', 'node');
    }
    return { kind: 'deliver', events: [parseEnvelope(input, { maxDataBytes: MAX_DATA_BYTES_CEILING, ...options })] };
  }
  if (input.v !== BUS_WIRE_VERSION) return refuse('envelope_invalid', `unknown version ${JSON.stringify(input.v)}`, 'v');
  if (input.kind === 'deliver') return readDeliver(input);
  if (input.kind === 'replace') return readReplace(input);
  if (input.kind === 'drain') {
    refuseUnknownFields(input, DRAIN_KEYS);
    return { kind: 'drain' };
  }
  return refuse('envelope_invalid', 'kind is "deliver", "replace" or "drain"', 'kind');
}
