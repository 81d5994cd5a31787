import { describe, expect, it } from 'vitest';
import { startTestNode } from '../support/start-node';
import { openStream, type SseStream } from '../support/sse-client';
import { eventually } from '../../scripts/fleet/deadline';

function expectRefusal(stream: SseStream, status: number, error: string): void {
  expect(stream.status).toBe(status);
  expect(JSON.parse(stream.body)).toMatchObject({ error });
  const retryAfter = Number(stream.headers['retry-after']);
  expect(Number.isInteger(retryAfter) && retryAfter >= 1, `Retry-After is whole seconds ≥ 1, got ${stream.headers['retry-after']}`).toBe(true);
}

describe('connection caps on GET /events', () => {
  it('refuses a stream beyond HERALD_MAX_CONNECTIONS with 503 node_full and Retry-After', async () => {
    const node = await startTestNode({ env: { HERALD_MAX_CONNECTIONS: '2' } });
    const first = await openStream(node.url, { token: await node.token('alice'), label: 'alice' });
    const second = await openStream(node.url, { token: await node.token('bob'), label: 'bob' });
    await Promise.all([first.next('ready'), second.next('ready')]);

    const third = await openStream(node.url, { token: await node.token('carol'), label: 'carol' });
    expectRefusal(third, 503, 'node_full');

    // The open streams are untouched; and room made by a close is given to the next client.
    const sentinel = await node.publish({ to: { users: ['alice', 'bob'] }, event: 'message', data: {} });
    await Promise.all([first, second].map((s) => s.waitFor((e) => e.id === sentinel.body.id, `the sentinel on ${s.label}`)));
    second.close();
    await eventually(async () => (await node.metric('herald_connections')) === 1, 3000, 'the node to see bob close');
    const again = await openStream(node.url, { token: await node.token('carol'), label: 'carol again' });
    expect(again.status).toBe(200);
    await again.next('ready');
  });

  it('refuses a stream beyond HERALD_MAX_CONNECTIONS_PER_IP open from one address with 429 too_many_streams, not from another', async () => {
    const node = await startTestNode({ env: { HERALD_MAX_CONNECTIONS_PER_IP: '2' } });
    const first = await openStream(node.url, { token: await node.token('alice'), label: 'alice' });
    const second = await openStream(node.url, { token: await node.token('bob'), label: 'bob' });
    await Promise.all([first.next('ready'), second.next('ready')]);

    const third = await openStream(node.url, { token: await node.token('carol'), label: 'carol' });
    expectRefusal(third, 429, 'too_many_streams');
    const elsewhere = await openStream(node.url, { token: await node.token('carol'), localAddress: '127.0.0.2', label: 'carol from 127.0.0.2' });
    expect(elsewhere.status).toBe(200);
    await elsewhere.next('ready');

    // Open streams count, not connects: a close from the full address makes room there.
    second.close();
    await eventually(async () => (await node.metric('herald_connections')) === 2, 3000, 'the node to see bob close');
    const again = await openStream(node.url, { token: await node.token('dave'), label: 'dave' });
    expect(again.status).toBe(200);
    await again.next('ready');
  });

  it('refuses the third connect within a second from one address with 429 too_many_connects, not another address', async () => {
    const node = await startTestNode({ env: { HERALD_CONNECT_RATE_PER_IP: '2', HERALD_CONNECT_BURST_PER_IP: '2' } });
    const startedAt = Date.now();
    const first = await openStream(node.url, { token: await node.token('alice'), label: 'alice' });
    const second = await openStream(node.url, { token: await node.token('bob'), label: 'bob' });
    const third = await openStream(node.url, { token: await node.token('carol'), label: 'carol' });
    // Two connects per second come back at 2/s: the third must come well inside half a second to be refused.
    expect(Date.now() - startedAt, 'three connects took too long for this test to mean anything').toBeLessThan(400);
    expect([first.status, second.status]).toEqual([200, 200]);
    expectRefusal(third, 429, 'too_many_connects');

    const elsewhere = await openStream(node.url, { token: await node.token('carol'), localAddress: '127.0.0.2', label: 'carol from 127.0.0.2' });
    expect(elsewhere.status).toBe(200);
    await elsewhere.next('ready');
  });

  it('counts refused connects against the address as well, so a client retrying in a loop stays refused', async () => {
    const node = await startTestNode({ env: { HERALD_CONNECT_RATE_PER_IP: '2', HERALD_CONNECT_BURST_PER_IP: '2' } });
    const statuses: number[] = [];
    for (let i = 0; i < 2; i++) statuses.push((await openStream(node.url, {})).status);
    statuses.push((await openStream(node.url, { token: await node.token('alice') })).status);
    // Token-less attempts spent the budget: 401, 401, then the valid one is refused for the rate.
    expect(statuses).toEqual([401, 401, 429]);
  });
});
