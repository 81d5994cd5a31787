import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, type JWTPayload } from 'jose';
import { describe, expect, it, onTestFinished } from 'vitest';
import { TEST_SECRET, unsignedToken } from '../../test/support/tokens';
import { HeraldError } from '../protocol/errors';
import { createAuthenticator, extractToken, type TokenSources } from './auth';
import type { AuthConfig } from './config';

const COOKIE = 'herald_token';
const SECRET = new TextEncoder().encode(TEST_SECRET);
const HS256: AuthConfig = { kind: 'hs256', secret: SECRET };

function sources(authorization?: string, cookie?: string): TokenSources {
  return { authorization, cookie };
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** Signs exactly `payload` (no claims added), with HS256 unless told otherwise. */
async function sign(payload: JWTPayload, options: { secret?: Uint8Array; alg?: string } = {}): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg: options.alg ?? 'HS256' }).sign(options.secret ?? SECRET);
}

async function refusal(promise: Promise<unknown>): Promise<HeraldError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof HeraldError) return error;
    throw error;
  }
  throw new Error('expected a HeraldError, but the token was accepted');
}

describe('extractToken', () => {
  it('reads a Bearer token from the Authorization header', () => {
    expect(extractToken(sources('Bearer abc.def.ghi'), COOKIE)).toBe('abc.def.ghi');
  });

  it('accepts any case of "Bearer", extra spaces and trailing whitespace', () => {
    expect(extractToken(sources('bearer   abc  '), COOKIE)).toBe('abc');
    expect(extractToken(sources('BEARER abc'), COOKIE)).toBe('abc');
  });

  it('prefers the Bearer header over the cookie', () => {
    expect(extractToken(sources('Bearer from-header', `${COOKIE}=from-cookie`), COOKIE)).toBe('from-header');
  });

  it('falls back to the cookie when the header carries another scheme (a proxy\'s Basic)', () => {
    expect(extractToken(sources('Basic dXNlcjpwYXNz', `${COOKIE}=from-cookie`), COOKIE)).toBe('from-cookie');
  });

  it('finds no token when the header carries another scheme and there is no cookie', () => {
    expect(extractToken(sources('Basic dXNlcjpwYXNz', undefined), COOKIE)).toBeUndefined();
  });

  it.each([
    ['no token', 'Bearer'],
    ['an empty token', 'Bearer '],
    ['two words', 'Bearer abc def'],
    ['no space', 'Bearerabc'],
    ['another scheme', 'Token abc'],
  ])('refuses a header with %s', (_label, header) => {
    expect(extractToken(sources(header), COOKIE)).toBeUndefined();
  });

  it('reads the named cookie among several', () => {
    expect(extractToken(sources(undefined, `theme=dark; ${COOKIE}=tok123; lang=en`), COOKIE)).toBe('tok123');
  });

  it('reads the named cookie first or last, without spaces', () => {
    expect(extractToken(sources(undefined, `${COOKIE}=first;b=2`), COOKIE)).toBe('first');
    expect(extractToken(sources(undefined, `a=1;${COOKIE}=last`), COOKIE)).toBe('last');
  });

  it('keeps "=" inside the cookie value', () => {
    expect(extractToken(sources(undefined, `${COOKIE}=a=b==`), COOKIE)).toBe('a=b==');
  });

  it('matches the cookie name exactly, not as a prefix or suffix', () => {
    expect(extractToken(sources(undefined, `x${COOKIE}=no; ${COOKIE}x=no`), COOKIE)).toBeUndefined();
  });

  it('uses the configured cookie name', () => {
    expect(extractToken(sources(undefined, `${COOKIE}=default; sid=custom`), 'sid')).toBe('custom');
  });

  it.each([
    ['two values', `${COOKIE}=one; ${COOKIE}=two`],
    ['the same value twice', `${COOKIE}=one; ${COOKIE}=one`],
    ['one of them empty', `${COOKIE}=; a=1; ${COOKIE}=two`],
    ['three, among others', `a=1; ${COOKIE}=x;b=2;${COOKIE}=y; ${COOKIE}=z`],
  ])('refuses two cookies of that name (%s) with token_ambiguous, a 401: a tossed cookie may be either', (_label, cookie) => {
    let error: unknown;
    try {
      extractToken(sources(undefined, cookie), COOKIE);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(HeraldError);
    expect([(error as HeraldError).code, (error as HeraldError).status]).toEqual(['token_ambiguous', 401]);
  });

  it('takes the Bearer header and ignores repeated cookies, which it does not read', () => {
    expect(extractToken(sources('Bearer from-header', `${COOKIE}=one; ${COOKIE}=two`), COOKIE)).toBe('from-header');
  });

  it('minds only the repeats of its own cookie name', () => {
    expect(extractToken(sources(undefined, `theme=a; theme=b; ${COOKIE}=tok; __Host-${COOKIE}=other`), COOKIE)).toBe('tok');
  });

  it.each([
    ['no header and no cookie', sources()],
    ['cookies without the named one', sources(undefined, 'a=1; b=2')],
    ['an empty named cookie', sources(undefined, `${COOKIE}=; a=1`)],
    ['an empty cookie header', sources(undefined, '')],
    ['a nameless cookie', sources(undefined, `=${COOKIE}`)],
  ])('returns undefined for %s', (_label, given) => {
    expect(extractToken(given, COOKIE)).toBeUndefined();
  });
});

describe('createAuthenticator (HS256)', () => {
  const authenticate = createAuthenticator(HS256, COOKIE);

  it('returns the user id and the expiry in ms for a valid token', async () => {
    const exp = nowSeconds() + 600;
    const token = await sign({ sub: 'alice', exp });
    await expect(authenticate(sources(`Bearer ${token}`))).resolves.toEqual({ userId: 'alice', expiresAtMs: exp * 1000 });
  });

  it('reads the token from the configured cookie', async () => {
    const exp = nowSeconds() + 600;
    const token = await sign({ sub: 'bob', exp });
    const fromCookie = createAuthenticator(HS256, 'sid');
    await expect(fromCookie(sources(undefined, `sid=${token}`))).resolves.toEqual({ userId: 'bob', expiresAtMs: exp * 1000 });
  });

  it('refuses no token with token_missing (401)', async () => {
    const error = await refusal(authenticate(sources()));
    expect([error.code, error.status]).toEqual(['token_missing', 401]);
  });

  it('refuses an expired token with token_expired (401)', async () => {
    const token = await sign({ sub: 'alice', exp: nowSeconds() - 10 });
    const error = await refusal(authenticate(sources(`Bearer ${token}`)));
    expect([error.code, error.status]).toEqual(['token_expired', 401]);
  });

  it.each<[string, () => Promise<string>]>([
    ['signed with another secret', () => sign({ sub: 'alice', exp: nowSeconds() + 600 }, { secret: new TextEncoder().encode('another-secret-that-is-at-least-32-bytes') })],
    ['unsigned (alg none)', () => Promise.resolve(unsignedToken('alice'))],
    ['signed with HS512, an algorithm not pinned', () => sign({ sub: 'alice', exp: nowSeconds() + 600 }, { alg: 'HS512' })],
    ['without exp', () => sign({ sub: 'alice' })],
    ['without sub', () => sign({ exp: nowSeconds() + 600 })],
    ['with a numeric sub', () => sign({ sub: 42 as unknown as string, exp: nowSeconds() + 600 })],
    ['with an empty sub', () => sign({ sub: '', exp: nowSeconds() + 600 })],
    ['with a sub holding a control character', () => sign({ sub: 'ali\nce', exp: nowSeconds() + 600 })],
    ['with a sub of 129 characters', () => sign({ sub: 'u'.repeat(129), exp: nowSeconds() + 600 })],
    ['with a sub holding an unpaired surrogate', () => sign({ sub: 'ali\ud83dce', exp: nowSeconds() + 600 })],
    ['with a string exp', () => sign({ sub: 'alice', exp: String(nowSeconds() + 600) as unknown as number })],
    ['not yet valid (nbf in the future)', () => sign({ sub: 'alice', exp: nowSeconds() + 600, nbf: nowSeconds() + 300 })],
    ['that is not a JWT', () => Promise.resolve('not-a-token')],
    ['with three garbage parts', () => Promise.resolve('a.b.c')],
    ['in JWE form', () => Promise.resolve('a.b.c.d.e')],
  ])('refuses a token %s with token_invalid (401)', async (_label, make) => {
    const error = await refusal(authenticate(sources(`Bearer ${await make()}`)));
    expect([error.code, error.status]).toEqual(['token_invalid', 401]);
  });

  it('accepts a sub of 128 characters', async () => {
    const token = await sign({ sub: 'u'.repeat(128), exp: nowSeconds() + 600 });
    await expect(authenticate(sources(`Bearer ${token}`))).resolves.toMatchObject({ userId: 'u'.repeat(128) });
  });

  it('never says why a token failed in its message, nor carries the verifier error', async () => {
    const error = await refusal(authenticate(sources(`Bearer ${unsignedToken('alice')}`)));
    expect(error.toJSON()).toEqual({ error: 'token_invalid', message: 'the token could not be verified' });
    expect(error.cause).toBeUndefined();
  });

  describe('with an issuer and audience configured', () => {
    const strict = createAuthenticator({ kind: 'hs256', secret: SECRET, issuer: 'https://id.example.com', audience: 'herald' }, COOKIE);

    it('accepts a token with both', async () => {
      const exp = nowSeconds() + 600;
      const token = await sign({ sub: 'alice', exp, iss: 'https://id.example.com', aud: 'herald' });
      await expect(strict(sources(`Bearer ${token}`))).resolves.toEqual({ userId: 'alice', expiresAtMs: exp * 1000 });
    });

    it.each<[string, JWTPayload]>([
      ['another issuer', { iss: 'https://evil.example.com', aud: 'herald' }],
      ['another audience', { iss: 'https://id.example.com', aud: 'other-service' }],
      ['no issuer', { aud: 'herald' }],
      ['no audience', { iss: 'https://id.example.com' }],
    ])('refuses a token with %s with token_invalid', async (_label, claims) => {
      const token = await sign({ sub: 'alice', exp: nowSeconds() + 600, ...claims });
      const error = await refusal(strict(sources(`Bearer ${token}`)));
      expect(error.code).toBe('token_invalid');
    });
  });

  it('ignores issuer and audience when none are configured', async () => {
    const token = await sign({ sub: 'alice', exp: nowSeconds() + 600, iss: 'anyone', aud: 'anything' });
    await expect(authenticate(sources(`Bearer ${token}`))).resolves.toMatchObject({ userId: 'alice' });
  });
});

describe('createAuthenticator clock tolerance', () => {
  const tolerant = createAuthenticator({ ...HS256, clockToleranceSeconds: 5 }, COOKIE);

  it('accepts a token that expired within the tolerance, and ends its stream when the tolerance runs out', async () => {
    const exp = nowSeconds() - 3;
    const token = await sign({ sub: 'alice', exp });
    await expect(tolerant(sources(`Bearer ${token}`))).resolves.toEqual({ userId: 'alice', expiresAtMs: (exp + 5) * 1000 });
    const strict = await refusal(createAuthenticator(HS256, COOKIE)(sources(`Bearer ${token}`)));
    expect(strict.code).toBe('token_expired');
  });

  it('refuses a token that expired longer ago than the tolerance with token_expired', async () => {
    const error = await refusal(tolerant(sources(`Bearer ${await sign({ sub: 'alice', exp: nowSeconds() - 7 })}`)));
    expect(error.code).toBe('token_expired');
  });

  it('accepts a token whose nbf is ahead by less than the tolerance (an issuer whose clock runs ahead), not more', async () => {
    const soon = await sign({ sub: 'alice', exp: nowSeconds() + 600, nbf: nowSeconds() + 3 });
    await expect(tolerant(sources(`Bearer ${soon}`))).resolves.toMatchObject({ userId: 'alice' });
    const later = await sign({ sub: 'alice', exp: nowSeconds() + 600, nbf: nowSeconds() + 7 });
    expect((await refusal(tolerant(sources(`Bearer ${later}`)))).code).toBe('token_invalid');
  });
});

describe('createAuthenticator (JWKS)', () => {
  // Port 1 is refused by fetch itself ("bad port"): the key set is unreachable without any network traffic.
  const unreachable = createAuthenticator(
    { kind: 'jwks', jwksUrl: new URL('http://127.0.0.1:1/jwks'), issuer: 'https://id.example.com', audience: 'herald' },
    COOKIE,
  );
  const encode = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url');
  const forged = (alg: string): string => `${encode({ alg, kid: 'k1' })}.${encode({ sub: 'alice', exp: nowSeconds() + 600 })}.c2ln`;

  it('answers an unreachable key set with unavailable (503, retry in 2 s), keeping the cause out of the body', async () => {
    const error = await refusal(unreachable(sources(`Bearer ${forged('RS256')}`)));
    expect([error.code, error.status, error.details.retryAfterMs]).toEqual(['unavailable', 503, 2000]);
    expect(error.cause).toBeInstanceOf(Error);
    expect(error.toJSON()).toEqual({ error: 'unavailable', message: 'the token keys could not be fetched', retryAfterMs: 2000 });
  });

  it.each([
    ['answers 503', 503, '{"error":"down"}'],
    ['answers 200 with a body that is not JSON', 200, '<html>maintenance</html>'],
  ])('answers a key set endpoint that %s with unavailable (503), not token_invalid', async (_label, status, body) => {
    const server = createServer((_req, res) => res.writeHead(status, { 'Content-Type': 'application/json' }).end(body));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const { port } = server.address() as AddressInfo;
    const failing = createAuthenticator({ kind: 'jwks', jwksUrl: new URL(`http://127.0.0.1:${port}/jwks`), issuer: 'https://id.example.com', audience: 'herald' }, COOKIE);
    const error = await refusal(failing(sources(`Bearer ${forged('RS256')}`)));
    expect([error.code, error.status, error.details.retryAfterMs]).toEqual(['unavailable', 503, 2000]);
  });

  it.each(['HS256', 'none'])('refuses an %s token with token_invalid before fetching any key', async (alg) => {
    const error = await refusal(unreachable(sources(`Bearer ${forged(alg)}`)));
    expect(error.code).toBe('token_invalid');
  });
});
