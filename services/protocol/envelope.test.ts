import { describe, expect, it } from 'vitest';
import { parseEnvelope, parsePublishBody, type HeraldEvent } from './envelope';
import { HeraldError, type ErrorCode } from './errors';
import { eventIdFloor, eventIdTimeMs, isEventId } from './event-id';
import { frameEvent } from './sse-frame';
import {
  DEFAULT_MAX_DATA_BYTES,
  MAX_BATCH,
  MAX_ID_AGE_MS,
  MAX_ID_CLOCK_SKEW_MS,
  MAX_RECIPIENTS,
  MAX_TTL_SECONDS,
  MAX_USER_ID_LENGTH,
  RESERVED_EVENT_NAMES,
} from './limits';

/** Every id minted in this file is minted at this instant, so its time part is known exactly. */
const NOW = Date.UTC(2030, 0, 1);
/** A publisher's id from a second before NOW. */
const VALID_ID = eventIdFloor(NOW - 1000).slice(0, 10) + 'TSV4RRFFQ69G5FAV';

function envelope(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { to: { users: ['u1'] }, event: 'message', data: { text: 'hi' }, ...overrides };
}

function parse(input: unknown, options: { maxDataBytes?: number; defaultTtlSeconds?: number } = {}): HeraldEvent {
  return parseEnvelope(input, { nowMs: NOW, ...options });
}

/** Runs `fn`, which must refuse with a HeraldError, and returns that error. */
function refusal(fn: () => unknown): HeraldError {
  try {
    fn();
  } catch (error) {
    if (error instanceof HeraldError) return error;
    throw error;
  }
  throw new Error('expected a HeraldError, but nothing was thrown');
}

function expectRefused(input: unknown, code: ErrorCode, field: string, options?: { maxDataBytes?: number }): HeraldError {
  const error = refusal(() => parse(input, options));
  expect({ code: error.code, field: error.details.field }).toEqual({ code, field });
  return error;
}

/** A JSON string value whose serialization (quotes included) is exactly `bytes` UTF-8 bytes, built from `unit`. */
function stringOfBytes(bytes: number, unit: string): string {
  const unitBytes = Buffer.byteLength(unit);
  const body = bytes - 2;
  const units = Math.floor(body / unitBytes);
  const value = unit.repeat(units) + 'x'.repeat(body - units * unitBytes);
  expect(Buffer.byteLength(JSON.stringify(value))).toBe(bytes);
  return value;
}

describe('parseEnvelope', () => {
  it('returns the validated event with data serialized and the publish time', () => {
    const event = parse(envelope({ id: VALID_ID, ttl: 60 }));
    expect(event).toEqual({
      id: VALID_ID,
      event: 'message',
      data: '{"text":"hi"}',
      to: { users: ['u1'] },
      ttlSeconds: 60,
      publishedAtMs: NOW,
    });
    expect(event).not.toHaveProperty('minted');
  });

  describe('the envelope itself', () => {
    it.each([
      ['null', null],
      ['an array', [envelope()]],
      ['a string', 'message'],
      ['a number', 42],
    ])('refuses %s with envelope_invalid and an empty field', (_label, input) => {
      expectRefused(input, 'envelope_invalid', '');
    });

    it('refuses an unknown key with envelope_invalid naming that key', () => {
      const error = expectRefused(envelope({ priority: 'high' }), 'envelope_invalid', 'priority');
      expect(error.message).toBe('unknown field "priority"');
      expect(error.status).toBe(400);
    });

    it('refuses a misplaced recipients key at the top level', () => {
      expectRefused({ users: ['u1'], event: 'message', data: 1 }, 'envelope_invalid', 'users');
    });

    it('refuses an own __proto__ key, as JSON.parse produces it', () => {
      const input: unknown = JSON.parse('{"to":{"users":["u1"]},"event":"message","data":1,"__proto__":{"x":1}}');
      expectRefused(input, 'envelope_invalid', '__proto__');
    });
  });

  describe('event name', () => {
    it('accepts 64 characters', () => {
      expect(parse(envelope({ event: 'a'.repeat(64) })).event).toBe('a'.repeat(64));
    });

    it('refuses 65 characters with event_name_invalid', () => {
      expectRefused(envelope({ event: 'a'.repeat(65) }), 'event_name_invalid', 'event');
    });

    it('accepts every allowed character class: letters, digits, _ . : -', () => {
      expect(parse(envelope({ event: 'Chat_v2.message:new-1' })).event).toBe('Chat_v2.message:new-1');
    });

    it.each([
      ['empty', ''],
      ['a space', 'chat message'],
      ['a line feed', 'message\n'],
      ['a carriage return', 'mess\rage'],
      ['a slash', 'chat/message'],
      ['a comma', 'a,b'],
      ['a non-ASCII letter', 'messagé'],
      ['an emoji', 'wave👋'],
      ['a NUL', 'a\u0000'],
    ])('refuses a name with %s with event_name_invalid', (_label, name) => {
      expectRefused(envelope({ event: name }), 'event_name_invalid', 'event');
    });

    it.each([
      ['missing', undefined],
      ['a number', 42],
      ['null', null],
      ['an array', ['message']],
    ])('refuses a name that is %s with event_name_invalid', (_label, name) => {
      expectRefused(envelope({ event: name }), 'event_name_invalid', 'event');
    });

    it.each(['ready', 'ping', 'gap', 'replaced', 'closing', 'open', 'error'])(
      'refuses the reserved name "%s" with event_name_reserved',
      (name) => {
        const error = expectRefused(envelope({ event: name }), 'event_name_reserved', 'event');
        expect(error.message).toBe(`"${name}" is used by the stream itself`);
      },
    );

    it('reserves exactly the stream and EventSource names tested above', () => {
      expect([...RESERVED_EVENT_NAMES].sort()).toEqual(['closing', 'error', 'gap', 'open', 'ping', 'ready', 'replaced']);
    });

    it('accepts "message", which has no control meaning', () => {
      expect(parse(envelope({ event: 'message' })).event).toBe('message');
    });

    it('accepts a reserved name in another case, since SSE event types are case-sensitive', () => {
      expect(parse(envelope({ event: 'Ready' })).event).toBe('Ready');
    });
  });

  describe('data', () => {
    it(`accepts data serialized to exactly ${DEFAULT_MAX_DATA_BYTES} bytes of ASCII`, () => {
      const value = stringOfBytes(DEFAULT_MAX_DATA_BYTES, 'x');
      expect(parse(envelope({ data: value })).data).toBe(JSON.stringify(value));
    });

    it('refuses ASCII data one byte over the default limit with payload_too_large', () => {
      const error = expectRefused(envelope({ data: stringOfBytes(DEFAULT_MAX_DATA_BYTES + 1, 'x') }), 'payload_too_large', 'data');
      expect(error.message).toBe(`data is ${DEFAULT_MAX_DATA_BYTES + 1} bytes serialized; the limit is ${DEFAULT_MAX_DATA_BYTES}`);
      expect(error.status).toBe(413);
    });

    it.each([
      ['2-byte', 'é'],
      ['3-byte', '€'],
      ['4-byte', '👋'],
    ])('counts UTF-8 bytes, not characters: %s characters at the limit are accepted, one byte over refused', (_label, unit) => {
      const atLimit = stringOfBytes(DEFAULT_MAX_DATA_BYTES, unit);
      expect(parse(envelope({ data: atLimit })).data).toBe(JSON.stringify(atLimit));
      const over = stringOfBytes(DEFAULT_MAX_DATA_BYTES + 1, unit);
      expectRefused(envelope({ data: over }), 'payload_too_large', 'data');
    });

    it('refuses data that has as many characters as accepted data but one more byte', () => {
      const accepted = 'x'.repeat(DEFAULT_MAX_DATA_BYTES - 2);
      const oneByteMore = 'é' + 'x'.repeat(DEFAULT_MAX_DATA_BYTES - 3);
      expect(oneByteMore.length).toBe(accepted.length);
      expect(parse(envelope({ data: accepted })).data.length).toBe(DEFAULT_MAX_DATA_BYTES);
      expectRefused(envelope({ data: oneByteMore }), 'payload_too_large', 'data');
    });

    it('applies a configured maxDataBytes at its boundary, counting the serialized object', () => {
      // {"a":"é"} is 10 bytes: 9 characters, one of them 2 bytes.
      expect(parse(envelope({ data: { a: 'é' } }), { maxDataBytes: 10 }).data).toBe('{"a":"é"}');
      expectRefused(envelope({ data: { a: 'é' } }), 'payload_too_large', 'data', { maxDataBytes: 9 });
    });

    it('counts escapes as serialized: a newline is two bytes of JSON', () => {
      // "\n\n\n" serializes to 8 bytes: two quotes and three two-byte escapes.
      expect(parse(envelope({ data: '\n\n\n' }), { maxDataBytes: 8 }).data).toBe('"\\n\\n\\n"');
      expectRefused(envelope({ data: '\n\n\n' }), 'payload_too_large', 'data', { maxDataBytes: 7 });
    });

    it('refuses data that is undefined with envelope_invalid on field data', () => {
      const input = envelope();
      delete input.data;
      const error = expectRefused(input, 'envelope_invalid', 'data');
      expect(error.message).toBe('`data` is required (any JSON value)');
    });

    it.each([
      ['a BigInt', () => 10n],
      ['an object holding a BigInt', () => ({ amount: 10n })],
      ['a circular object', () => {
        const node: Record<string, unknown> = { name: 'loop' };
        node.self = node;
        return node;
      }],
      ['a function', () => () => 1],
      ['a symbol', () => Symbol('s')],
      ['an object whose toJSON throws', () => ({ toJSON: () => { throw new Error('no'); } })],
    ])('refuses data that JSON cannot hold (%s) with envelope_invalid on field data', (_label, make) => {
      const error = expectRefused(envelope({ data: make() }), 'envelope_invalid', 'data');
      expect(error.message).toBe('`data` must be a JSON value');
      expect(error.status).toBe(400);
    });

    it.each([
      ['null', null, 'null'],
      ['false', false, 'false'],
      ['zero', 0, '0'],
      ['an empty string', '', '""'],
      ['an array', [1, 'a'], '[1,"a"]'],
    ])('accepts %s as data', (_label, data, serialized) => {
      expect(parse(envelope({ data })).data).toBe(serialized);
    });

    it('serializes data with LF, CR and CRLF to a single line that frames as one data line', () => {
      const text = 'line 1\nline 2\r\nline 3\rend\u2028';
      const event = parse(envelope({ data: { text } }));
      expect(event.data).not.toMatch(/[\r\n]/);
      expect(event.data).toBe('{"text":"line 1\\nline 2\\r\\nline 3\\rend\u2028"}');
      expect(JSON.parse(event.data)).toEqual({ text });
      const dataLines = frameEvent(event).split('\n').filter((line) => line.startsWith('data:'));
      expect(dataLines).toHaveLength(1);
      expect(JSON.parse(dataLines[0]!.slice('data: '.length))).toEqual({ text });
    });
  });

  describe('recipients', () => {
    it('accepts {all:true}', () => {
      expect(parse(envelope({ to: { all: true } })).to).toEqual({ all: true });
    });

    it.each([
      ['a list', ['u1']],
      ['null', null],
      ['missing', undefined],
      ['a string', 'u1'],
      ['an empty object', {}],
      ['{all:false}', { all: false }],
      ['{all:"true"}', { all: 'true' }],
      ['{all:true} with users', { all: true, users: ['u1'] }],
      ['users with an extra key', { users: ['u1'], priority: 1 }],
      ['{all:true} with an extra key', { all: true, x: 1 }],
      ['users that are not a list', { users: 'u1' }],
    ])('refuses `to` that is %s with recipients_invalid on field to', (_label, to) => {
      expectRefused(envelope({ to }), 'recipients_invalid', 'to');
    });

    it('refuses an empty user list with recipients_invalid on field to.users', () => {
      expectRefused(envelope({ to: { users: [] } }), 'recipients_invalid', 'to.users');
    });

    it(`accepts ${MAX_RECIPIENTS} users`, () => {
      const users = Array.from({ length: MAX_RECIPIENTS }, (_, i) => `u${i}`);
      expect(parse(envelope({ to: { users } })).to).toEqual({ users });
    });

    it(`refuses ${MAX_RECIPIENTS + 1} users with too_many_recipients`, () => {
      const users = Array.from({ length: MAX_RECIPIENTS + 1 }, (_, i) => `u${i}`);
      const error = expectRefused(envelope({ to: { users } }), 'too_many_recipients', 'to.users');
      expect(error.message).toBe('at most 1000 users per notification');
    });

    it(`removes repeats before counting: ${MAX_RECIPIENTS + 1} entries naming ${MAX_RECIPIENTS} users are accepted`, () => {
      const distinct = Array.from({ length: MAX_RECIPIENTS }, (_, i) => `u${i}`);
      const withRepeat = [...distinct.slice(0, 500), 'u0', ...distinct.slice(500)];
      expect(withRepeat).toHaveLength(MAX_RECIPIENTS + 1);
      expect(parse(envelope({ to: { users: withRepeat } })).to).toEqual({ users: distinct });
    });

    it(`refuses ${MAX_RECIPIENTS + 1} distinct users even when repeats come with them`, () => {
      const distinct = Array.from({ length: MAX_RECIPIENTS + 1 }, (_, i) => `u${i}`);
      expectRefused(envelope({ to: { users: [...distinct, 'u0', 'u1'] } }), 'too_many_recipients', 'to.users');
    });

    it(`accepts a user id of ${MAX_USER_ID_LENGTH} characters`, () => {
      const id = 'u'.repeat(MAX_USER_ID_LENGTH);
      expect(parse(envelope({ to: { users: [id] } })).to).toEqual({ users: [id] });
    });

    it(`refuses a user id of ${MAX_USER_ID_LENGTH + 1} characters, naming its index`, () => {
      expectRefused(envelope({ to: { users: ['a', 'u'.repeat(MAX_USER_ID_LENGTH + 1)] } }), 'recipients_invalid', 'to.users[1]');
    });

    it.each([
      ['empty', ''],
      ['NUL', 'a\u0000b'],
      ['a line feed', 'alice\n'],
      ['a carriage return', 'a\rb'],
      ['a tab', 'a\tb'],
      ['the last C0 control, U+001F', 'a\u001f'],
      ['DEL', 'a\u007f'],
      ['the first C1 control, U+0080', 'a\u0080'],
      ['NEL, U+0085', 'line\u0085break'],
      ['the last C1 control, U+009F', '\u009fa'],
      ['a lone high surrogate', 'a\ud83d'],
      ['a lone low surrogate', '\udc4bb'],
      ['a low surrogate before a high one', 'a\udc4b\ud83db'],
      ['two high surrogates', '\ud83d\ud83d\udc4b'],
      ['a number', 42],
      ['null', null],
      ['an object', { id: 'u1' }],
    ])('refuses a user id that is %s, naming its index', (_label, user) => {
      expectRefused(envelope({ to: { users: ['ok-1', 'ok-2', user] } }), 'recipients_invalid', 'to.users[2]');
    });

    it('accepts user ids with spaces, punctuation and non-ASCII characters, from U+00A0 just past the C1 controls, and surrogate pairs', () => {
      const users = ['Jane Doe', 'user@example.com', 'ユーザー', '655093', 'a\u00a0b', 'ÿ', 'wave 👋', '\ud83d\udc4b'];
      expect(parse(envelope({ to: { users } })).to).toEqual({ users });
    });

    it('removes duplicate users, keeping first-seen order', () => {
      expect(parse(envelope({ to: { users: ['b', 'a', 'b', 'c', 'a'] } })).to).toEqual({ users: ['b', 'a', 'c'] });
    });
  });

  describe('ttl', () => {
    it('applies the default of one hour when absent', () => {
      expect(parse(envelope()).ttlSeconds).toBe(3600);
    });

    it('applies the configured default when absent', () => {
      expect(parse(envelope(), { defaultTtlSeconds: 120 }).ttlSeconds).toBe(120);
    });

    it('accepts 0 (live only)', () => {
      expect(parse(envelope({ ttl: 0 })).ttlSeconds).toBe(0);
    });

    it(`accepts the maximum, ${MAX_TTL_SECONDS} seconds`, () => {
      expect(parse(envelope({ ttl: MAX_TTL_SECONDS })).ttlSeconds).toBe(MAX_TTL_SECONDS);
    });

    it.each([
      ['one over the maximum', MAX_TTL_SECONDS + 1],
      ['negative', -1],
      ['not whole', 1.5],
      ['a numeric string', '60'],
      ['null', null],
      ['NaN', Number.NaN],
      ['infinite', Number.POSITIVE_INFINITY],
    ])('refuses a ttl that is %s with ttl_invalid', (_label, ttl) => {
      expectRefused(envelope({ ttl }), 'ttl_invalid', 'ttl');
    });
  });

  describe('id', () => {
    it('keeps a valid ULID given by the publisher, and does not mark it minted: an earlier publish may have used it', () => {
      const event = parse(envelope({ id: VALID_ID }));
      expect(event.id).toBe(VALID_ID);
      expect(event).not.toHaveProperty('minted');
    });

    it('assigns a ULID of the publish time when absent, and marks it minted', () => {
      const event = parse(envelope());
      expect(isEventId(event.id)).toBe(true);
      expect(eventIdTimeMs(event.id)).toBe(NOW);
      expect(event.minted).toBe(true);
    });

    it('assigns a different, larger id on each call', () => {
      const first = parse(envelope()).id;
      const second = parse(envelope()).id;
      expect(second > first).toBe(true);
    });

    it(`accepts an id whose time is ${MAX_ID_CLOCK_SKEW_MS} ms ahead of the server clock, to its last id of that millisecond`, () => {
      const floor = eventIdFloor(NOW + MAX_ID_CLOCK_SKEW_MS);
      const last = floor.slice(0, 10) + 'Z'.repeat(16);
      expect(parse(envelope({ id: floor })).id).toBe(floor);
      expect(parse(envelope({ id: last })).id).toBe(last);
    });

    it(`refuses an id whose time is ${MAX_ID_CLOCK_SKEW_MS + 1} ms ahead of the server clock with event_id_invalid`, () => {
      const error = expectRefused(envelope({ id: eventIdFloor(NOW + MAX_ID_CLOCK_SKEW_MS + 1) }), 'event_id_invalid', 'id');
      expect(error.message).toMatch(/future/);
      expect(error.status).toBe(400);
    });

    it('judges the skew against options.nowMs, the server clock, not the time of the run', () => {
      const id = eventIdFloor(NOW + MAX_ID_CLOCK_SKEW_MS + 1);
      expect(parseEnvelope(envelope({ id }), { nowMs: NOW + 1 }).id).toBe(id);
      expect(refusal(() => parseEnvelope(envelope({ id }), { nowMs: NOW })).code).toBe('event_id_invalid');
    });

    it(`accepts an id whose time is ${MAX_ID_AGE_MS} ms (24 h) behind the server clock`, () => {
      const oldest = eventIdFloor(NOW - MAX_ID_AGE_MS);
      expect(parse(envelope({ id: oldest })).id).toBe(oldest);
    });

    it(`refuses an id whose time is ${MAX_ID_AGE_MS + 1} ms behind the server clock with event_id_out_of_range, even its last id of that millisecond`, () => {
      const tooOld = eventIdFloor(NOW - MAX_ID_AGE_MS - 1);
      const error = expectRefused(envelope({ id: tooOld.slice(0, 10) + 'Z'.repeat(16) }), 'event_id_out_of_range', 'id');
      expect(error.message).toMatch(/24 hours ago/);
      expect(error.status).toBe(400);
      expectRefused(envelope({ id: '01ARYZ6S41TSV4RRFFQ69G5FAV' }), 'event_id_out_of_range', 'id');
    });

    it('judges the age against options.nowMs, the server clock, not the time of the run', () => {
      const id = eventIdFloor(NOW - MAX_ID_AGE_MS);
      expect(parseEnvelope(envelope({ id }), { nowMs: NOW }).id).toBe(id);
      expect(refusal(() => parseEnvelope(envelope({ id }), { nowMs: NOW + 1 })).code).toBe('event_id_out_of_range');
    });

    it.each([
      ['lower case', VALID_ID.toLowerCase()],
      ['25 characters', VALID_ID.slice(0, 25)],
      ['27 characters', VALID_ID + '0'],
      ['a letter Crockford excludes (U)', '01ARYZ6S41TSV4RRFFQ69G5FAU'],
      ['a time past 2^48 ms', '81ARYZ6S41TSV4RRFFQ69G5FAV'],
      ['empty', ''],
      ['a number', 42],
      ['null', null],
    ])('refuses an id that is %s with event_id_invalid', (_label, id) => {
      const error = expectRefused(envelope({ id }), 'event_id_invalid', 'id');
      expect(error.status).toBe(400);
    });
  });
});

describe('parsePublishBody', () => {
  function body(count: number): { notifications: Record<string, unknown>[] } {
    return { notifications: Array.from({ length: count }, (_, i) => envelope({ data: { i } })) };
  }

  function batchRefusal(input: unknown): HeraldError {
    return refusal(() => parsePublishBody(input, { nowMs: NOW }));
  }

  it('wraps a single envelope in a list of one', () => {
    const events = parsePublishBody(envelope({ id: VALID_ID }), { nowMs: NOW });
    expect(events.map((e) => e.id)).toEqual([VALID_ID]);
    expect(events[0]).not.toHaveProperty('minted');
  });

  it('accepts a batch of 1', () => {
    expect(parsePublishBody(body(1), { nowMs: NOW }).map((e) => e.data)).toEqual(['{"i":0}']);
  });

  it(`accepts a batch of ${MAX_BATCH}, in order, with strictly increasing ids`, () => {
    const events = parsePublishBody(body(MAX_BATCH), { nowMs: NOW });
    expect(events.map((e) => e.data)).toEqual(Array.from({ length: MAX_BATCH }, (_, i) => `{"i":${i}}`));
    const ids = events.map((e) => e.id);
    expect(ids).toEqual([...ids].sort());
    expect(new Set(ids).size).toBe(MAX_BATCH);
    expect(events.every((e) => e.minted === true)).toBe(true);
  });

  it('passes the options to every item', () => {
    const events = parsePublishBody(body(2), { nowMs: NOW, defaultTtlSeconds: 7 });
    expect(events.map((e) => [e.ttlSeconds, e.publishedAtMs])).toEqual([
      [7, NOW],
      [7, NOW],
    ]);
  });

  it.each([
    ['an empty batch', { notifications: [] }],
    [`${MAX_BATCH + 1} items`, body(MAX_BATCH + 1)],
    ['notifications that is not a list', { notifications: envelope() }],
    ['notifications that is null', { notifications: null }],
    ['an extra key beside notifications', { ...body(1), to: { all: true } }],
  ])('refuses %s with batch_invalid, without field or index', (_label, input) => {
    const error = batchRefusal(input);
    expect(error.code).toBe('batch_invalid');
    expect(error.details).toEqual({});
    expect(error.status).toBe(400);
  });

  it('reports the index and field of an invalid item, and returns nothing', () => {
    const input = body(5);
    input.notifications[3] = envelope({ to: { users: ['ok', 'bad\n'] } });
    let result: unknown = 'not assigned';
    const error = refusal(() => {
      result = parsePublishBody(input, { nowMs: NOW });
    });
    expect(result).toBe('not assigned');
    expect(error.code).toBe('recipients_invalid');
    expect(error.toJSON()).toEqual({
      error: 'recipients_invalid',
      message: 'user ids are strings of 1-128 characters without control characters or unpaired surrogates',
      field: 'to.users[1]',
      index: 3,
    });
  });

  it('reports the index of an item whose id is from the future', () => {
    const input = body(3);
    input.notifications[2] = envelope({ id: eventIdFloor(NOW + MAX_ID_CLOCK_SKEW_MS + 1) });
    const error = batchRefusal(input);
    expect([error.code, error.details.index, error.details.field]).toEqual(['event_id_invalid', 2, 'id']);
  });

  it('reports the first invalid item when several are invalid', () => {
    const input = body(4);
    input.notifications[1] = envelope({ event: 'ping' });
    input.notifications[2] = envelope({ ttl: -1 });
    const error = batchRefusal(input);
    expect([error.code, error.details.index, error.details.field]).toEqual(['event_name_reserved', 1, 'event']);
  });

  it('reports an item that is not an object at its index', () => {
    const input = { notifications: [envelope(), 'oops'] };
    const error = batchRefusal(input);
    expect([error.code, error.details.index, error.details.field]).toEqual(['envelope_invalid', 1, '']);
  });

  it('refuses a nested batch as an unknown field of the item', () => {
    const error = batchRefusal({ notifications: [body(1)] });
    expect([error.code, error.details.index, error.details.field]).toEqual(['envelope_invalid', 0, 'notifications']);
  });
});
