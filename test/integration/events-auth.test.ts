import { describe, expect, it } from 'vitest';
import { startTestNode, type TestNode } from '../support/start-node';
import { openStream, type SseStream } from '../support/sse-client';
import { signToken, unsignedToken } from '../support/tokens';

/** A refusal is a JSON body with a stable `error` code. */
function refusal(stream: SseStream): { error: string; message: string } {
  expect(stream.headers['content-type']).toMatch(/^application\/json/);
  return JSON.parse(stream.body) as { error: string; message: string };
}

/** RFC 6750 §3: no error code when no credentials came at all; invalid_token for a token that failed. */
const CHALLENGE = { token_missing: 'Bearer realm="herald"', rejected: 'Bearer realm="herald", error="invalid_token"' };

/** A 401 names its scheme in WWW-Authenticate (RFC 9110 §11.6.1). */
function expectChallenge(stream: SseStream, expected: string): void {
  expect(stream.status).toBe(401);
  expect(stream.headers['www-authenticate']).toBe(expected);
}

/** Who a stream belongs to, shown the only way a client can: which user's events it receives. */
async function expectStreamOf(node: TestNode, stream: SseStream, userId: string, other: string): Promise<void> {
  await stream.next('ready');
  // Published in this order by one publisher: when `userId`'s event arrives, `other`'s would have come first.
  await node.publish({ to: { users: [other] }, event: 'probe', data: { for: other } });
  await node.publish({ to: { users: [userId] }, event: 'probe', data: { for: userId } });
  const probe = await stream.next('probe');
  expect(JSON.parse(probe.data)).toEqual({ for: userId });
  expect(stream.events.filter((e) => e.event === 'probe')).toHaveLength(1);
}

describe('GET /events authentication', () => {
  it('refuses a request without a token with 401 token_missing', async () => {
    const node = await startTestNode();
    const stream = await openStream(node.url, { label: 'anonymous' });
    expect(stream.status).toBe(401);
    expect(refusal(stream).error).toBe('token_missing');
    expectChallenge(stream, CHALLENGE.token_missing);
  });

  it('refuses an expired token with 401 token_expired', async () => {
    const node = await startTestNode();
    const stream = await openStream(node.url, { token: await signToken('alice', { expiresInSeconds: -10 }) });
    expect(stream.status).toBe(401);
    expect(refusal(stream).error).toBe('token_expired');
    expectChallenge(stream, CHALLENGE.rejected);
  });

  it('accepts a token that expired within HERALD_JWT_CLOCK_TOLERANCE_S (5 s by default), and not with 0', async () => {
    const token = await signToken('alice', { expiresInSeconds: -2 });
    const tolerant = await startTestNode();
    const accepted = await openStream(tolerant.url, { token, label: 'within the default tolerance' });
    expect(accepted.status).toBe(200);
    accepted.close();

    const strict = await startTestNode({ env: { HERALD_JWT_CLOCK_TOLERANCE_S: '0' } });
    const refused = await openStream(strict.url, { token, label: 'no tolerance' });
    expect(refused.status).toBe(401);
    expect(refusal(refused).error).toBe('token_expired');
  });

  it('refuses a token signed with another secret with 401 token_invalid', async () => {
    const node = await startTestNode();
    const stream = await openStream(node.url, { token: await signToken('alice', { secret: 'another-secret-that-is-also-32-bytes-long' }) });
    expect(stream.status).toBe(401);
    expect(refusal(stream).error).toBe('token_invalid');
    expectChallenge(stream, CHALLENGE.rejected);
  });

  it('refuses an unsigned alg:none token with 401', async () => {
    const node = await startTestNode();
    const stream = await openStream(node.url, { token: unsignedToken('alice') });
    expect(stream.status).toBe(401);
    expect(refusal(stream).error).toBe('token_invalid');
    expectChallenge(stream, CHALLENGE.rejected);
  });

  it('refuses a token without exp with 401 token_invalid, since it would hold a stream open forever', async () => {
    const node = await startTestNode();
    const stream = await openStream(node.url, { token: await signToken('alice', { omitExp: true }) });
    expect(stream.status).toBe(401);
    expect(refusal(stream).error).toBe('token_invalid');
    expectChallenge(stream, CHALLENGE.rejected);
  });

  it('refuses a token whose sub holds an unpaired surrogate with 401 token_invalid', async () => {
    const node = await startTestNode();
    // JSON carries it as the escape \ud83d, so the signature is valid and only the user id is wrong.
    const stream = await openStream(node.url, { token: await signToken('alice\ud83d') });
    expect(stream.status).toBe(401);
    expect(refusal(stream).error).toBe('token_invalid');
    expectChallenge(stream, CHALLENGE.rejected);
  });

  it('accepts a sub with a surrogate pair', async () => {
    const node = await startTestNode();
    const stream = await openStream(node.url, { token: await signToken('alice 👋') });
    expect(stream.status).toBe(200);
    await expectStreamOf(node, stream, 'alice 👋', 'bob');
  });

  it('refuses a token that is not a JWT at all with 401 token_invalid', async () => {
    const node = await startTestNode();
    const stream = await openStream(node.url, { token: 'not.a.jwt' });
    expect(stream.status).toBe(401);
    expect(refusal(stream).error).toBe('token_invalid');
    expectChallenge(stream, CHALLENGE.rejected);
  });

  it('accepts the token from the herald_token cookie', async () => {
    const node = await startTestNode();
    const stream = await openStream(node.url, { cookie: `theme=dark; herald_token=${await node.token('alice')}`, label: 'cookie' });
    expect(stream.status).toBe(200);
    await expectStreamOf(node, stream, 'alice', 'bob');
  });

  it('reads the cookie named by HERALD_AUTH_COOKIE, and no longer the default one', async () => {
    const node = await startTestNode({ env: { HERALD_AUTH_COOKIE: 'app_session' } });
    const token = await node.token('alice');

    const custom = await openStream(node.url, { cookie: `app_session=${token}`, label: 'custom cookie' });
    expect(custom.status).toBe(200);
    await expectStreamOf(node, custom, 'alice', 'bob');

    const defaultName = await openStream(node.url, { cookie: `herald_token=${token}`, label: 'default cookie' });
    expect(defaultName.status).toBe(401);
    expect(refusal(defaultName).error).toBe('token_missing');
    expectChallenge(defaultName, CHALLENGE.token_missing);
  });

  it('takes identity from the Bearer header when a cookie names another user', async () => {
    const node = await startTestNode();
    const stream = await openStream(node.url, { token: await node.token('bob'), cookie: `herald_token=${await node.token('alice')}`, label: 'bearer+cookie' });
    expect(stream.status).toBe(200);
    await expectStreamOf(node, stream, 'bob', 'alice');
  });

  it('refuses a bad Bearer token even when a valid cookie is present: the header wins', async () => {
    const node = await startTestNode();
    const stream = await openStream(node.url, { token: await signToken('bob', { expiresInSeconds: -10 }), cookie: `herald_token=${await node.token('alice')}` });
    expect(stream.status).toBe(401);
    expect(refusal(stream).error).toBe('token_expired');
    expectChallenge(stream, CHALLENGE.rejected);
  });

  it('falls back to the cookie when Authorization carries another scheme, such as a proxy\'s Basic', async () => {
    const node = await startTestNode();
    const stream = await openStream(node.url, { headers: { Authorization: 'Basic dXNlcjpwYXNz' }, cookie: `herald_token=${await node.token('alice')}`, label: 'basic+cookie' });
    expect(stream.status).toBe(200);
    await expectStreamOf(node, stream, 'alice', 'bob');
  });

  it('sends no WWW-Authenticate on an accepted stream', async () => {
    const node = await startTestNode();
    const stream = await openStream(node.url, { token: await node.token('alice') });
    expect(stream.status).toBe(200);
    expect(stream.headers['www-authenticate']).toBeUndefined();
    stream.close();
  });
});
