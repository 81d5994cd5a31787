/**
 * docs/openapi.yaml against a maintained validator, against what the node
 * serves at /openapi.json, and against real answers of a real node: each
 * answer's status must be one the description lists for that operation and
 * its body must match the listed schema, so the description cannot drift from
 * the code. Every refusal code and its status are checked against the code's
 * own table (services/protocol/errors.ts).
 */
import { readFileSync } from 'node:fs';
import SwaggerParser from '@apidevtools/swagger-parser';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { httpStatus } from '../../services/protocol/errors';
import { MAX_BATCH, MAX_RECIPIENTS } from '../../services/protocol/limits';
import { openStream } from '../support/sse-client';
import { startTestNode, type TestNode } from '../support/start-node';
import { TEST_PUBLISH_TOKEN, signToken } from '../support/tokens';
import { PortRig } from '../support/gated-ports';
import { unavailable } from '../../services/protocol/faults';

const SOURCE = new URL('../../docs/openapi.yaml', import.meta.url);

type Json = Record<string, unknown>;

interface Answer {
  readonly status: number;
  readonly contentType: string;
  readonly text: string;
}

let described: Json;

beforeAll(async () => {
  // Validates against the OpenAPI 3.1 schema, resolves every $ref, and returns the document with them replaced.
  described = (await SwaggerParser.validate(parse(readFileSync(SOURCE, 'utf8')) as never)) as unknown as Json;
});

const ajv = new Ajv2020({ strict: false, allErrors: true });

function operation(path: string, method: string): Json {
  const paths = described.paths as Record<string, Record<string, Json>>;
  const found = paths[path]?.[method.toLowerCase()];
  if (!found) throw new Error(`the description has no ${method} ${path}`);
  return found;
}

/** Fails unless the description lists this status for the operation and the body matches its schema for that content type. */
function expectDescribed(path: string, method: string, answer: Answer): void {
  const responses = operation(path, method).responses as Record<string, Json>;
  const response = responses[String(answer.status)];
  expect(response, `${method} ${path} answered ${answer.status}, which the description does not list: ${answer.text}`).toBeDefined();
  const content = response!.content as Record<string, { schema: object }> | undefined;
  if (content === undefined) {
    expect(answer.text, `${method} ${path} ${answer.status} has no body in the description`).toBe('');
    return;
  }
  const mediaType = answer.contentType.split(';')[0]!.trim();
  const media = content[mediaType];
  expect(media, `${method} ${path} ${answer.status} answered ${mediaType}; described: ${Object.keys(content).join(', ')}`).toBeDefined();
  if (mediaType !== 'application/json') return;
  const validate = ajv.compile(media!.schema);
  const body: unknown = JSON.parse(answer.text);
  expect(validate(body), `${method} ${path} ${answer.status} ${answer.text}: ${ajv.errorsText(validate.errors)}`).toBe(true);
}

async function call(node: TestNode, path: string, init: RequestInit & { headers?: Record<string, string> } = {}): Promise<Answer> {
  const response = await fetch(new URL(path, node.url), init);
  const contentType = response.headers.get('content-type') ?? '';
  // A stream never ends by itself: its head and status are what is checked.
  if (contentType.startsWith('text/event-stream')) {
    await response.body?.cancel();
    return { status: response.status, contentType, text: '' };
  }
  return { status: response.status, contentType, text: await response.text() };
}

function post(node: TestNode, body: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  return call(node, '/publish', {
    method: 'POST',
    headers: { Authorization: `Bearer ${TEST_PUBLISH_TOKEN}`, 'Content-Type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

const note = (users: string[] = ['alice'], extra: Json = {}): Json => ({ to: { users }, event: 'message', data: { text: 'hi' }, ...extra });

function errorCode(answer: Answer): string {
  return (JSON.parse(answer.text) as { error: string }).error;
}

describe('docs/openapi.yaml', () => {
  it('passes the OpenAPI 3.1 validator and describes exactly the public paths', () => {
    expect(described.openapi).toBe('3.1.0');
    expect(Object.keys(described.paths as Json).sort()).toEqual(['/events', '/healthz', '/metrics', '/publish']);
  });

  it('lists every refusal code with the status the code answers it with, and no other', () => {
    const error = (described.components as { schemas: Record<string, Json> }).schemas.Error!;
    const codes = (error.properties as { error: { enum: string[] } }).error.enum;
    expect([...codes].sort()).toEqual(Object.keys(httpStatus).sort());
    expect(error['x-http-status']).toEqual(httpStatus);
  });

  it('is served by the node at /openapi.json, as JSON, the same document', async () => {
    const node = await startTestNode();
    const answer = await call(node, '/openapi.json');
    expect(answer.status).toBe(200);
    expect(answer.contentType).toBe('application/json');
    expect(JSON.parse(answer.text)).toEqual(parse(readFileSync(SOURCE, 'utf8')));
  });
});

describe('real answers match the description', () => {
  it('POST /publish: accepted single and batch, and each refusal the route makes', async () => {
    const node = await startTestNode({ env: { HERALD_MAX_DATA_BYTES: '1024' } });
    const cases: Array<[string, Answer]> = [
      ['accepted', await post(node, note())],
      ['accepted batch', await post(node, { notifications: [note(['alice']), note(['bob'])] })],
      ['broadcast', await post(node, { to: { all: true }, event: 'message', data: 1 })],
      ['publisher_unauthorized', await post(node, note(), { Authorization: 'Bearer wrong-token-wrong-token' })],
      ['unsupported_media_type', await post(node, note(), { 'Content-Type': 'text/plain' })],
      ['json_invalid', await post(node, '{"to":')],
      ['envelope_invalid', await post(node, note(['alice'], { colour: 'red' }))],
      ['event_name_invalid', await post(node, note(['alice'], { event: 'has space' }))],
      ['event_name_reserved', await post(node, note(['alice'], { event: 'ping' }))],
      ['event_id_invalid', await post(node, note(['alice'], { id: 'not-a-ulid' }))],
      ['event_id_out_of_range', await post(node, note(['alice'], { id: '01ARYZ6S41TSV4RRFFQ69G5FAV' }))],
      ['recipients_invalid', await post(node, note([]))],
      ['too_many_recipients', await post(node, note(Array.from({ length: MAX_RECIPIENTS + 1 }, (_, i) => `u${i}`)))],
      ['ttl_invalid', await post(node, note(['alice'], { ttl: -1 }))],
      ['batch_invalid', await post(node, { notifications: Array.from({ length: MAX_BATCH + 1 }, () => note()) })],
      ['payload_too_large', await post(node, note(['alice'], { data: 'x'.repeat(2000) }))],
      ['body_too_large', await post(node, JSON.stringify(note(['alice'], { pad: 'x'.repeat(16 * 1024 * 1024) })))],
      ['method_not_allowed', await call(node, '/publish')],
    ];
    for (const [expected, answer] of cases) {
      if (!expected.startsWith('accepted') && expected !== 'broadcast') expect(errorCode(answer), expected).toBe(expected);
      expectDescribed('/publish', 'POST', answer);
    }
  });

  it('POST /publish: unavailable, with Retry-After and the ids to retry with', async () => {
    const rig = new PortRig();
    const node = await startTestNode({ ports: rig.wrap });
    rig.once('before', 'history.append', () => {
      throw unavailable('history unreachable');
    });
    const answer = await post(node, { notifications: [note(), note()] });
    expect(errorCode(answer)).toBe('unavailable');
    expect((JSON.parse(answer.text) as { ids: string[] }).ids).toHaveLength(2);
    expectDescribed('/publish', 'POST', answer);
  });

  it('POST /publish: rate_limited, with Retry-After', async () => {
    const node = await startTestNode({ env: { HERALD_PUBLISH_RATE: '1', HERALD_PUBLISH_BURST: '100' } });
    await post(node, { notifications: Array.from({ length: MAX_BATCH }, () => note()) });
    const answer = await post(node, note());
    expect(errorCode(answer)).toBe('rate_limited');
    expectDescribed('/publish', 'POST', answer);
  });

  it('GET /events: a stream, a status check, the 204 of a replaced tab, and its refusals', async () => {
    const node = await startTestNode({ env: { HERALD_CONNECT_RATE_PER_IP: '1', HERALD_CONNECT_BURST_PER_IP: '1' } });
    const token = await signToken('alice');
    const bearer = { Authorization: `Bearer ${token}` };
    const stream = await call(node, '/events', { headers: { ...bearer, Accept: 'text/event-stream' } });
    expect(stream.status).toBe(200);
    expect(stream.contentType).toMatch(/^text\/event-stream/);
    expectDescribed('/events', 'GET', stream);

    // Each of these comes before the connect budget (or has none to spend).
    const before: Array<[string, Answer]> = [
      ['replaced', await call(node, '/events', { headers: { ...bearer, 'Last-Event-ID': 'replaced:abc' } })],
      ['identity_in_url', await call(node, '/events?userId=alice', { headers: bearer })],
      ['method_not_allowed', await call(node, '/events', { method: 'POST', headers: bearer })],
      ['too_many_connects', await call(node, '/events', { headers: bearer })],
    ];
    expect(before[0]![1].status).toBe(204);
    for (const [expected, answer] of before) {
      if (expected !== 'replaced') expect(errorCode(answer), expected).toBe(expected);
      expectDescribed('/events', 'GET', answer);
    }

    const open = await startTestNode();
    const refusals: Array<[string, Answer]> = [
      ['status check', await call(open, '/events', { headers: { ...bearer, Accept: 'application/json' } })],
      ['token_missing', await call(open, '/events')],
      ['token_invalid', await call(open, '/events', { headers: { Authorization: 'Bearer not.a.token' } })],
      ['token_expired', await call(open, '/events', { headers: { Authorization: `Bearer ${await signToken('alice', { expiresInSeconds: -60 })}` } })],
      ['token_ambiguous', await call(open, '/events', { headers: { Cookie: `herald_token=${token}; herald_token=${token}` } })],
      ['fetch_dest_refused', await call(open, '/events', { headers: { ...bearer, 'Sec-Fetch-Dest': 'document' } })],
    ];
    for (const [expected, answer] of refusals) {
      if (expected !== 'status check') expect(errorCode(answer), expected).toBe(expected);
      expectDescribed('/events', 'GET', answer);
    }
    expect(JSON.parse(refusals[0]![1].text)).toMatchObject({ ok: true });
  });

  it('the data of the stream\'s own events: ready, gap and closing', async () => {
    const node = await startTestNode({ env: { HERALD_DRAIN_MS: '200' } });
    const events = operation('/events', 'GET')['x-sse-events'] as Record<string, object>;
    const expectEvent = (name: string, data: string): void => {
      const validate = ajv.compile(events[name]!);
      expect(validate(JSON.parse(data)), `${name} ${data}: ${ajv.errorsText(validate.errors)}`).toBe(true);
    };
    const stream = await openStream(node.url, { token: await signToken('alice'), lastEventId: 'not-an-id', label: 'alice' });
    expectEvent('gap', (await stream.next('gap')).data);
    expectEvent('ready', (await stream.next('ready')).data);
    const drained = node.node.drain(200);
    expectEvent('closing', (await stream.next('closing')).data);
    await drained;
  });

  it('/healthz and /metrics, and GET /events while draining', async () => {
    const node = await startTestNode({ env: { HERALD_DRAIN_MS: '2000' } });
    expectDescribed('/healthz', 'GET', await call(node, '/healthz'));
    const metrics = await call(node, '/metrics');
    expect(metrics.status).toBe(200);
    expectDescribed('/metrics', 'GET', metrics);

    const draining = node.node.drain(2000);
    const health = await call(node, '/healthz');
    expect(health.status).toBe(503);
    expectDescribed('/healthz', 'GET', health);
    const refused = await call(node, '/events', { headers: { Authorization: `Bearer ${await signToken('alice')}` } });
    expect(errorCode(refused)).toBe('draining');
    expectDescribed('/events', 'GET', refused);
    await draining;
  });
});
