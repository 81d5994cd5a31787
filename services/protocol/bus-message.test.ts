import { describe, expect, it } from 'vitest';
import { ALL_NODES, encodeBusMessage, encodeBusMessageWithin, isNodeId, parseBusMessage, type BusAttributes, type BusMessage } from './bus-message';
import { parseEnvelope, type HeraldEvent } from './envelope';
import { HeraldError, type ErrorCode } from './errors';
import { eventIdFloor, isEventId } from './event-id';
import { MAX_BATCH, MAX_DATA_BYTES_CEILING, MAX_RECIPIENTS, MAX_TTL_SECONDS } from './limits';

const NOW = Date.UTC(2030, 0, 1);
/** A publisher's id from a second before NOW (an envelope's id may be at most 24 h old). */
const ID = eventIdFloor(NOW - 1000).slice(0, 10) + 'TSV4RRFFQ69G5FAV';
const ROUTED: BusAttributes = { node: 'node-a' };

function event(overrides: Record<string, unknown> = {}): HeraldEvent {
  return parseEnvelope(
    { id: ID, to: { users: ['alice'] }, event: 'message', data: { text: 'hi' }, ttl: 60, ...overrides },
    { nowMs: NOW, maxDataBytes: MAX_DATA_BYTES_CEILING },
  );
}

const deliver = (...events: HeraldEvent[]): BusMessage => ({ kind: 'deliver', events });

/** The events of a deliver message; fails the test for any other kind. */
function eventsOf(message: BusMessage): readonly HeraldEvent[] {
  if (message.kind !== 'deliver') throw new Error(`expected a deliver message, got ${message.kind}`);
  return message.events;
}

function roundTrip(message: BusMessage): BusMessage {
  return parseBusMessage(encodeBusMessage(message), ROUTED);
}

/** What the bus carries of an event: everything but `minted`. */
function onWire({ id, event, data, to, ttlSeconds, publishedAtMs }: HeraldEvent): HeraldEvent {
  return { id, event, data, to, ttlSeconds, publishedAtMs };
}

/** A valid deliver body as an object, for tests that break one field. */
function wire(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...(JSON.parse(encodeBusMessage(deliver(event()))) as Record<string, unknown>), ...overrides };
}

/** A valid event of the `events` shape, for tests that break one field. */
function eventWire(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const fields = wire();
  delete fields.v;
  delete fields.kind;
  return { ...fields, ...overrides };
}

function refusal(body: string, attributes: BusAttributes = ROUTED): HeraldError {
  try {
    parseBusMessage(body, attributes, { nowMs: NOW });
  } catch (error) {
    if (error instanceof HeraldError) return error;
    throw error;
  }
  throw new Error('expected a HeraldError, but the body was accepted');
}

/** Runs `fn`, which must refuse with a HeraldError, and returns that error. */
function thrown(fn: () => unknown): HeraldError {
  try {
    fn();
  } catch (error) {
    if (error instanceof HeraldError) return error;
    throw error;
  }
  throw new Error('expected a HeraldError, but nothing was thrown');
}

function expectRefused(body: unknown, code: ErrorCode, field: string, attributes?: BusAttributes): void {
  const error = refusal(typeof body === 'string' ? body : JSON.stringify(body), attributes);
  expect({ code: error.code, field: error.details.field }).toEqual({ code, field });
}

/** Data whose serialization is `bytes` UTF-8 bytes, mostly multi-byte. */
function dataOfBytes(bytes: number): { text: string } {
  const frame = JSON.stringify({ text: '' }).length;
  let text = 'é👋'.repeat(Math.floor((bytes - frame) / 6));
  text += 'x'.repeat(bytes - frame - Buffer.byteLength(text));
  return { text };
}

describe('encodeBusMessage and parseBusMessage', () => {
  it('carry a deliver message for users intact, with a version field', () => {
    const message = deliver(event({ to: { users: ['alice', 'bob 👋', 'u#1:x'] }, event: 'chat.message:v1-x_y', ttl: 0 }));
    const body = encodeBusMessage(message);
    expect(JSON.parse(body)).toMatchObject({ v: 1, kind: 'deliver', id: ID, ttl: 0 });
    expect(parseBusMessage(body, ROUTED)).toEqual(message);
  });

  it('carry a broadcast and the longest ttl intact', () => {
    const message = deliver(event({ to: { all: true }, ttl: MAX_TTL_SECONDS }));
    expect(roundTrip(message)).toEqual(message);
  });

  it('carry a replace message intact', () => {
    const message: BusMessage = { kind: 'replace', userId: 'alice 👋', connectionId: 'conn-old', byConnectionId: 'conn-new' };
    expect(JSON.parse(encodeBusMessage(message))).toEqual({ v: 1, ...message });
    expect(roundTrip(message)).toEqual(message);
  });

  it('carry a reclaiming replace message intact, and no reclaim field when it is not one', () => {
    const message: BusMessage = { kind: 'replace', userId: 'alice', connectionId: 'conn-old', byConnectionId: 'conn-new', reclaim: true };
    expect(JSON.parse(encodeBusMessage(message))).toEqual({ v: 1, ...message });
    expect(roundTrip(message)).toEqual(message);
    const plain = JSON.parse(encodeBusMessage({ kind: 'replace', userId: 'alice', connectionId: 'conn-old', byConnectionId: 'conn-new' })) as object;
    expect(plain).not.toHaveProperty('reclaim');
  });

  it('keep unicode data byte for byte: emoji, combining marks, RTL, escaped controls, U+2028/U+2029, lone surrogates', () => {
    const data = {
      text: 'Hello 👋🏽 — “quoted” "double" \\ back\\slash',
      scripts: ['中文', 'العربية', 'e\u0301', '𝔘𝔫𝔦'],
      controls: 'tab\tnewline\nnul\u0000',
      separators: 'line\u2028paragraph\u2029end',
      lone: '\ud800 and \udc00',
      nested: { zero: 0, negative: -1.5, big: 1e21, nothing: null, list: [] },
    };
    const message = deliver(event({ data }));
    const got = roundTrip(message);
    expect(got).toEqual(message);
    expect(JSON.parse(eventsOf(got)[0]!.data)).toEqual(data);
  });

  it('escape U+FFFE and U+FFFF, which an SQS body may not hold, and read them back', () => {
    const message = deliver(event({ data: { text: 'a\uFFFEb\uFFFFc', bom: '\uFEFF' }, to: { users: ['x\uFFFF'] } }));
    const body = encodeBusMessage(message);
    expect(body).not.toMatch(/[\uFFFE\uFFFF]/);
    expect(body).toContain('a\\ufffeb\\uffffc');
    expect(roundTrip(message)).toEqual(message);
  });

  it(`splice data in raw, so ${MAX_DATA_BYTES_CEILING} bytes of data stay under SNS's 256 KiB`, () => {
    const message = deliver(event({ data: dataOfBytes(MAX_DATA_BYTES_CEILING) }));
    const body = encodeBusMessage(message);
    expect(body).toContain(`"data":${eventsOf(message)[0]!.data}}`);
    expect(Buffer.byteLength(body)).toBeLessThan(MAX_DATA_BYTES_CEILING + 300);
    expect(roundTrip(message)).toEqual(message);
  });
});

describe('a deliver of one event on the wire', () => {
  it('is the exact body of the previous release, which its nodes still read during a rolling deploy', () => {
    expect(encodeBusMessage(deliver(event()))).toBe(
      `{"v":1,"kind":"deliver","id":"${ID}","event":"message","to":{"users":["alice"]},"ttl":60,"publishedAtMs":${NOW},"data":{"text":"hi"}}`,
    );
  });

  it('never carries minted: only the publishing process knows it', () => {
    const minted = parseEnvelope({ to: { all: true }, event: 'message', data: 1 }, { nowMs: NOW });
    expect(minted.minted).toBe(true);
    const body = encodeBusMessage(deliver(minted));
    expect(body).not.toContain('minted');
    expect(eventsOf(parseBusMessage(body, ROUTED))).toEqual([onWire(minted)]);
    expect(eventsOf(parseBusMessage(body, ROUTED))[0]).not.toHaveProperty('minted');
  });
});

describe('a deliver of several events on the wire', () => {
  const mintedEvent = (overrides: Record<string, unknown>): HeraldEvent =>
    parseEnvelope({ to: { users: ['alice'] }, event: 'message', data: null, ...overrides }, { nowMs: NOW, maxDataBytes: MAX_DATA_BYTES_CEILING });

  it('round-trips its events in order, in the events shape, without minted', () => {
    const events = [
      mintedEvent({ data: { n: 1 }, to: { users: ['alice', 'bob 👋'] }, ttl: 0 }),
      mintedEvent({ data: 'a\uFFFEb', to: { all: true }, event: 'chat.typing' }),
      event({ data: [1, 2, 3], to: { users: ['carol'] }, ttl: MAX_TTL_SECONDS }),
    ];
    const body = encodeBusMessage(deliver(...events));
    expect(body).not.toMatch(/[\uFFFE\uFFFF]/);
    expect(body).not.toContain('minted');
    const parsed = JSON.parse(body) as { events: Record<string, unknown>[] };
    expect(Object.keys(parsed)).toEqual(['v', 'kind', 'events']);
    expect(parsed.events.map((e) => Object.keys(e))).toEqual(Array(3).fill(['id', 'event', 'to', 'ttl', 'publishedAtMs', 'data']));
    expect(body).toContain(`"data":{"n":1}},{"id"`);
    expect(eventsOf(parseBusMessage(body, ROUTED))).toEqual(events.map(onWire));
  });

  it(`accepts 1 and ${MAX_BATCH} events`, () => {
    const one = { v: 1, kind: 'deliver', events: [eventWire()] };
    expect(eventsOf(parseBusMessage(JSON.stringify(one), ROUTED))).toEqual([event()]);
    const full = { v: 1, kind: 'deliver', events: Array.from({ length: MAX_BATCH }, (_, i) => eventWire({ data: { i } })) };
    expect(eventsOf(parseBusMessage(JSON.stringify(full), ROUTED)).map((e) => e.data)).toEqual(
      Array.from({ length: MAX_BATCH }, (_, i) => `{"i":${i}}`),
    );
  });

  it(`refuses an events list that is empty, longer than ${MAX_BATCH}, or not a list, with batch_invalid on field events`, () => {
    for (const events of [[], Array.from({ length: MAX_BATCH + 1 }, () => eventWire()), eventWire(), null]) {
      expectRefused({ v: 1, kind: 'deliver', events }, 'batch_invalid', 'events');
    }
  });

  it('refuses an unknown field beside events or in an event, and an event that is not an object, naming its index', () => {
    expectRefused({ v: 1, kind: 'deliver', events: [eventWire()], id: ID }, 'envelope_invalid', 'id');
    const inEvent = refusal(JSON.stringify({ v: 1, kind: 'deliver', events: [eventWire(), eventWire({ v: 1 })] }));
    expect([inEvent.code, inEvent.details.field, inEvent.details.index]).toEqual(['envelope_invalid', 'v', 1]);
    const notObject = refusal(JSON.stringify({ v: 1, kind: 'deliver', events: [eventWire(), eventWire(), 'oops'] }));
    expect([notObject.code, notObject.details.field, notObject.details.index]).toEqual(['envelope_invalid', '', 2]);
  });

  it('refuses encoding no events, or more than a body may carry', () => {
    expect(() => encodeBusMessage({ kind: 'deliver', events: [] })).toThrow(/1-100 events/);
    expect(() => encodeBusMessage(deliver(...Array<HeraldEvent>(MAX_BATCH + 1).fill(event())))).toThrow(/1-100 events/);
    expect(() => encodeBusMessageWithin({ kind: 'deliver', events: [] }, 256 * 1024)).toThrow(/events/);
  });
});

describe('every path refuses a bad field alike', () => {
  const tooMany = Array.from({ length: MAX_RECIPIENTS + 1 }, (_, i) => `u${i}`);
  const cases: [string, Record<string, unknown>, ErrorCode, string][] = [
    ['an id that is not a ULID', { id: 'nope' }, 'event_id_invalid', 'id'],
    ['an id that is a number', { id: 42 }, 'event_id_invalid', 'id'],
    ['an event name with a space', { event: 'has space' }, 'event_name_invalid', 'event'],
    ['an event name of 65 characters', { event: 'x'.repeat(65) }, 'event_name_invalid', 'event'],
    ['a reserved event name', { event: 'ping' }, 'event_name_reserved', 'event'],
    ['recipients of the wrong shape', { to: { users: ['a'], all: true } }, 'recipients_invalid', 'to'],
    ['an empty user list', { to: { users: [] } }, 'recipients_invalid', 'to.users'],
    ['a user id that is not a string', { to: { users: ['ok', 7] } }, 'recipients_invalid', 'to.users[1]'],
    [`${MAX_RECIPIENTS + 1} users`, { to: { users: tooMany } }, 'too_many_recipients', 'to.users'],
    ['a negative ttl', { ttl: -1 }, 'ttl_invalid', 'ttl'],
    ['a ttl as a string', { ttl: '60' }, 'ttl_invalid', 'ttl'],
    ['no data', { data: undefined }, 'envelope_invalid', 'data'],
    [`data over ${MAX_DATA_BYTES_CEILING} bytes`, { data: dataOfBytes(MAX_DATA_BYTES_CEILING + 1) }, 'payload_too_large', 'data'],
    ['an unknown field', { priority: 'high' }, 'envelope_invalid', 'priority'],
  ];

  it.each(cases)('%s: the same code and field from parseEnvelope and from both bus shapes', (_label, overrides, code, field) => {
    const paths = [
      thrown(() => event(overrides)),
      refusal(JSON.stringify(wire(overrides))),
      refusal(JSON.stringify({ v: 1, kind: 'deliver', events: [eventWire(), eventWire(overrides)] })),
    ];
    expect(paths.map((e) => [e.code, e.details.field])).toEqual(Array(3).fill([code, field]));
    expect(paths[2]!.details.index).toBe(1);
  });

  it(`removes repeated users on the bus too, before counting: ${MAX_RECIPIENTS + 1} entries naming ${MAX_RECIPIENTS} users are accepted`, () => {
    expect(eventsOf(parseBusMessage(JSON.stringify(wire({ to: { users: ['b', 'a', 'b'] } })), ROUTED))[0]!.to).toEqual({ users: ['b', 'a'] });
    const distinct = Array.from({ length: MAX_RECIPIENTS }, (_, i) => `u${i}`);
    const [got] = eventsOf(parseBusMessage(JSON.stringify(wire({ to: { users: [...distinct, 'u0'] } })), ROUTED));
    expect(got!.to).toEqual({ users: distinct });
  });
});

describe('encodeBusMessageWithin', () => {
  it('returns the one body when it fits', () => {
    const message = deliver(event());
    expect(encodeBusMessageWithin(message, 1024)).toEqual([encodeBusMessage(message)]);
  });

  it('splits an oversized deliver by recipients into parts that each fit and together name every user once', () => {
    const users = Array.from({ length: 300 }, (_, i) => `user-${i}-${'x'.repeat(100)}`);
    const message = deliver(event({ to: { users }, data: dataOfBytes(4_000) }));
    const max = 12_000;
    const bodies = encodeBusMessageWithin(message, max);
    expect(bodies.length).toBeGreaterThan(1);
    const parts = bodies.map((b) => parseBusMessage(b, ROUTED));
    for (const body of bodies) expect(Buffer.byteLength(body)).toBeLessThanOrEqual(max);
    const events = parts.flatMap(eventsOf);
    expect(events).toHaveLength(bodies.length);
    expect(events.flatMap((e) => ('users' in e.to ? [...e.to.users] : []))).toEqual(users);
    for (const e of events) expect({ ...e, to: null }).toEqual({ ...eventsOf(message)[0], to: null });
  });

  it('packs 100 events of 700 bytes greedily, in order, each body within the limit and each but the last full', () => {
    const events = Array.from({ length: 100 }, (_, i) => event({ data: dataOfBytes(700), to: { users: [`user-${i}`] } }));
    const max = 10_000;
    const bodies = encodeBusMessageWithin(deliver(...events), max);
    expect(bodies.length).toBeGreaterThan(1);
    for (const body of bodies) expect(Buffer.byteLength(body)).toBeLessThanOrEqual(max);
    const parts = bodies.map((b) => eventsOf(parseBusMessage(b, ROUTED)));
    expect(parts.flat()).toEqual(events);
    // Greedy: the next event would not have fitted in the body before it.
    parts.slice(0, -1).forEach((part, i) => {
      const next = parts[i + 1]![0]!;
      expect(Buffer.byteLength(encodeBusMessage(deliver(...part, next)))).toBeGreaterThan(max);
    });
  });

  it(`returns one body for a batch that fits, and bodies of at most ${MAX_BATCH} events for a longer one`, () => {
    const events = Array.from({ length: 250 }, (_, i) => event({ data: i }));
    expect(encodeBusMessageWithin(deliver(...events.slice(0, MAX_BATCH)), 256 * 1024)).toEqual([encodeBusMessage(deliver(...events.slice(0, MAX_BATCH)))]);
    const parts = encodeBusMessageWithin(deliver(...events), 256 * 1024).map((b) => eventsOf(parseBusMessage(b, ROUTED)));
    expect(parts.map((p) => p.length)).toEqual([MAX_BATCH, MAX_BATCH, 50]);
    expect(parts.flat()).toEqual(events);
  });

  it('splits by recipients, in its place, an event of a batch too big for a body of its own', () => {
    const users = Array.from({ length: 300 }, (_, i) => `user-${i}-${'x'.repeat(100)}`);
    const big = event({ to: { users }, data: dataOfBytes(4_000), event: 'big' });
    const events = [event({ data: 1 }), event({ data: 2 }), big, event({ data: 3 })];
    const max = 12_000;
    const bodies = encodeBusMessageWithin(deliver(...events), max);
    for (const body of bodies) expect(Buffer.byteLength(body)).toBeLessThanOrEqual(max);
    const got = bodies.flatMap((b) => eventsOf(parseBusMessage(b, ROUTED)));
    expect(got.map((e) => e.data)).toEqual(['1', '2', ...Array<string>(got.length - 3).fill(big.data), '3']);
    expect(got.filter((e) => e.event === 'big').flatMap((e) => ('users' in e.to ? [...e.to.users] : []))).toEqual(users);
  });

  it('refuses with payload_too_large a message that cannot fit even for one user', () => {
    const tooBig = [
      deliver(event({ data: dataOfBytes(5_000) })),
      deliver(event({ to: { all: true }, data: dataOfBytes(5_000) })),
      deliver(event(), event({ data: dataOfBytes(5_000) })),
    ];
    for (const message of tooBig) {
      let error: unknown;
      try {
        encodeBusMessageWithin(message, 4_000);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(HeraldError);
      expect((error as HeraldError).code).toBe('payload_too_large');
    }
  });
});

describe('parseBusMessage with a plain publish envelope', () => {
  const envelope = { to: { users: ['alice'] }, event: 'invoice.paid', data: { amount: 12 } };

  it('accepts it as a deliver when no node attribute came with it, and gives it an id', () => {
    const events = eventsOf(parseBusMessage(JSON.stringify(envelope), {}, { nowMs: NOW, defaultTtlSeconds: 120 }));
    expect(events).toHaveLength(1);
    expect(isEventId(events[0]!.id)).toBe(true);
    expect(events[0]).toMatchObject({ event: 'invoice.paid', data: '{"amount":12}', to: { users: ['alice'] }, ttlSeconds: 120, publishedAtMs: NOW });
    // This process assigned the id, so no earlier publish can have used it.
    expect(events[0]!.minted).toBe(true);
  });

  it(`accepts it with node=${ALL_NODES}, and keeps the id it was given`, () => {
    const [got] = eventsOf(parseBusMessage(JSON.stringify({ ...envelope, id: ID }), { node: ALL_NODES }, { nowMs: NOW }));
    expect(got?.id).toBe(ID);
    expect(got).not.toHaveProperty('minted');
  });

  it('refuses it when its node attribute names one node: Herald always wraps what it routes', () => {
    expectRefused(envelope, 'envelope_invalid', 'node', { node: 'node-a' });
  });

  it('refuses an invalid envelope with the envelope code', () => {
    expectRefused({ ...envelope, event: 'ping' }, 'event_name_reserved', 'event', {});
    expectRefused({ ...envelope, extra: 1 }, 'envelope_invalid', 'extra', {});
  });
});

describe('parseBusMessage refuses', () => {
  it('a body that is not a JSON object', () => {
    expectRefused('not json', 'json_invalid', '');
    expectRefused('', 'json_invalid', '');
    for (const body of ['[]', 'null', '"text"', '42']) expectRefused(body, 'envelope_invalid', '');
  });

  it('an unknown version or kind, and unknown fields', () => {
    expectRefused(wire({ v: 2 }), 'envelope_invalid', 'v');
    expectRefused(wire({ v: '1' }), 'envelope_invalid', 'v');
    expectRefused(wire({ kind: 'evict' }), 'envelope_invalid', 'kind');
    expectRefused(wire({ extra: true }), 'envelope_invalid', 'extra');
    expectRefused({ v: 1, kind: 'replace', userId: 'a', connectionId: 'b', byConnectionId: 'c', id: ID }, 'envelope_invalid', 'id');
  });

  it('a deliver with a bad id, event name, ttl or publish time', () => {
    expectRefused(wire({ id: 'nope' }), 'event_id_invalid', 'id');
    expectRefused(wire({ id: undefined }), 'event_id_invalid', 'id');
    expectRefused(wire({ event: 'has space' }), 'event_name_invalid', 'event');
    expectRefused(wire({ event: 'replaced' }), 'event_name_reserved', 'event');
    expectRefused(wire({ event: 'x'.repeat(65) }), 'event_name_invalid', 'event');
    for (const ttl of [-1, 1.5, MAX_TTL_SECONDS + 1, '60', null]) expectRefused(wire({ ttl }), 'ttl_invalid', 'ttl');
    for (const publishedAtMs of [-1, 1.5, '1', null, 2 ** 60]) expectRefused(wire({ publishedAtMs }), 'envelope_invalid', 'publishedAtMs');
  });

  it('a deliver without data, or with data over the ceiling', () => {
    expectRefused(wire({ data: undefined }), 'envelope_invalid', 'data');
    expectRefused(wire({ data: dataOfBytes(MAX_DATA_BYTES_CEILING + 1) }), 'payload_too_large', 'data');
  });

  it('a deliver with bad recipients', () => {
    for (const to of [{}, { all: false }, { all: true, users: ['a'] }, { users: 'alice' }, null, []]) {
      expectRefused(wire({ to }), 'recipients_invalid', 'to');
    }
    expectRefused(wire({ to: { users: [] } }), 'recipients_invalid', 'to.users');
    expectRefused(wire({ to: { users: ['ok', 7] } }), 'recipients_invalid', 'to.users[1]');
    expectRefused(wire({ to: { users: ['bad\u0007'] } }), 'recipients_invalid', 'to.users[0]');
    expectRefused(wire({ to: { users: ['x'.repeat(129)] } }), 'recipients_invalid', 'to.users[0]');
    const tooMany = Array.from({ length: MAX_RECIPIENTS + 1 }, (_, i) => `u${i}`);
    expectRefused(wire({ to: { users: tooMany } }), 'too_many_recipients', 'to.users');
  });

  it('a replace with a bad user or connection id', () => {
    const replace = { v: 1, kind: 'replace', userId: 'alice', connectionId: 'c-1', byConnectionId: 'c-2' };
    expectRefused({ ...replace, userId: '' }, 'envelope_invalid', 'userId');
    expectRefused({ ...replace, connectionId: 5 }, 'envelope_invalid', 'connectionId');
    expectRefused({ ...replace, byConnectionId: 'a\nb' }, 'envelope_invalid', 'byConnectionId');
    expectRefused({ v: 1, kind: 'replace', userId: 'alice', connectionId: 'c-1' }, 'envelope_invalid', 'byConnectionId');
    expectRefused({ ...replace, reclaim: false }, 'envelope_invalid', 'reclaim');
    expectRefused({ ...replace, reclaim: 'yes' }, 'envelope_invalid', 'reclaim');
  });
});

describe('isNodeId', () => {
  it('accepts 1-40 characters of A-Z a-z 0-9 _ - except "all"', () => {
    for (const id of ['n', 'node-a', 'n-0123456789ab', 'a'.repeat(40), '0f1e2d3c4b5a69788796a5b4c3d2e1f0', 'All']) expect(isNodeId(id)).toBe(true);
    for (const id of ['', 'all', 'a'.repeat(41), 'node a', 'node.a', 'nöde']) expect(isNodeId(id)).toBe(false);
  });
});

describe('the drain message', () => {
  it('round-trips, and refuses extra fields', () => {
    expect(parseBusMessage(encodeBusMessage({ kind: 'drain' }), { node: 'n-1' })).toEqual({ kind: 'drain' });
    expect(() => parseBusMessage('{"v":1,"kind":"drain","x":1}', { node: 'n-1' })).toThrow(HeraldError);
  });
});
