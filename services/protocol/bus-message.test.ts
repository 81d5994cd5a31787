import { describe, expect, it } from 'vitest';
import type { BusMessage } from '../ports/bus';
import { ALL_NODES, encodeBusMessage, encodeBusMessageWithin, encodeBusProbe, isNodeId, parseBusMessage, parseBusWireMessage, type BusAttributes } from './bus-message';
import { parseEnvelope, type HeraldEvent } from './envelope';
import { HeraldError, type ErrorCode } from './errors';
import { isEventId } from './event-id';
import { MAX_DATA_BYTES_CEILING, MAX_RECIPIENTS, MAX_TTL_SECONDS } from './limits';

const NOW = Date.UTC(2030, 0, 1);
const ID = '01ARYZ6S41TSV4RRFFQ69G5FAV';
const ROUTED: BusAttributes = { node: 'node-a' };

function event(overrides: Record<string, unknown> = {}): HeraldEvent {
  return parseEnvelope(
    { id: ID, to: { users: ['alice'] }, event: 'message', data: { text: 'hi' }, ttl: 60, ...overrides },
    { nowMs: NOW, maxDataBytes: MAX_DATA_BYTES_CEILING },
  );
}

const deliver = (e: HeraldEvent): BusMessage => ({ kind: 'deliver', event: e });

function roundTrip(message: BusMessage): BusMessage {
  return parseBusMessage(encodeBusMessage(message), ROUTED);
}

/** A valid deliver body as an object, for tests that break one field. */
function wire(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...(JSON.parse(encodeBusMessage(deliver(event()))) as Record<string, unknown>), ...overrides };
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
    if (got.kind === 'deliver') expect(JSON.parse(got.event.data)).toEqual(data);
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
    if (message.kind !== 'deliver') throw new Error('unreachable');
    expect(body).toContain(`"data":${message.event.data}}`);
    expect(Buffer.byteLength(body)).toBeLessThan(MAX_DATA_BYTES_CEILING + 300);
    expect(roundTrip(message)).toEqual(message);
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
    const seen = parts.flatMap((p) => (p.kind === 'deliver' && 'users' in p.event.to ? [...p.event.to.users] : []));
    expect(seen).toEqual(users);
    for (const p of parts) {
      if (p.kind !== 'deliver' || message.kind !== 'deliver') throw new Error('not a deliver');
      expect({ ...p.event, to: null }).toEqual({ ...message.event, to: null });
    }
  });

  it('refuses with payload_too_large a message that cannot fit even for one user', () => {
    for (const message of [deliver(event({ data: dataOfBytes(5_000) })), deliver(event({ to: { all: true }, data: dataOfBytes(5_000) }))]) {
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
    const got = parseBusMessage(JSON.stringify(envelope), {}, { nowMs: NOW, defaultTtlSeconds: 120 });
    expect(got.kind).toBe('deliver');
    if (got.kind !== 'deliver') return;
    expect(isEventId(got.event.id)).toBe(true);
    expect(got.event).toMatchObject({ event: 'invoice.paid', data: '{"amount":12}', to: { users: ['alice'] }, ttlSeconds: 120, publishedAtMs: NOW });
  });

  it(`accepts it with node=${ALL_NODES}, and keeps the id it was given`, () => {
    const got = parseBusMessage(JSON.stringify({ ...envelope, id: ID }), { node: ALL_NODES }, { nowMs: NOW });
    expect(got.kind === 'deliver' && got.event.id).toBe(ID);
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
    expectRefused(wire({ event: 'replaced' }), 'event_name_invalid', 'event');
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
    expectRefused(wire({ to: { users: tooMany } }), 'recipients_invalid', 'to.users');
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

describe('the probe', () => {
  it('round-trips through parseBusWireMessage, which is what the SNS→SQS bus reads', () => {
    expect(parseBusWireMessage(encodeBusProbe('nonce-1234'), { node: 'n-1' })).toEqual({ kind: 'probe', nonce: 'nonce-1234' });
  });

  it('never reaches a handler: parseBusMessage refuses it', () => {
    expect(() => parseBusMessage(encodeBusProbe('nonce-1234'), { node: 'n-1' })).toThrow(/internal to the bus/);
  });

  it('refuses a nonce that is not 8-64 URL-safe characters, and extra fields', () => {
    expect(() => encodeBusProbe('short')).toThrow(/nonce/);
    for (const nonce of ['short', 'x'.repeat(65), 'has space!', 12345678]) {
      expect(() => parseBusWireMessage(JSON.stringify({ v: 1, kind: 'probe', nonce }), { node: 'n-1' })).toThrow(HeraldError);
    }
    expect(() => parseBusWireMessage('{"v":1,"kind":"probe","nonce":"nonce-1234","x":1}', { node: 'n-1' })).toThrow(HeraldError);
  });
});
