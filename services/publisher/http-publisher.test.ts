import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, expectTypeOf, it, onTestFinished } from 'vitest';
import { eventIdFloor, newEventId } from '../protocol/event-id';
import { unavailable } from '../protocol/faults';
import { HeraldError } from '../protocol/errors';
import { createLogger } from '../shared/log';
import { PortRig } from '../../test/support/gated-ports';
import { connect, idsOf, sentinel } from '../../test/support/publish-kit';
import { startTestNode, type TestNode } from '../../test/support/start-node';
import { TEST_PUBLISH_TOKEN } from '../../test/support/tokens';
import type { Publisher } from './create-publisher';
import { createHttpPublisher, type HttpPublisherOptions } from './http-publisher';
import type { PublishResult } from './publish';

/** Quick retries: the tests wait milliseconds where a deployment waits the node's Retry-After. */
const FAST_RETRY = { attempts: 3, firstDelayMs: 5, maxDelayMs: 20 };

function publisherFor(url: string, options: Partial<HttpPublisherOptions> = {}): Publisher {
  const publisher = createHttpPublisher({ url, token: TEST_PUBLISH_TOKEN, retry: FAST_RETRY, ...options });
  onTestFinished(() => publisher.close());
  return publisher;
}

async function refusal(promise: Promise<unknown>): Promise<HeraldError> {
  const outcome = await promise.then(
    () => new Error('expected a refusal, but it resolved'),
    (error: unknown) => error,
  );
  expect(outcome).toBeInstanceOf(HeraldError);
  return outcome as HeraldError;
}

/** What the hop in front of the node does with one request: pass it on, or fail it as a network or load balancer would. */
type Step = 'forward' | 'reset-after-forward' | 'reset' | '502' | 'hang';

interface Hop {
  readonly url: string;
  /** Every request body that reached the hop, in order. */
  readonly bodies: string[];
  /** Their paths. */
  readonly paths: string[];
}

/**
 * A real HTTP hop in front of a node, scripted request by request (then
 * `forward` for the rest): a connection reset after the node published, a
 * load balancer's 502, an answer that never comes. Real sockets, no fetch mock.
 */
async function startHop(target: string, script: readonly Step[]): Promise<Hop> {
  const bodies: string[] = [];
  const paths: string[] = [];
  const forward = async (req: IncomingMessage, body: string): Promise<{ status: number; headers: Record<string, string>; text: string }> => {
    const response = await fetch(new URL(req.url ?? '/', target), {
      method: req.method ?? 'POST',
      headers: { authorization: req.headers.authorization ?? '', 'content-type': req.headers['content-type'] ?? '' },
      body,
    });
    const headers: Record<string, string> = { 'content-type': response.headers.get('content-type') ?? 'text/plain' };
    const retryAfter = response.headers.get('retry-after');
    if (retryAfter !== null) headers['retry-after'] = retryAfter;
    return { status: response.status, headers, text: await response.text() };
  };
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    let body = '';
    req.setEncoding('utf8');
    for await (const chunk of req as AsyncIterable<string>) body += chunk;
    const step = script[bodies.length] ?? 'forward';
    bodies.push(body);
    paths.push(req.url ?? '');
    if (step === 'hang') return;
    if (step === 'reset') return void req.socket.resetAndDestroy();
    if (step === '502') return void res.writeHead(502, { 'content-type': 'text/html' }).end('<html><body>502 Bad Gateway</body></html>');
    const answer = await forward(req, body);
    // The node has answered, so the publish happened: the caller never learns it.
    if (step === 'reset-after-forward') return void req.socket.resetAndDestroy();
    res.writeHead(answer.status, answer.headers).end(answer.text);
  };
  const server = createServer((req, res) => void handle(req, res).catch(() => res.destroy()));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, bodies, paths };
}

/** Ids the node's history holds for `userId`, from a minute ago. */
async function storedIds(node: TestNode, userId: string): Promise<string[]> {
  const { events } = await node.ports.history.since(userId, eventIdFloor(Date.now() - 60_000), 100);
  return events.map((e) => e.id);
}

describe('createHttpPublisher against a real node', () => {
  it('publishes one envelope, minting its id here, and answers exactly the PublishResult fields', async () => {
    const node = await startTestNode();
    const alice = await connect(node, 'alice');
    const publisher = publisherFor(node.url);

    const result = await publisher.publish({ to: { users: ['alice', 'bob', 'alice'] }, event: 'message', data: { text: 'Hello 👋' } });

    expect(Object.keys(result).sort()).toEqual(['duplicate', 'id', 'offline', 'online', 'recipients']);
    expect(result).toEqual({ id: result.id, recipients: 2, online: 1, offline: ['bob'], duplicate: false });
    expect(result.id).toMatch(/^[0-7][0-9A-HJKMNP-TV-Z]{25}$/);
    const received = await alice.waitFor((e) => e.id === result.id, 'the published event');
    expect(received.event).toBe('message');
    expect(JSON.parse(received.data)).toEqual({ text: 'Hello 👋' });
  });

  it('sends a batch as {"notifications": [...]} and resolves the results in order', async () => {
    const node = await startTestNode();
    const alice = await connect(node, 'alice');
    const hop = await startHop(node.url, []);
    const publisher = publisherFor(hop.url);
    const given = newEventId();

    const results = await publisher.publishBatch([
      { to: { users: ['alice'] }, event: 'first', data: 1, ttl: 0 },
      { id: given, to: { users: ['carol'] }, event: 'second', data: 2 },
      { to: { all: true }, event: 'third', data: 3 },
    ]);

    expect(results.map((r) => r.recipients)).toEqual([1, 1, 'all']);
    expect(results[1]).toEqual({ id: given, recipients: 1, online: 0, offline: ['carol'], duplicate: false });
    expect(results[2]).toMatchObject({ online: null, offline: [] });
    const sent = JSON.parse(hop.bodies[0]!) as { notifications: Array<Record<string, unknown>> };
    expect(Object.keys(sent)).toEqual(['notifications']);
    expect(sent.notifications.map((n) => n.id)).toEqual(results.map((r) => r.id));
    // A ttl the caller left out stays out: the node's own retention applies.
    expect(sent.notifications.map((n) => n.ttl)).toEqual([0, undefined, undefined]);
    await alice.waitFor((e) => e.event === 'third', 'the broadcast');
    expect(alice.notifications().map((e) => e.id)).toEqual([results[0]!.id, results[2]!.id]);
  });

  it('refuses a bad envelope here, with the same code, field and index as createPublisher, before any request', async () => {
    const node = await startTestNode();
    const hop = await startHop(node.url, []);
    const publisher = publisherFor(hop.url);

    const reserved = await refusal(publisher.publish({ to: { users: ['alice'] }, event: 'ready', data: 1 }));
    expect(reserved).toMatchObject({ code: 'event_name_reserved', details: { field: 'event' } });
    const batch = await refusal(publisher.publishBatch([{ to: { users: ['a'] }, event: 'ok', data: 1 }, { to: { users: [] }, event: 'ok', data: 1 }]));
    expect(batch).toMatchObject({ code: 'recipients_invalid', details: { field: 'to.users', index: 1 } });
    const big = await refusal(publisher.publish({ to: { all: true }, event: 'big', data: 'x'.repeat(70_000) }));
    expect(big).toMatchObject({ code: 'payload_too_large', details: { field: 'data' } });
    // Not newEventId(): its ids never go backwards in a process, so a future one would push every later id ahead too.
    const future = await refusal(publisher.publish({ id: eventIdFloor(Date.now() + 60_000), to: { all: true }, event: 'e', data: 1 }));
    expect(future.code).toBe('event_id_invalid');
    expect((await refusal(publisher.publishBatch([]))).code).toBe('batch_invalid');
    expect(hop.bodies).toEqual([]);
  });

  it("throws the node's own refusal, with its field and index, and does not retry it", async () => {
    const node = await startTestNode({ env: { HERALD_MAX_DATA_BYTES: '1024' } });
    // Configured above the node's limit, so only the node can refuse.
    const publisher = publisherFor(node.url, { maxDataBytes: 4096 });

    const error = await refusal(publisher.publishBatch([{ to: { all: true }, event: 'small', data: 1 }, { to: { all: true }, event: 'big', data: 'x'.repeat(2000) }]));

    expect(error).toMatchObject({ code: 'payload_too_large', status: 413, details: { field: 'data', index: 1 } });
    expect(error.message).toMatch(/limit is 1024/);
    expect(await node.metric('herald_refusals_total{code="payload_too_large"}')).toBe(1);

    const wrongToken = await refusal(publisherFor(node.url, { token: 'not-the-publisher-token' }).publish({ to: { all: true }, event: 'e', data: 1 }));
    expect(wrongToken.code).toBe('publisher_unauthorized');
    expect(await node.metric('herald_refusals_total{code="publisher_unauthorized"}')).toBe(1);
  });

  it('throws rate_limited with retryAfterMs at once: the budget is the caller’s to wait for', async () => {
    const node = await startTestNode({ env: { HERALD_PUBLISH_RATE: '1', HERALD_PUBLISH_BURST: '100' } });
    const publisher = publisherFor(node.url, { retry: { attempts: 4, firstDelayMs: 5, maxDelayMs: 20 } });
    await publisher.publishBatch(Array.from({ length: 100 }, (_, i) => ({ to: { users: [`u${i}`] }, event: 'fill', data: i })));

    const error = await refusal(publisher.publish({ to: { users: ['alice'] }, event: 'one-more', data: 1 }));

    expect(error.code).toBe('rate_limited');
    expect(error.details.retryAfterMs).toBeGreaterThan(0);
    expect(await node.metric('herald_refusals_total{code="rate_limited"}')).toBe(1);
  });

  it('answers not_found from a node that serves no POST /publish, and keeps a base path', async () => {
    const node = await startTestNode({ env: { HERALD_PUBLISH_TOKEN: '' } });
    const error = await refusal(publisherFor(`${node.url}/`).publish({ to: { all: true }, event: 'e', data: 1 }));
    expect(error.code).toBe('not_found');
    const hop = await startHop(node.url, ['502']);
    const prefixed = await refusal(publisherFor(`${hop.url}/herald/`, { retry: { attempts: 1, firstDelayMs: 1, maxDelayMs: 1 } }).publish({ to: { all: true }, event: 'e', data: 1 }));
    expect(prefixed.code).toBe('unavailable');
    expect(hop.paths).toEqual(['/herald/publish']);
  });
});

describe('createHttpPublisher retries with the same ids', () => {
  it('retries a 503 unavailable with the same body, and the node stores the event once', async () => {
    const rig = new PortRig();
    const node = await startTestNode({ ports: rig.wrap });
    const alice = await connect(node, 'alice');
    rig.once('before', 'history.append', () => {
      throw unavailable('history table unreachable');
    });
    const lines: string[] = [];
    const publisher = publisherFor(node.url, { log: createLogger({ level: 'debug', sink: (line) => lines.push(line) }) });

    const result = await publisher.publish({ to: { users: ['alice'] }, event: 'message', data: { n: 1 } });

    const appends = rig.calls('history.append');
    expect(appends.map((c) => c.eventId)).toEqual([result.id, result.id]);
    expect(result).toMatchObject({ online: 1, duplicate: false });
    await sentinel(node, ['alice'], [alice]);
    expect(idsOf(alice)).toEqual([result.id]);
    const retried = lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((l) => l.event === 'publish.retrying');
    expect(retried).toMatchObject([{ level: 'warn', attempt: 1, code: 'unavailable' }]);
  });

  it('retries a batch the node failed part-way; only a caller-given id can report a duplicate', async () => {
    const rig = new PortRig();
    const node = await startTestNode({ ports: rig.wrap });
    const alice = await connect(node, 'alice');
    // The history writes succeed, the delivery fails: the node answers 503 with an index, and the retry's appends are duplicates.
    rig.once('before', 'bus.send', () => {
      throw unavailable('topic unreachable');
    });
    const given = newEventId();
    const publisher = publisherFor(node.url);

    const results = await publisher.publishBatch([
      { to: { users: ['alice'] }, event: 'minted', data: 1 },
      { id: given, to: { users: ['alice'] }, event: 'given', data: 2 },
    ]);

    // Minted by this call, so "already stored" can only be this call's own first attempt.
    expect(results[0]!.duplicate).toBe(false);
    // A caller-given id may have been stored by the caller's own earlier call: the node's word stands.
    expect(results[1]).toMatchObject({ id: given, duplicate: true });
    // Stored once each (history is in id order, and `given` was minted first).
    expect(await storedIds(node, 'alice')).toEqual([given, results[0]!.id]);
    await sentinel(node, ['alice'], [alice]);
    expect(idsOf(alice)).toEqual([results[0]!.id, given]);
  });

  it('retries after the connection is reset once the node has published: the retry is deduplicated', async () => {
    const node = await startTestNode();
    const alice = await connect(node, 'alice');
    const hop = await startHop(node.url, ['reset-after-forward']);
    const publisher = publisherFor(hop.url);

    const result = await publisher.publish({ to: { users: ['alice'] }, event: 'message', data: { text: 'once' } });

    expect(hop.bodies).toHaveLength(2);
    expect(hop.bodies[1]).toBe(hop.bodies[0]);
    expect(result).toMatchObject({ online: 1, duplicate: false });
    expect(await storedIds(node, 'alice')).toEqual([result.id]);
    await sentinel(node, ['alice'], [alice]);
    // The node delivered it on both attempts; the browser client drops the repeat by its id.
    expect(new Set(idsOf(alice))).toEqual(new Set([result.id]));
  });

  it('retries a load balancer’s 502, a reset before the node and an answer that never comes', async () => {
    const node = await startTestNode();
    const hop = await startHop(node.url, ['502', 'reset', 'hang']);
    // One attempt to spare, and a deadline a busy machine's forwarded attempt still meets.
    const publisher = publisherFor(hop.url, { retry: { attempts: 5, firstDelayMs: 5, maxDelayMs: 20 }, timeoutMs: 1_000 });

    const result = await publisher.publish({ to: { users: ['alice'] }, event: 'message', data: 1 });

    expect(hop.bodies.length).toBeGreaterThanOrEqual(4);
    expect(new Set(hop.bodies).size).toBe(1);
    expect(await storedIds(node, 'alice')).toEqual([result.id]);
  });

  it('gives up after the last attempt with unavailable, naming what went wrong', async () => {
    const node = await startTestNode();
    const gateway = await startHop(node.url, ['502', '502', '502']);
    const error = await refusal(publisherFor(gateway.url).publish({ to: { all: true }, event: 'e', data: 1 }));
    expect(error.code).toBe('unavailable');
    expect(error.message).toMatch(/HTTP 502/);
    expect(gateway.bodies).toHaveLength(3);

    const resets = await startHop(node.url, ['reset', 'reset']);
    const reset = await refusal(publisherFor(resets.url, { retry: { attempts: 2, firstDelayMs: 5, maxDelayMs: 20 } }).publish({ to: { all: true }, event: 'e', data: 1 }));
    expect(reset.code).toBe('unavailable');
    expect(reset.message).toMatch(/got no answer: fetch failed/);
    expect(resets.bodies).toHaveLength(2);
    expect(await storedIds(node, 'alice')).toEqual([]);
  });

  it('names the ids it sent, given and minted, in the error it gives up with, so the caller can retry with them', async () => {
    const node = await startTestNode();
    const gateway = await startHop(node.url, ['502', 'reset-after-forward', '502']);
    const given = newEventId();

    const error = await refusal(
      publisherFor(gateway.url).publishBatch([
        { to: { users: ['alice'] }, event: 'e', data: 1 },
        { id: given, to: { users: ['alice'] }, event: 'e', data: 2 },
      ]),
    );

    expect(error.code).toBe('unavailable');
    const sent = (JSON.parse(gateway.bodies[0]!) as { notifications: Array<{ id: string }> }).notifications.map((n) => n.id);
    expect(sent[1]).toBe(given);
    expect(error.details.ids).toEqual(sent);
    // The second attempt reached the node: a retry with these ids finds them stored.
    const retried = await publisherFor(node.url).publishBatch(sent.map((id, n) => ({ id, to: { users: ['alice'] }, event: 'e', data: n + 1 })));
    expect(retried.map((r) => r.duplicate)).toEqual([true, true]);
    expect(await storedIds(node, 'alice')).toEqual([...sent].sort());
  });
});

describe('createHttpPublisher: the Publisher interface', () => {
  it('is the Publisher createPublisher returns, with the same result type', () => {
    expectTypeOf(createHttpPublisher).returns.toEqualTypeOf<Publisher>();
    expectTypeOf<Awaited<ReturnType<Publisher['publishBatch']>>>().toEqualTypeOf<PublishResult[]>();
    expectTypeOf<PublishResult>().toEqualTypeOf<{
      readonly id: string;
      readonly recipients: number | 'all';
      readonly online: number | null;
      readonly offline: readonly string[];
      readonly duplicate: boolean;
    }>();
  });

  it('lets calls under way finish on close(), then refuses new ones', async () => {
    const node = await startTestNode();
    const hop = await startHop(node.url, ['502']);
    const publisher = publisherFor(hop.url);
    const pending = publisher.publish({ to: { users: ['alice'] }, event: 'message', data: 1 });
    await publisher.close();
    await expect(pending).resolves.toMatchObject({ recipients: 1, duplicate: false });
    await expect(publisher.publish({ to: { all: true }, event: 'e', data: 1 })).rejects.toThrow('this publisher is closed');
  });

  it('refuses options that could never work', () => {
    const base = { url: 'http://127.0.0.1:8080', token: TEST_PUBLISH_TOKEN };
    expect(() => createHttpPublisher({ ...base, url: '127.0.0.1:8080' })).toThrow(RangeError);
    expect(() => createHttpPublisher({ ...base, url: 'ftp://127.0.0.1' })).toThrow(/http or https/);
    expect(() => createHttpPublisher({ ...base, url: 'http://127.0.0.1:8080/?x=1' })).toThrow(/query/);
    expect(() => createHttpPublisher({ ...base, token: 'has a space' })).toThrow(/token/);
    expect(() => createHttpPublisher({ ...base, token: '' })).toThrow(/token/);
    expect(() => createHttpPublisher({ ...base, maxDataBytes: 300 * 1024 })).toThrow(/maxDataBytes/);
    expect(() => createHttpPublisher({ ...base, retry: { attempts: 0, firstDelayMs: 1, maxDelayMs: 1 } })).toThrow(/attempts/);
  });
});
