import { describe, expect, it } from 'vitest';
import { startTestNode } from '../support/start-node';
import { openStream } from '../support/sse-client';

describe('methods and paths around /events', () => {
  it.each(['POST', 'PUT', 'DELETE'])('answers %s /events with 405 method_not_allowed as JSON', async (method) => {
    const node = await startTestNode();
    const response = await fetch(new URL('/events', node.url), { method, headers: { Authorization: `Bearer ${await node.token('alice')}` } });
    expect(response.status).toBe(405);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    expect(response.headers.get('allow')).toBe('GET');
    expect(await response.json()).toMatchObject({ error: 'method_not_allowed' });
  });

  it('answers an unknown path with 404 not_found as JSON', async () => {
    const node = await startTestNode();
    const response = await fetch(new URL('/event', node.url), { headers: { Authorization: `Bearer ${await node.token('alice')}` } });
    expect(response.status).toBe(404);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await response.json()).toMatchObject({ error: 'not_found' });
  });

  it('counts these refusals by code in /metrics', async () => {
    const node = await startTestNode();
    await (await fetch(new URL('/events', node.url), { method: 'POST' })).text();
    await (await fetch(new URL('/nowhere', node.url))).text();
    expect(await node.metric('herald_refusals_total{code="method_not_allowed"}')).toBe(1);
    expect(await node.metric('herald_refusals_total{code="not_found"}')).toBe(1);
  });

  // RFC 9110 §15.5.6: "The origin server MUST generate an Allow header field in a 405 response".
  it('names the allowed method in an Allow header on 405', async () => {
    const node = await startTestNode();
    const response = await fetch(new URL('/events', node.url), { method: 'POST' });
    await response.text();
    expect(response.status).toBe(405);
    expect(response.headers.get('allow') ?? '(none)').toMatch(/\bGET\b/);
  });

  // Hono answers HEAD with the GET handler; HEAD is a safe method (RFC 9110 §9.3.2) and must not
  // claim the user and displace the open tab.
  it('does not open a stream for HEAD /events, so a HEAD cannot displace the open tab', async () => {
    const node = await startTestNode();
    const token = await node.token('alice');
    const tab = await openStream(node.url, { token, label: 'alice' });
    await tab.next('ready');

    const head = await fetch(new URL('/events', node.url), { method: 'HEAD', headers: { Authorization: `Bearer ${token}` } });
    await head.text();
    expect(head.status).toBe(405);
    expect(head.headers.get('allow')).toBe('GET');

    const sentinel = await node.publish({ to: { users: ['alice'] }, event: 'message', data: {} });
    await tab.waitFor((e) => e.id === sentinel.body.id, 'the sentinel on the open tab');
    expect(tab.names()).not.toContain('replaced');
    expect(await node.metric('herald_connections_opened_total')).toBe(1);
  });
});
