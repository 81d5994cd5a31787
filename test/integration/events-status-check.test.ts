import { describe, expect, it } from 'vitest';
import { startTestNode } from '../support/start-node';
import { openStream } from '../support/sse-client';

/**
 * `GET /events` with `Accept: application/json` tells a client why its
 * EventSource was refused, without opening a stream: the browser client uses
 * it after an `error`, and it must never claim the user's tab.
 */
describe('GET /events status check (Accept: application/json)', () => {
  const check = (url: string, headers: Record<string, string>): Promise<Response> =>
    fetch(new URL('/events', url), { headers: { Accept: 'application/json', ...headers } });

  it('answers 200 JSON for a stream that would open, without claiming the tab or opening a stream', async () => {
    const node = await startTestNode();
    const token = await node.token('alice');
    const tab = await openStream(node.url, { token, label: 'alice' });
    await tab.next('ready');

    const answer = await check(node.url, { Authorization: `Bearer ${token}` });
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual({ ok: true, nodeId: node.node.nodeId });

    const sentinel = await node.publish({ to: { users: ['alice'] }, event: 'message', data: {} });
    await tab.waitFor((e) => e.id === sentinel.body.id, 'the sentinel on the open tab');
    expect(tab.names()).not.toContain('replaced');
    expect(await node.metric('herald_connections_opened_total')).toBe(1);
  });

  it('answers the refusals a stream would get: 401 without a token, 400 for identity in the URL, 503 while draining', async () => {
    const node = await startTestNode();
    const token = await node.token('alice');

    const missing = await check(node.url, {});
    expect(missing.status).toBe(401);
    expect(await missing.json()).toMatchObject({ error: 'token_missing' });

    const inUrl = await fetch(new URL('/events?userId=alice', node.url), { headers: { Accept: 'application/json', Authorization: `Bearer ${token}` } });
    expect(inUrl.status).toBe(400);
    expect(await inUrl.json()).toMatchObject({ error: 'identity_in_url' });

    void node.node.drain();
    const draining = await check(node.url, { Authorization: `Bearer ${token}` });
    expect(draining.status).toBe(503);
    expect(draining.headers.get('retry-after')).toBe('1');
    expect(await draining.json()).toMatchObject({ error: 'draining' });
  });

  it('still opens a stream when the client accepts both (EventSource always asks for text/event-stream)', async () => {
    const node = await startTestNode();
    const stream = await openStream(node.url, { token: await node.token('alice'), headers: { Accept: 'text/event-stream, application/json' } });
    expect(stream.status).toBe(200);
    await stream.next('ready');
  });
});
