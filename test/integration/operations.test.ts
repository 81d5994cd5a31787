import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { newEventId } from '../../services/protocol/event-id';
import { unavailable } from '../../services/protocol/faults';
import { startTestNode } from '../support/start-node';
import { eventually } from '../../scripts/fleet/deadline';
import { openStream } from '../support/sse-client';
import { rawRequest } from '../support/raw-http';
import { signToken, TEST_PUBLISH_TOKEN } from '../support/tokens';
import { scrape, value } from '../support/prometheus-text';
import { PortRig } from '../support/gated-ports';
import { connect, sentinel } from '../support/publish-kit';

describe('GET /healthz', () => {
  it('answers 200 with the node id and its open streams', async () => {
    const node = await startTestNode();
    const health = async (): Promise<Record<string, unknown>> => {
      const response = await fetch(new URL('/healthz', node.url));
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/^application\/json/);
      return (await response.json()) as Record<string, unknown>;
    };

    expect(await health()).toEqual({ status: 'ok', nodeId: node.node.nodeId, connections: 0 });
    const alice = await connect(node, 'alice');
    await connect(node, 'bob');
    expect(await health()).toEqual({ status: 'ok', nodeId: node.node.nodeId, connections: 2 });

    alice.close();
    await eventually(async () => (await health()).connections === 1, 2000, 'healthz to count 1 connection');
  });

  it('answers 503 draining once the node starts to drain, so the load balancer stops sending streams', async () => {
    const node = await startTestNode({ env: { HERALD_DRAIN_MS: '1000' } });
    await connect(node, 'alice');
    const draining = node.node.drain();

    const response = await fetch(new URL('/healthz', node.url));

    expect(response.status).toBe(503);
    expect(await response.json()).toEqual({ status: 'draining', nodeId: node.node.nodeId });
    await draining;
  });
});

describe('GET /healthz with a health source', () => {
  it('answers 503 unavailable, naming the source, while it cannot deliver; 200 again once it can', async () => {
    const source = { reachable: true };
    const node = await startTestNode({ ports: (defaults) => ({ ...defaults, health: { name: 'redis', reachable: () => source.reachable } }) });
    const health = async (): Promise<[number, unknown]> => {
      const response = await fetch(new URL('/healthz', node.url));
      return [response.status, await response.json()];
    };
    expect(await health()).toEqual([200, { status: 'ok', nodeId: node.node.nodeId, connections: 0 }]);

    source.reachable = false;
    expect(await health()).toEqual([503, { status: 'unavailable', reason: 'redis', nodeId: node.node.nodeId }]);

    source.reachable = true;
    expect(await health()).toEqual([200, { status: 'ok', nodeId: node.node.nodeId, connections: 0 }]);
  });

  it('says draining rather than unavailable once the node drains', async () => {
    const node = await startTestNode({ env: { HERALD_DRAIN_MS: '1000' }, ports: (defaults) => ({ ...defaults, health: { name: 'redis', reachable: () => false } }) });
    const draining = node.node.drain();

    const response = await fetch(new URL('/healthz', node.url));

    expect(response.status).toBe(503);
    expect(await response.json()).toEqual({ status: 'draining', nodeId: node.node.nodeId });
    await draining;
  });
});

describe('GET /metrics', () => {
  it('is Prometheus text 0.0.4 with every family announced, and the process metrics', async () => {
    const node = await startTestNode();

    const scraped = await scrape(node.url);

    expect(scraped.contentType).toMatch(/^text\/plain; version=0\.0\.4(;|$)/);
    expect(scraped.types.get('herald_connections')).toBe('gauge');
    expect(scraped.types.get('herald_deliveries_total')).toBe('counter');
    expect(scraped.types.get('herald_refusals_total')).toBe('counter');
    expect(scraped.types.get('herald_publish_to_write_seconds')).toBe('histogram');
    expect(scraped.types.get('process_resident_memory_bytes')).toBe('gauge');
    expect(value(scraped, 'process_resident_memory_bytes')).toBeGreaterThan(1024 * 1024);
    expect(scraped.text.endsWith('\n')).toBe(true);
  });

  it('counts open streams in herald_connections', async () => {
    const node = await startTestNode();
    expect(value(await scrape(node.url), 'herald_connections')).toBe(0);

    const alice = await connect(node, 'alice');
    await connect(node, 'bob');
    expect(value(await scrape(node.url), 'herald_connections')).toBe(2);

    alice.close();
    await eventually(async () => value(await scrape(node.url), 'herald_connections') === 1, 2000, 'herald_connections to fall to 1');
  });

  it('counts deliveries per stream written, and observes publish→write latency once per delivered event', async () => {
    const node = await startTestNode();
    const alice = await connect(node, 'alice');
    const bob = await connect(node, 'bob');
    const before = await scrape(node.url);
    expect(value(before, 'herald_deliveries_total')).toBe(0);
    expect(value(before, 'herald_publish_to_write_seconds_count')).toBe(0);

    await node.publish({ to: { all: true }, event: 'announcement', data: 1 });
    await Promise.all([alice.next('announcement'), bob.next('announcement')]);
    await node.publish({ to: { users: ['alice', 'carol'] }, event: 'message', data: 2 });
    await alice.next('message');

    const after = await scrape(node.url);
    expect(value(after, 'herald_deliveries_total')).toBe(3);
    expect(value(after, 'herald_publish_to_write_seconds_count')).toBe(2);
    expect(value(after, 'herald_publish_to_write_seconds_bucket{le="+Inf"}')).toBe(2);
    expect(value(after, 'herald_publish_to_write_seconds_sum')).toBeGreaterThanOrEqual(0);
    const buckets = [...after.samples].filter(([key]) => key.startsWith('herald_publish_to_write_seconds_bucket')).map(([, n]) => n);
    expect(buckets).toEqual([...buckets].sort((x, y) => x - y));
    expect(value(after, 'herald_published_total')).toBe(2);
  });

  it('counts refusals by error code', async () => {
    const node = await startTestNode();
    await node.publish(undefined, { raw: '{oops' });
    await node.publish({ to: { users: ['alice'] }, event: 'message', data: 'x'.repeat(70_000) });
    await node.publish({ to: { users: ['alice'] }, event: 'message', data: 'x'.repeat(70_000) });
    await node.publish({ to: { users: ['alice'] }, event: 'message', data: 1 }, { token: 'not-the-publisher-token' });
    await fetch(new URL('/no-such-path', node.url));
    await fetch(new URL('/healthz', node.url), { method: 'DELETE' });
    await openStream(node.url, { label: 'no token' });

    const scraped = await scrape(node.url);

    expect(value(scraped, 'herald_refusals_total{code="json_invalid"}')).toBe(1);
    expect(value(scraped, 'herald_refusals_total{code="payload_too_large"}')).toBe(2);
    expect(value(scraped, 'herald_refusals_total{code="publisher_unauthorized"}')).toBe(1);
    expect(value(scraped, 'herald_refusals_total{code="not_found"}')).toBe(1);
    expect(value(scraped, 'herald_refusals_total{code="method_not_allowed"}')).toBe(1);
    expect(value(scraped, 'herald_refusals_total{code="token_missing"}')).toBe(1);
    expect(value(scraped, 'herald_published_total')).toBe(0);
  });
});

describe('methods and paths', () => {
  it.each([
    ['DELETE', '/healthz'],
    ['POST', '/healthz'],
    ['PUT', '/metrics'],
    ['DELETE', '/events'],
    ['GET', '/publish'],
  ])('answers %s %s with 405 method_not_allowed', async (method, path) => {
    const node = await startTestNode();
    const answer = await rawRequest(node.url, { method, path });
    expect(answer.status).toBe(405);
    expect(answer.json).toMatchObject({ error: 'method_not_allowed' });
  });

  // RFC 9110 §15.5.6: "The origin server MUST generate an Allow header field in a 405 response".
  it.each([
    ['DELETE', '/healthz', 'GET'],
    ['POST', '/metrics', 'GET'],
    ['PUT', '/events', 'GET'],
    ['GET', '/publish', 'POST'],
    ['DELETE', '/publish', 'POST'],
  ])('names the allowed method in an Allow header on 405 for %s %s: %s', async (method, path, allow) => {
    const node = await startTestNode();
    const answer = await rawRequest(node.url, { method, path });
    expect(answer.status).toBe(405);
    expect(answer.headers.allow).toBe(allow);
  });

  it('answers GET /publish with 404, not 405, when the publish route is not served', async () => {
    const node = await startTestNode({ env: { HERALD_PUBLISH_TOKEN: '' } });
    const answer = await rawRequest(node.url, { method: 'GET', path: '/publish' });
    expect(answer.status).toBe(404);
    expect(answer.headers.allow).toBeUndefined();
  });

  it('answers an unknown path with 404 not_found', async () => {
    const node = await startTestNode();
    const answer = await rawRequest(node.url, { method: 'GET', path: '/admin' });
    expect(answer.status).toBe(404);
    expect(answer.json).toMatchObject({ error: 'not_found' });
  });
});

describe('logs', () => {
  it('never contain user tokens, the publisher token or event data', async () => {
    const rig = new PortRig();
    const node = await startTestNode({ ports: rig.wrap });
    const marker = `secret-payload-${randomBytes(8).toString('hex')}`;
    const wrongPublisherToken = `wrong-publisher-${randomBytes(8).toString('hex')}`;
    const aliceToken = await node.token('alice');
    const bobToken = await node.token('bob');
    const expiredToken = await signToken('carol', { expiresInSeconds: -60 });
    const forgedToken = await signToken('mallory', { secret: `forged-${randomBytes(16).toString('hex')}` });

    const alice = await openStream(node.url, { token: aliceToken, label: 'alice' });
    const bob = await openStream(node.url, { cookie: `herald_token=${bobToken}`, label: 'bob' });
    await Promise.all([alice.next('ready'), bob.next('ready')]);
    expect((await openStream(node.url, { token: expiredToken })).status).toBe(401);
    expect((await openStream(node.url, { token: forgedToken })).status).toBe(401);

    const data = { text: marker };
    const delivered = await node.publish({ to: { users: ['alice', 'bob'] }, event: 'message', data });
    expect(delivered.status).toBe(202);
    await Promise.all([alice.next('message'), bob.next('message')]);
    await node.publish({ to: { all: true }, event: 'message', data });
    expect((await node.publish({ to: { users: ['alice'] }, event: 'message', data }, { token: wrongPublisherToken })).status).toBe(401);
    expect((await node.publish({ to: { users: ['alice'] }, event: 'message', data: { text: marker.repeat(5000) } })).status).toBe(413);
    expect((await node.publish({ to: { users: ['alice'] }, event: 'message', data, [marker]: 1 })).status).toBe(400);
    // A fault logs the error: still not the event.
    const failing = newEventId();
    rig.once('before', 'bus.send', () => {
      throw unavailable('topic unreachable');
    }, (call) => call.eventId === failing);
    expect((await node.publish({ id: failing, to: { users: ['alice'] }, event: 'message', data })).status).toBe(503);
    const again = await connect(node, 'alice', { lastEventId: String(delivered.body.id), label: 'alice again' });
    await sentinel(node, ['alice'], [again]);
    await node.shutdown();

    expect(node.logs.map((l) => l.event)).toEqual(expect.arrayContaining(['connection.opened', 'connection.replaced', 'http.unavailable', 'node.stopped']));
    const secrets = [marker, TEST_PUBLISH_TOKEN, wrongPublisherToken, aliceToken, bobToken, expiredToken, forgedToken];
    // The signature alone would be as bad as the whole token.
    for (const token of [aliceToken, bobToken, expiredToken, forgedToken]) secrets.push(token.split('.')[2]!);
    for (const line of node.logs) {
      const text = JSON.stringify(line);
      for (const secret of secrets) expect(text, `log line ${text}`).not.toContain(secret);
    }
  });
});
