import { describe, expect, it } from 'vitest';
import { startTestNode } from '../support/start-node';
import { openStream } from '../support/sse-client';

describe('GET /events', () => {
  it('streams ready, then a published event, with the SSE headers', async () => {
    const node = await startTestNode();
    const stream = await openStream(node.url, { token: await node.token('alice'), label: 'alice' });
    expect(stream.status).toBe(200);
    expect(stream.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(stream.headers['cache-control']).toBe('no-cache, no-transform');
    expect(stream.headers['x-accel-buffering']).toBe('no');
    const ready = await stream.next('ready');
    expect(JSON.parse(ready.data)).toMatchObject({ nodeId: node.node.nodeId, policy: 'single', heartbeatMs: 15000 });
    expect(ready.retry).toBeGreaterThan(0);

    const published = await node.publish({ to: { users: ['alice'] }, event: 'message', data: { text: 'Hello 👋' } });
    expect(published.status).toBe(202);
    const message = await stream.next('message');
    expect(message.id).toBe(published.body.id);
    expect(JSON.parse(message.data)).toEqual({ text: 'Hello 👋' });
  });
});
