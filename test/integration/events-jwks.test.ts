/**
 * Production auth: tokens verified against an identity provider's key set
 * (HERALD_JWKS_URL + HERALD_JWT_ISSUER + HERALD_JWT_AUDIENCE), fetched over
 * real HTTP from a small key server on loopback (config.ts allows plain http
 * only for a literal loopback host), with real RS256 and ES256 keys from jose.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, exportSPKI, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { startTestNode, type TestNode } from '../support/start-node';
import { openStream, type SseStream } from '../support/sse-client';

const ISSUER = 'https://id.example.com/';
const AUDIENCE = 'herald';
const REJECTED_CHALLENGE = 'Bearer realm="herald", error="invalid_token"';

interface KeyServer {
  readonly url: string;
  /** GET requests for the key set so far. */
  requests: number;
  /** What the key server answers: the key set, or an outage of the identity provider. */
  answer: { status: number; body: string };
  close(): Promise<void>;
}

async function startKeyServer(keys: readonly JWK[]): Promise<KeyServer> {
  const state = { requests: 0, answer: { status: 200, body: JSON.stringify({ keys }) } };
  const server: Server = createServer((req, res) => {
    if (req.url !== '/.well-known/jwks.json') {
      res.writeHead(404).end();
      return;
    }
    state.requests++;
    res.writeHead(state.answer.status, { 'Content-Type': 'application/json' }).end(state.answer.body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
}

interface SigningKey {
  readonly alg: 'RS256' | 'ES256';
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
}

async function makeKey(alg: SigningKey['alg'], kid: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg);
  return { alg, kid, privateKey, publicKey };
}

async function publicJwk(key: SigningKey): Promise<JWK> {
  return { ...(await exportJWK(key.publicKey)), kid: key.kid, alg: key.alg, use: 'sig' };
}

interface Claims {
  readonly sub?: string;
  readonly iss?: string;
  readonly aud?: string;
  readonly expiresInSeconds?: number;
}

/** A token as the identity provider would sign it: its issuer and our audience unless told otherwise. */
async function idpToken(key: SigningKey, claims: Claims = {}, header: { kid?: string } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: key.alg, kid: header.kid ?? key.kid, typ: 'JWT' })
    .setSubject(claims.sub ?? 'alice')
    .setIssuer(claims.iss ?? ISSUER)
    .setAudience(claims.aud ?? AUDIENCE)
    .setIssuedAt(now)
    .setExpirationTime(now + (claims.expiresInSeconds ?? 600))
    .sign(key.privateKey);
}

let rsa: SigningKey;
let ec: SigningKey;
/** Same algorithms, never published in the key set: what an attacker could sign with. */
let foreignRsa: SigningKey;
let keyServer: KeyServer;

beforeAll(async () => {
  [rsa, ec, foreignRsa] = await Promise.all([makeKey('RS256', 'rsa-1'), makeKey('ES256', 'ec-1'), makeKey('RS256', 'rsa-attacker')]);
  keyServer = await startKeyServer([await publicJwk(rsa), await publicJwk(ec)]);
  return () => keyServer.close();
});

/** A node verifying against the key server. The test default secret is blanked: an empty value counts as unset. */
function startJwksNode(): Promise<TestNode> {
  return startTestNode({
    env: { HERALD_JWT_SECRET: '', HERALD_JWKS_URL: keyServer.url, HERALD_JWT_ISSUER: ISSUER, HERALD_JWT_AUDIENCE: AUDIENCE },
  });
}

function refusalCode(stream: SseStream): string {
  expect(stream.headers['content-type']).toMatch(/^application\/json/);
  return (JSON.parse(stream.body) as { error: string }).error;
}

describe('GET /events with JWKS verification', () => {
  it.each([
    ['RS256', () => rsa],
    ['ES256', () => ec],
  ])('opens a stream for an %s token signed by a key in the set, and delivers that user\'s events to it', async (_alg, key) => {
    const node = await startJwksNode();
    expect(node.config.auth.kind).toBe('jwks');
    const stream = await openStream(node.url, { token: await idpToken(key(), { sub: 'alice' }), label: 'alice' });
    expect(stream.status).toBe(200);
    await stream.next('ready');

    // Published in this order: when alice's event arrives, bob's would have come first.
    await node.publish({ to: { users: ['bob'] }, event: 'probe', data: { for: 'bob' } });
    await node.publish({ to: { users: ['alice'] }, event: 'probe', data: { for: 'alice' } });
    expect(JSON.parse((await stream.next('probe')).data)).toEqual({ for: 'alice' });
    expect(stream.events.filter((e) => e.event === 'probe')).toHaveLength(1);
    stream.close();
  });

  it.each<[string, () => Promise<string>]>([
    ['from another issuer', () => idpToken(rsa, { iss: 'https://evil.example.com/' })],
    ['for another audience', () => idpToken(rsa, { aud: 'another-service' })],
    ['signed by a key not in the set', () => idpToken(foreignRsa)],
    ['signed by a key not in the set but naming the kid of one that is', () => idpToken(foreignRsa, {}, { kid: rsa.kid })],
    // Algorithm confusion: HMAC keyed with the published public key, which anyone can fetch.
    [
      'in HS256, keyed with the set\'s own public key',
      async () =>
        new SignJWT({})
          .setProtectedHeader({ alg: 'HS256', kid: rsa.kid })
          .setSubject('alice')
          .setIssuer(ISSUER)
          .setAudience(AUDIENCE)
          .setExpirationTime('10m')
          .sign(new TextEncoder().encode(await exportSPKI(rsa.publicKey))),
    ],
  ])('refuses a token %s with 401 token_invalid', async (_label, make) => {
    const node = await startJwksNode();
    // A good token first, so the set has been fetched and the refusal is about the token, not the keys.
    const good = await openStream(node.url, { token: await idpToken(rsa, { sub: 'carol' }), label: 'carol' });
    expect(good.status).toBe(200);
    good.close();

    const stream = await openStream(node.url, { token: await make(), label: 'forged' });
    expect(stream.status).toBe(401);
    expect(refusalCode(stream)).toBe('token_invalid');
    expect(stream.headers['www-authenticate']).toBe(REJECTED_CHALLENGE);
  });

  it('refuses an expired token from a key in the set with 401 token_expired', async () => {
    const node = await startJwksNode();
    const stream = await openStream(node.url, { token: await idpToken(ec, { expiresInSeconds: -10 }) });
    expect(stream.status).toBe(401);
    expect(refusalCode(stream)).toBe('token_expired');
  });

  it('accepts a token from a key in the set that expired within the clock tolerance (5 s by default)', async () => {
    const node = await startJwksNode();
    const stream = await openStream(node.url, { token: await idpToken(ec, { expiresInSeconds: -2 }) });
    expect(stream.status).toBe(200);
    stream.close();
  });

  it('fetches the key set once and verifies later tokens from its cache', async () => {
    const node = await startJwksNode();
    const before = keyServer.requests;
    for (const [user, key] of [['alice', rsa], ['bob', ec], ['carol', rsa]] as const) {
      const stream = await openStream(node.url, { token: await idpToken(key, { sub: user }), label: user });
      expect(stream.status).toBe(200);
      stream.close();
    }
    expect(keyServer.requests - before).toBe(1);
  });

  it.each([
    ['answers 500', { status: 500, body: '{"error":"boom"}' }],
    ['answers 200 with a body that is not JSON', { status: 200, body: '<html>maintenance</html>' }],
  ])('answers 503 unavailable with Retry-After, not 401, when the key set endpoint %s', async (_label, answer) => {
    const node = await startJwksNode();
    const working = keyServer.answer;
    keyServer.answer = answer;
    try {
      const stream = await openStream(node.url, { token: await idpToken(rsa) });
      // The token may be fine: telling the client it is not would make it sign the user out.
      expect(stream.status).toBe(503);
      expect(refusalCode(stream)).toBe('unavailable');
      expect(Number(stream.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(stream.headers['www-authenticate']).toBeUndefined();
    } finally {
      keyServer.answer = working;
    }
  });
});
