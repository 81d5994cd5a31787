import { describe, expect, it } from 'vitest';
import { startTestNode } from '../support/start-node';
import { rawRequest } from '../support/raw-http';
import { TEST_PUBLISH_TOKEN } from '../support/tokens';
import { connect, sentinel } from '../support/publish-kit';

const envelope = JSON.stringify({ to: { users: ['alice'] }, event: 'message', data: { text: 'hi' } });

describe('POST /publish: publisher token', () => {
  it.each([
    ['no Authorization header', undefined],
    ['a wrong token of the same length', `Bearer ${'x'.repeat(TEST_PUBLISH_TOKEN.length)}`],
    ['a token that is a prefix of the right one', `Bearer ${TEST_PUBLISH_TOKEN.slice(0, -1)}`],
    ['the right token with a byte more', `Bearer ${TEST_PUBLISH_TOKEN}x`],
    ['the right token in the Basic scheme', `Basic ${TEST_PUBLISH_TOKEN}`],
    ['the right token base64-encoded in the Basic scheme', `Basic ${Buffer.from(`publisher:${TEST_PUBLISH_TOKEN}`).toString('base64')}`],
    ['Bearer with no token', 'Bearer '],
    ['two tokens', `Bearer ${TEST_PUBLISH_TOKEN} ${TEST_PUBLISH_TOKEN}`],
  ])('refuses %s with 401 publisher_unauthorized', async (_case, authorization) => {
    const node = await startTestNode();
    const alice = await connect(node, 'alice');
    const headers: Record<string, string> = { 'Content-Type': 'application/json' };
    if (authorization !== undefined) headers.Authorization = authorization;

    const answer = await rawRequest(node.url, { path: '/publish', headers, body: envelope });

    expect(answer.status).toBe(401);
    expect(answer.headers['content-type']).toMatch(/^application\/json/);
    expect(answer.json).toMatchObject({ error: 'publisher_unauthorized' });
    expect(answer.headers['www-authenticate']).toMatch(/^Bearer realm="herald"(, error="invalid_token")?$/);
    expect(answer.text).not.toContain(TEST_PUBLISH_TOKEN);
    await sentinel(node, ['alice'], [alice]);
    expect(alice.notifications().map((e) => e.event)).toEqual(['sentinel']);
  });

  it('challenges with WWW-Authenticate: Bearer on 401', async () => {
    const node = await startTestNode();
    const answer = await rawRequest(node.url, { path: '/publish', headers: { 'Content-Type': 'application/json' }, body: envelope });
    expect(answer.status).toBe(401);
    expect(answer.headers['www-authenticate']).toMatch(/^Bearer realm="herald"(,|$)/);
  });

  it('says error="invalid_token" in the challenge when the token given is wrong (RFC 6750 §3.1)', async () => {
    const node = await startTestNode();
    const answer = await rawRequest(node.url, {
      path: '/publish',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${'x'.repeat(TEST_PUBLISH_TOKEN.length)}` },
      body: envelope,
    });
    expect(answer.status).toBe(401);
    expect(answer.headers['www-authenticate']).toBe('Bearer realm="herald", error="invalid_token"');
  });

  it('accepts the Bearer scheme in any letter case (RFC 9110 §11.1: schemes are case-insensitive)', async () => {
    const node = await startTestNode();
    const answer = await rawRequest(node.url, {
      path: '/publish',
      headers: { 'Content-Type': 'application/json', Authorization: `bearer ${TEST_PUBLISH_TOKEN}` },
      body: envelope,
    });
    expect(answer.status).toBe(202);
  });

  it('checks the token before the body, so a caller without it learns nothing about the schema or the limits', async () => {
    const node = await startTestNode();
    const refusals = await Promise.all([
      rawRequest(node.url, { path: '/publish', headers: { 'Content-Type': 'application/json' }, body: '{not json' }),
      rawRequest(node.url, { path: '/publish', headers: { 'Content-Type': 'text/plain' }, body: envelope }),
      rawRequest(node.url, { path: '/publish', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ bogus: 1 }) }),
      rawRequest(node.url, { path: '/publish', headers: { 'Content-Type': 'application/json' }, body: ' '.repeat(8_000_000) }),
    ]);
    expect(refusals.map((r) => [r.status, r.json?.error])).toEqual(Array(4).fill([401, 'publisher_unauthorized']));
  });

  it('serves the route with a generated token in dev mode (no HERALD_JWT_SECRET)', async () => {
    const node = await startTestNode({ env: { HERALD_JWT_SECRET: '', HERALD_PUBLISH_TOKEN: '' } });
    expect(node.config.dev).toBe(true);
    const token = node.config.publishToken;
    expect(token).toBeDefined();
    expect(token).not.toBe(TEST_PUBLISH_TOKEN);

    expect((await node.publish({ to: { users: ['alice'] }, event: 'message', data: 1 }, { token: String(token) })).status).toBe(202);
    expect((await node.publish({ to: { users: ['alice'] }, event: 'message', data: 1 })).status).toBe(401);
  });

  it('is absent (404 not_found) when no publisher token is configured outside dev mode', async () => {
    const node = await startTestNode({ env: { HERALD_PUBLISH_TOKEN: '' } });
    expect(node.config.dev).toBe(false);
    expect(node.config.publishToken).toBeUndefined();

    const answer = await rawRequest(node.url, {
      path: '/publish',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${TEST_PUBLISH_TOKEN}` },
      body: envelope,
    });

    expect(answer.status).toBe(404);
    expect(answer.json).toMatchObject({ error: 'not_found' });
  });

  it('does not accept any publish when no publisher token is configured outside dev mode', async () => {
    const node = await startTestNode({ env: { HERALD_PUBLISH_TOKEN: '' } });
    const alice = await connect(node, 'alice');
    for (const authorization of [`Bearer ${TEST_PUBLISH_TOKEN}`, 'Bearer undefined', 'Bearer ', undefined]) {
      const headers: Record<string, string> = { 'Content-Type': 'application/json' };
      if (authorization !== undefined) headers.Authorization = authorization;
      const answer = await rawRequest(node.url, { path: '/publish', headers, body: envelope });
      expect(answer.status, String(authorization)).toBeGreaterThanOrEqual(400);
      expect(answer.status).toBeLessThan(500);
    }
    // No publish route, so the sentinel goes straight through the node's bus.
    await node.ports.bus.send({ kind: 'deliver', events: [{ id: '01ARZ3NDEKTSV4RRFFQ69G5FAV', event: 'sentinel', data: '1', to: { users: ['alice'] }, ttlSeconds: 0, publishedAtMs: Date.now() }] }, 'all');
    await alice.next('sentinel');
    expect(alice.notifications().map((e) => e.event)).toEqual(['sentinel']);
  });
});
