import { describe, expect, it } from 'vitest';
import { gzipSync } from 'node:zlib';
import { DEFAULT_MAX_DATA_BYTES, MAX_BATCH, MAX_ID_AGE_MS, maxPublishBodyBytes } from '../../services/protocol/limits';
import { eventIdFloor } from '../../services/protocol/event-id';
import { startTestNode, type TestNode } from '../support/start-node';
import { rawRequest, type RawResponse } from '../support/raw-http';
import { TEST_PUBLISH_TOKEN } from '../support/tokens';
import { connect, dataOfBytes, sentinel } from '../support/publish-kit';

const toAlice = { to: { users: ['alice'] }, event: 'message' };

function post(node: TestNode, body: string | Buffer, contentType?: string, extraHeaders: Record<string, string> = {}): Promise<RawResponse> {
  const headers: Record<string, string> = { Authorization: `Bearer ${TEST_PUBLISH_TOKEN}`, ...extraHeaders };
  if (contentType !== undefined) headers['Content-Type'] = contentType;
  return rawRequest(node.url, { path: '/publish', headers, body });
}

describe('POST /publish: media type and JSON', () => {
  it.each([
    ['text/plain', 'text/plain'],
    ['form data', 'application/x-www-form-urlencoded'],
    ['a look-alike type', 'application/jsonl'],
    ['a JSON-based type that is not plain JSON', 'application/json-patch+json'],
    ['a structured-syntax suffix type', 'application/merge-patch+json'],
    ['a JSON type as a parameter of another', 'text/plain; type=application/json'],
    ['no Content-Type at all', undefined],
  ])('refuses %s with 415 unsupported_media_type', async (_case, contentType) => {
    const node = await startTestNode();
    const answer = await post(node, JSON.stringify({ ...toAlice, data: 1 }), contentType);
    expect(answer.status).toBe(415);
    expect(answer.json).toMatchObject({ error: 'unsupported_media_type' });
  });

  it.each(['application/json', 'application/json; charset=utf-8', 'Application/JSON'])('accepts Content-Type %s', async (contentType) => {
    const node = await startTestNode();
    expect((await post(node, JSON.stringify({ ...toAlice, data: 1 }), contentType)).status).toBe(202);
  });

  it.each(['gzip', 'deflate', 'br', 'GZIP'])('refuses Content-Encoding %s with 415 unsupported_media_type, even for a body that decodes to valid JSON', async (encoding) => {
    const node = await startTestNode();
    const alice = await connect(node, 'alice');
    const answer = await post(node, gzipSync(JSON.stringify({ ...toAlice, data: 1 })), 'application/json', { 'Content-Encoding': encoding });
    expect(answer.status).toBe(415);
    expect(answer.json).toMatchObject({ error: 'unsupported_media_type' });
    await sentinel(node, ['alice'], [alice]);
    expect(alice.notifications().map((e) => e.event)).toEqual(['sentinel']);
  });

  it('accepts Content-Encoding identity', async () => {
    const node = await startTestNode();
    const answer = await post(node, JSON.stringify({ ...toAlice, data: 1 }), 'application/json', { 'Content-Encoding': 'identity' });
    expect(answer.status, answer.text).toBe(202);
  });

  it.each([
    ['a byte that is never UTF-8 (0xFF)', Buffer.from([0xff])],
    ['a truncated two-byte sequence', Buffer.from([0xc3])],
    ['an overlong encoding of "/"', Buffer.from([0xc0, 0xaf])],
    ['an encoded UTF-16 surrogate', Buffer.from([0xed, 0xa0, 0x80])],
    ['Latin-1 "é"', Buffer.from('é', 'latin1')],
  ])('refuses a body with %s inside a JSON string with 400 json_invalid, and delivers nothing', async (_case, bad) => {
    const node = await startTestNode();
    const alice = await connect(node, 'alice');
    const body = Buffer.concat([Buffer.from('{"to":{"users":["alice"]},"event":"message","data":"caf'), bad, Buffer.from('"}')]);
    const answer = await post(node, body, 'application/json');
    expect(answer.status).toBe(400);
    expect(answer.json).toMatchObject({ error: 'json_invalid' });
    await sentinel(node, ['alice'], [alice]);
    expect(alice.notifications().map((e) => e.event)).toEqual(['sentinel']);
  });

  it('delivers valid multi-byte UTF-8 as sent', async () => {
    const node = await startTestNode();
    const alice = await connect(node, 'alice');
    const answer = await post(node, Buffer.from(JSON.stringify({ ...toAlice, data: 'café 👋 ユーザー' }), 'utf8'), 'application/json');
    expect(answer.status, answer.text).toBe(202);
    expect(JSON.parse((await alice.waitFor((e) => e.id === answer.json?.id, 'the event')).data)).toBe('café 👋 ユーザー');
  });

  it.each([
    ['truncated JSON', '{"to":{"users":["alice"]},"event":"message","data":'],
    ['an empty body', ''],
    ['a trailing comma', '{"to":{"users":["alice"]},"event":"message","data":1,}'],
    ['single quotes', "{'to':{'users':['alice']}}"],
  ])('refuses %s with 400 json_invalid', async (_case, body) => {
    const node = await startTestNode();
    const answer = await post(node, body, 'application/json');
    expect(answer.status).toBe(400);
    expect(answer.json).toMatchObject({ error: 'json_invalid' });
  });
});

describe('POST /publish: the envelope', () => {
  const refusals: Array<[string, unknown, string, string]> = [
    ['an unknown field', { ...toAlice, data: 1, priority: 'high' }, 'envelope_invalid', 'priority'],
    ['a body that is not an object', [{ ...toAlice, data: 1 }], 'envelope_invalid', ''],
    ['a missing data', { ...toAlice }, 'envelope_invalid', 'data'],
    ['a missing event', { to: { users: ['alice'] }, data: 1 }, 'event_name_invalid', 'event'],
    ['an event name with a space', { ...toAlice, event: 'new message', data: 1 }, 'event_name_invalid', 'event'],
    ['an event name with a newline', { ...toAlice, event: 'message\ndata: x', data: 1 }, 'event_name_invalid', 'event'],
    ['an empty event name', { ...toAlice, event: '', data: 1 }, 'event_name_invalid', 'event'],
    ['an event name of 65 characters', { ...toAlice, event: 'e'.repeat(65), data: 1 }, 'event_name_invalid', 'event'],
    ['the reserved name ready', { ...toAlice, event: 'ready', data: 1 }, 'event_name_reserved', 'event'],
    ['the reserved name ping', { ...toAlice, event: 'ping', data: 1 }, 'event_name_reserved', 'event'],
    ['the reserved name error', { ...toAlice, event: 'error', data: 1 }, 'event_name_reserved', 'event'],
    ['the reserved name replaced', { ...toAlice, event: 'replaced', data: 1 }, 'event_name_reserved', 'event'],
    ['the reserved name gap', { ...toAlice, event: 'gap', data: 1 }, 'event_name_reserved', 'event'],
    ['an id that is not a ULID', { ...toAlice, id: 'msg-1', data: 1 }, 'event_id_invalid', 'id'],
    ['a lower-case ULID', { ...toAlice, id: '01arz3ndektsv4rrffq69g5fav', data: 1 }, 'event_id_invalid', 'id'],
    ['a ULID past the year 10889', { ...toAlice, id: '81ARZ3NDEKTSV4RRFFQ69G5FAV', data: 1 }, 'event_id_invalid', 'id'],
    ['a numeric id', { ...toAlice, id: 42, data: 1 }, 'event_id_invalid', 'id'],
    ['an id from more than 24 hours ago', { ...toAlice, id: eventIdFloor(Date.now() - MAX_ID_AGE_MS - 60_000), data: 1 }, 'event_id_out_of_range', 'id'],
    ['an id from the ULID spec (2016)', { ...toAlice, id: '01ARYZ6S41TSV4RRFFQ69G5FAV', data: 1 }, 'event_id_out_of_range', 'id'],
    ['a negative ttl', { ...toAlice, ttl: -1, data: 1 }, 'ttl_invalid', 'ttl'],
    ['a ttl one second over 7 days', { ...toAlice, ttl: 7 * 24 * 3600 + 1, data: 1 }, 'ttl_invalid', 'ttl'],
    ['a fractional ttl', { ...toAlice, ttl: 1.5, data: 1 }, 'ttl_invalid', 'ttl'],
    ['a ttl as a string', { ...toAlice, ttl: '60', data: 1 }, 'ttl_invalid', 'ttl'],
    ['no recipients', { event: 'message', data: 1 }, 'recipients_invalid', 'to'],
    ['an empty user list', { ...toAlice, to: { users: [] }, data: 1 }, 'recipients_invalid', 'to.users'],
    ['users and all at once', { ...toAlice, to: { users: ['alice'], all: true }, data: 1 }, 'recipients_invalid', 'to'],
    ['all: false', { ...toAlice, to: { all: false }, data: 1 }, 'recipients_invalid', 'to'],
    ['a user id of 129 characters', { ...toAlice, to: { users: ['alice', 'u'.repeat(129)] }, data: 1 }, 'recipients_invalid', 'to.users[1]'],
    ['a user id with a control character', { ...toAlice, to: { users: ['al\u0000ice'] }, data: 1 }, 'recipients_invalid', 'to.users[0]'],
    ['a user id with a C1 control character', { ...toAlice, to: { users: ['alice', 'b\u0085ob'] }, data: 1 }, 'recipients_invalid', 'to.users[1]'],
    ['a user id with an unpaired high surrogate', { ...toAlice, to: { users: ['alice', 'b\ud83dob'] }, data: 1 }, 'recipients_invalid', 'to.users[1]'],
    ['a user id with an unpaired low surrogate', { ...toAlice, to: { users: ['\udc4b'] }, data: 1 }, 'recipients_invalid', 'to.users[0]'],
    ['a numeric user id', { ...toAlice, to: { users: [7] }, data: 1 }, 'recipients_invalid', 'to.users[0]'],
    ['1001 users', { ...toAlice, to: { users: Array.from({ length: 1001 }, (_, i) => `u${i}`) }, data: 1 }, 'too_many_recipients', 'to.users'],
  ];

  it.each(refusals)('refuses %s with 400 and the field', async (_case, body, code, field) => {
    const node = await startTestNode();
    const alice = await connect(node, 'alice');
    const answer = await node.publish(body);
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ error: code, field });
    expect(typeof answer.body.message).toBe('string');
    await sentinel(node, ['alice'], [alice]);
    expect(alice.notifications().map((e) => e.event)).toEqual(['sentinel']);
  });

  it.each([
    ['an event name of 64 characters from the whole alphabet', { ...toAlice, event: ('Az09_.:-').repeat(8), data: 1 }],
    ['the name message', { ...toAlice, event: 'message', data: 1 }],
    ['a ttl of exactly 7 days', { ...toAlice, ttl: 7 * 24 * 3600, data: 1 }],
    ['a ttl of 0 (live only)', { ...toAlice, ttl: 0, data: 1 }],
    ['an id from 23 hours ago', { ...toAlice, id: eventIdFloor(Date.now() - 23 * 3600 * 1000), data: 1 }],
    ['a user id of 128 characters', { ...toAlice, to: { users: ['u'.repeat(128)] }, data: 1 }],
    ['a user id with a surrogate pair (an emoji)', { ...toAlice, to: { users: ['bob 👋'] }, data: 1 }],
    ['exactly 1000 users', { ...toAlice, to: { users: Array.from({ length: 1000 }, (_, i) => `u${i}`) }, data: 1 }],
    ['1001 entries naming 1000 users (one repeated)', { ...toAlice, to: { users: [...Array.from({ length: 1000 }, (_, i) => `u${i}`), 'u7'] }, data: 1 }],
    ['null data', { ...toAlice, data: null }],
  ])('accepts %s', async (_case, body) => {
    const node = await startTestNode();
    const answer = await node.publish(body);
    expect(answer.status, JSON.stringify(answer.body)).toBe(202);
  });
});

describe('POST /publish: sizes', () => {
  it('accepts data of exactly 64 KiB serialized (UTF-8 bytes) and delivers it intact', async () => {
    const node = await startTestNode();
    const alice = await connect(node, 'alice');
    const data = dataOfBytes(64 * 1024);

    const answer = await node.publish({ ...toAlice, data });

    expect(answer.status, JSON.stringify(answer.body)).toBe(202);
    const received = await alice.waitFor((e) => e.id === answer.body.id, 'the 64 KiB event');
    expect(received.data).toBe(JSON.stringify(data));
    expect(Buffer.byteLength(received.data)).toBe(65_536);
  });

  it('refuses data one byte over 64 KiB with 413 payload_too_large, and delivers nothing', async () => {
    const node = await startTestNode();
    const alice = await connect(node, 'alice');

    const answer = await node.publish({ ...toAlice, data: dataOfBytes(64 * 1024 + 1) });

    expect(answer.status).toBe(413);
    expect(answer.body).toMatchObject({ error: 'payload_too_large', field: 'data' });
    await sentinel(node, ['alice'], [alice]);
    expect(alice.notifications().map((e) => e.event)).toEqual(['sentinel']);
  });

  it('lowers the data limit to HERALD_MAX_DATA_BYTES', async () => {
    const node = await startTestNode({ env: { HERALD_MAX_DATA_BYTES: '1000' } });
    expect((await node.publish({ ...toAlice, data: dataOfBytes(1000) })).status).toBe(202);
    const over = await node.publish({ ...toAlice, data: dataOfBytes(1001) });
    expect(over.status).toBe(413);
    expect(over.body).toMatchObject({ error: 'payload_too_large', field: 'data' });
  });

  // The body limit is maxPublishBodyBytes(maxDataBytes): a full batch of maximum-size data plus the envelopes' allowance.
  const maxDataBytes = 1000;
  const bodyLimit = maxPublishBodyBytes(maxDataBytes);
  const padded = (bytes: number): Buffer => {
    const json = JSON.stringify({ ...toAlice, data: 1 });
    return Buffer.from(json + ' '.repeat(bytes - json.length));
  };

  it('accepts a body of exactly the body limit (Content-Length)', async () => {
    const node = await startTestNode({ env: { HERALD_MAX_DATA_BYTES: String(maxDataBytes) } });
    const answer = await post(node, padded(bodyLimit), 'application/json');
    expect(answer.status, answer.text).toBe(202);
  });

  it('refuses a body one byte over the body limit with 413 body_too_large (Content-Length)', async () => {
    const node = await startTestNode({ env: { HERALD_MAX_DATA_BYTES: String(maxDataBytes) } });
    const answer = await post(node, padded(bodyLimit + 1), 'application/json');
    expect(answer.status).toBe(413);
    expect(answer.json).toMatchObject({ error: 'body_too_large' });
  });

  it('refuses a chunked body that grows past the body limit with 413 body_too_large', async () => {
    const node = await startTestNode({ env: { HERALD_MAX_DATA_BYTES: String(maxDataBytes) } });
    const body = padded(bodyLimit + 1);
    const chunks = [body.subarray(0, 100_000), body.subarray(100_000, 300_000), body.subarray(300_000)];
    const answer = await rawRequest(node.url, {
      path: '/publish',
      headers: { Authorization: `Bearer ${TEST_PUBLISH_TOKEN}`, 'Content-Type': 'application/json' },
      chunks,
    });
    expect(answer.status).toBe(413);
    expect(answer.json).toMatchObject({ error: 'body_too_large' });
  });

  it('accepts a chunked body of exactly the body limit', async () => {
    const node = await startTestNode({ env: { HERALD_MAX_DATA_BYTES: String(maxDataBytes) } });
    const body = padded(bodyLimit);
    const answer = await rawRequest(node.url, {
      path: '/publish',
      headers: { Authorization: `Bearer ${TEST_PUBLISH_TOKEN}`, 'Content-Type': 'application/json' },
      chunks: [body.subarray(0, 200_000), body.subarray(200_000)],
    });
    expect(answer.status, answer.text).toBe(202);
  });

  it('accepts a full batch of 100 maximum-size events addressed to 500 users each', async () => {
    const node = await startTestNode();
    const users = Array.from({ length: 500 }, (_, i) => `user-${String(i).padStart(4, '0')}`);
    const data = dataOfBytes(64 * 1024);
    const body = JSON.stringify({ notifications: Array.from({ length: MAX_BATCH }, () => ({ to: { users }, event: 'message', data })) });
    const answer = await post(node, body, 'application/json');
    expect(answer.status, answer.text.slice(0, 200)).toBe(202);
    expect(answer.json?.results).toHaveLength(MAX_BATCH);
  });

  it('accepts a full batch of 100 maximum-size events addressed to 1000 users of 80-character ids each (the allowance)', async () => {
    const node = await startTestNode();
    const users = Array.from({ length: 1000 }, (_, i) => `u${String(i).padStart(79, '0')}`);
    const data = dataOfBytes(64 * 1024);
    const body = JSON.stringify({ notifications: Array.from({ length: MAX_BATCH }, () => ({ to: { users }, event: 'message', data })) });
    expect(Buffer.byteLength(body)).toBeLessThanOrEqual(maxPublishBodyBytes(DEFAULT_MAX_DATA_BYTES));
    const answer = await post(node, body, 'application/json');
    expect(answer.status, answer.text.slice(0, 200)).toBe(202);
  });

  it('refuses a body one byte over the default limit with 413 body_too_large', async () => {
    const node = await startTestNode();
    expect(maxPublishBodyBytes(DEFAULT_MAX_DATA_BYTES)).toBe(100 * 64 * 1024 + 8 * 1024 * 1024);
    const answer = await post(node, padded(maxPublishBodyBytes(DEFAULT_MAX_DATA_BYTES) + 1), 'application/json');
    expect(answer.status).toBe(413);
    expect(answer.json).toMatchObject({ error: 'body_too_large' });
  });
});

describe('POST /publish: batches', () => {
  const item = (n: number): Record<string, unknown> => ({ ...toAlice, data: { n } });

  it.each([
    ['101 notifications', { notifications: Array.from({ length: 101 }, (_, i) => item(i)) }],
    ['an empty batch', { notifications: [] }],
    ['notifications that is not a list', { notifications: item(1) }],
    ['a batch with another top-level field', { notifications: [item(1)], to: { users: ['alice'] } }],
  ])('refuses %s with 400 batch_invalid', async (_case, body) => {
    const node = await startTestNode();
    const answer = await node.publish(body);
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ error: 'batch_invalid' });
  });

  it('accepts a batch of exactly 100', async () => {
    const node = await startTestNode();
    const answer = await node.publish({ notifications: Array.from({ length: 100 }, (_, i) => item(i)) });
    expect(answer.status).toBe(202);
    expect(answer.body.results).toHaveLength(100);
  });

  it('refuses a batch with one invalid item with its index and field, and delivers nothing of that batch', async () => {
    const node = await startTestNode();
    const alice = await connect(node, 'alice');
    const notifications = [item(0), item(1), { ...toAlice, event: 'ping', data: 2 }, item(3)];

    const answer = await node.publish({ notifications });

    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ error: 'event_name_reserved', field: 'event', index: 2 });
    await sentinel(node, ['alice'], [alice]);
    expect(alice.notifications().map((e) => e.event)).toEqual(['sentinel']);
  });

  it('refuses a batch whose last item is oversize, and stores none of it for replay', async () => {
    const node = await startTestNode();
    const first = await node.publish({ ...toAlice, data: 'before' });
    const answer = await node.publish({ notifications: [item(0), item(1), { ...toAlice, data: dataOfBytes(64 * 1024 + 1) }] });
    expect(answer.status).toBe(413);
    expect(answer.body).toMatchObject({ error: 'payload_too_large', field: 'data', index: 2 });

    const alice = await connect(node, 'alice', { lastEventId: String(first.body.id) });
    await sentinel(node, ['alice'], [alice]);
    expect(alice.notifications().map((e) => e.event)).toEqual(['sentinel']);
  });
});
