import { describe, expect, it } from 'vitest';
import { startTestNode } from '../support/start-node';
import { openStream } from '../support/sse-client';

describe('GET /events stream', () => {
  it('answers 200 with the event-stream headers that keep proxies from buffering', async () => {
    const node = await startTestNode();
    const stream = await openStream(node.url, { token: await node.token('alice') });
    expect(stream.status).toBe(200);
    expect(stream.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(stream.headers['cache-control']).toBe('no-cache, no-transform');
    expect(stream.headers['x-accel-buffering']).toBe('no');
  });

  it('announces a retry within ±50% of HERALD_RETRY_MS before ready, jittered per connection', async () => {
    const retryMs = 4000;
    const node = await startTestNode({ env: { HERALD_RETRY_MS: String(retryMs), HERALD_TAB_POLICY: 'multi' } });
    const retries: number[] = [];
    for (const label of ['tab 1', 'tab 2', 'tab 3']) {
      const stream = await openStream(node.url, { token: await node.token('alice'), label });
      const ready = await stream.next('ready');
      // `retry:` is seen before `ready`: the first thing on the stream.
      expect(ready.retry).toBeDefined();
      retries.push(ready.retry!);
      stream.close();
    }
    for (const retry of retries) {
      expect(retry).toBeGreaterThanOrEqual(retryMs * 0.5);
      expect(retry).toBeLessThanOrEqual(retryMs * 1.5);
    }
  });

  it('sends ready with the connection id, node id, policy and heartbeat period', async () => {
    const node = await startTestNode({ env: { HERALD_HEARTBEAT_MS: '20000' } });
    const first = await openStream(node.url, { token: await node.token('alice'), label: 'alice' });
    const second = await openStream(node.url, { token: await node.token('bob'), label: 'bob' });
    const ready = await first.next('ready');
    expect(first.events[0]?.event).toBe('ready');
    const data = JSON.parse(ready.data) as Record<string, unknown>;
    expect(data).toEqual({ connectionId: expect.stringMatching(/^[A-Za-z0-9_-]{8,}$/) as unknown, nodeId: node.node.nodeId, policy: 'single', heartbeatMs: 20000 });
    const other = JSON.parse((await second.next('ready')).data) as Record<string, unknown>;
    expect(other.connectionId).not.toBe(data.connectionId);
  });

  it('sends event: ping every HERALD_HEARTBEAT_MS, without an id: at least two within three periods', async () => {
    const node = await startTestNode({ env: { HERALD_HEARTBEAT_MS: '1000' } });
    const stream = await openStream(node.url, { token: await node.token('alice') });
    await stream.next('ready');
    const arrivals: number[] = [];
    // The first ping lands at a random instant within one period (spread over connects), then one per period.
    let from = 0;
    while (arrivals.length < 2) {
      const ping = await stream.next('ping', { from, timeoutMs: 1600 });
      arrivals.push(Date.now());
      from = stream.events.indexOf(ping) + 1;
      expect(ping.id).toBeUndefined();
      expect(ping.data).toBe('{}');
    }
    // Not back to back: the node schedules each ping at least half a period after the previous one.
    expect(arrivals[1]! - arrivals[0]!).toBeGreaterThanOrEqual(300);
    expect(stream.events.filter((e) => e.event === 'ping').every((e) => e.id === undefined)).toBe(true);
  });
});
