import { describe, expect, it } from 'vitest';
import { startTestNode } from '../support/start-node';
import { openStream } from '../support/sse-client';
import { signToken } from '../support/tokens';

describe('token expiry on an open stream', () => {
  it('ends the stream with closing token_expired and a retry once the token expires, and only that stream', async () => {
    const node = await startTestNode({ env: { HERALD_RETRY_MS: '1000', HERALD_JWT_CLOCK_TOLERANCE_S: '0' } });
    // `exp` is whole seconds: this token expires 1 to 2 s from now.
    const token = await signToken('alice', { expiresInSeconds: 2 });
    const expiresAtMs = (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { exp: number }).exp * 1000;
    const stream = await openStream(node.url, { token, label: 'alice' });
    const ready = await stream.next('ready');
    const longLived = await openStream(node.url, { token: await node.token('bob'), label: 'bob, with a one-hour token' });
    await longLived.next('ready');

    // Expiry is checked on the node's tick (at most 1 s): deadline = time left + one tick + margin.
    const closing = await stream.next('closing', { timeoutMs: expiresAtMs - Date.now() + 2000 });
    const closedAtMs = Date.now();
    expect(JSON.parse(closing.data)).toEqual({ reason: 'token_expired' });
    expect(closing.id).toBeUndefined();
    expect(closedAtMs).toBeGreaterThanOrEqual(expiresAtMs);
    // The retry on the closing frame is a fresh jittered one (±50% of HERALD_RETRY_MS).
    expect(closing.retry).toBeGreaterThanOrEqual(500);
    expect(closing.retry).toBeLessThanOrEqual(1500);
    expect(ready.retry).toBeDefined();
    await stream.closed();
    expect(stream.events.at(-1)?.event).toBe('closing');
    expect(await node.metric('herald_connections_closed_total{reason="token_expired"}')).toBe(1);

    // A stream whose token is still valid stays open past the other's expiry.
    const sentinel = await node.publish({ to: { users: ['bob'] }, event: 'message', data: {} });
    await longLived.waitFor((e) => e.id === sentinel.body.id, 'the sentinel on the long-lived stream');
    expect(longLived.names()).not.toContain('closing');
    expect(longLived.ended).toBe(false);

    // The browser's reconnect with the same token is refused; it needs a fresh one.
    const again = await openStream(node.url, { token, label: 'alice reconnecting' });
    expect(again.status).toBe(401);
    expect(JSON.parse(again.body)).toMatchObject({ error: 'token_expired' });
  });

  it('keeps the stream open for HERALD_JWT_CLOCK_TOLERANCE_S past exp, then closes it when a reconnect would be refused', async () => {
    const node = await startTestNode({ env: { HERALD_JWT_CLOCK_TOLERANCE_S: '2' } });
    const token = await signToken('alice', { expiresInSeconds: 1 });
    const expiresAtMs = (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { exp: number }).exp * 1000;
    const stream = await openStream(node.url, { token, label: 'alice' });
    await stream.next('ready');

    const closing = await stream.next('closing', { timeoutMs: expiresAtMs + 2000 - Date.now() + 2000 });

    expect(Date.now()).toBeGreaterThanOrEqual(expiresAtMs + 2000);
    expect(JSON.parse(closing.data)).toEqual({ reason: 'token_expired' });
    const again = await openStream(node.url, { token, label: 'alice reconnecting' });
    expect(again.status).toBe(401);
    expect(JSON.parse(again.body)).toMatchObject({ error: 'token_expired' });
  });
});

describe('HERALD_MAX_STREAM_S', () => {
  it('ends a stream that reaches the cap with closing max_age and a retry, whatever its token, and the same token opens the next one', async () => {
    const node = await startTestNode({ env: { HERALD_MAX_STREAM_S: '1', HERALD_RETRY_MS: '1000' } });
    const token = await node.token('alice');
    const openedAtMs = Date.now();
    const stream = await openStream(node.url, { token, label: 'alice' });
    await stream.next('ready');

    // Somewhere in the cap's last tenth, then up to one tick of the node's timer.
    const closing = await stream.next('closing', { timeoutMs: 3000 });

    expect(Date.now() - openedAtMs).toBeGreaterThanOrEqual(900);
    expect(JSON.parse(closing.data)).toEqual({ reason: 'max_age' });
    expect(closing.retry).toBeGreaterThanOrEqual(500);
    expect(closing.retry).toBeLessThanOrEqual(1500);
    await stream.closed();
    expect(await node.metric('herald_connections_closed_total{reason="max_age"}')).toBe(1);
    const again = await openStream(node.url, { token, label: 'alice again' });
    expect(again.status).toBe(200);
    await again.next('ready');
    again.close();
  });
});
