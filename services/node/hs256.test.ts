import { createHmac } from 'node:crypto';
import { errors, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { HeraldError } from '../protocol/errors';
import { createHs256Verifier, type Hs256Rules } from './hs256';

const SECRET = new TextEncoder().encode('a-test-secret-of-at-least-32-bytes!!');
const OTHER = new TextEncoder().encode('another-secret-of-at-least-32-bytes!');
const NOW_S = 1_800_000_000;
const NOW_MS = NOW_S * 1000 + 400;

const b64 = (bytes: string | Buffer): string => Buffer.from(bytes).toString('base64url');
const json = (value: unknown): string => b64(JSON.stringify(value));

/** A compact token from raw segments, signed over exactly them (so malformed tokens can still carry a valid MAC). */
function token(header: string, payload: string, secret: Uint8Array = SECRET): string {
  const input = `${header}.${payload}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

const hs256 = json({ alg: 'HS256' });
const claims = (extra: Record<string, unknown> = {}): string => json({ sub: 'alice', exp: NOW_S + 600, ...extra });

/** What jose says of a token: the claims, or the code Herald gives its refusal. */
async function joseOutcome(rules: Hs256Rules, value: string): Promise<unknown> {
  try {
    const { payload } = await jwtVerify(value, rules.secret, {
      algorithms: ['HS256'],
      requiredClaims: ['sub', 'exp'],
      clockTolerance: rules.clockToleranceSeconds ?? 0,
      currentDate: new Date(NOW_MS),
      ...(rules.issuer === undefined ? {} : { issuer: rules.issuer }),
      ...(rules.audience === undefined ? {} : { audience: rules.audience }),
    });
    // jose leaves a non-numeric exp to the caller when none is required as a date; Herald refuses it either way.
    return typeof payload.exp === 'number' ? payload : 'token_invalid';
  } catch (error) {
    return error instanceof errors.JWTExpired ? 'token_expired' : 'token_invalid';
  }
}

function ourOutcome(rules: Hs256Rules, value: string): unknown {
  try {
    return createHs256Verifier(rules)(value, NOW_MS);
  } catch (error) {
    if (error instanceof HeraldError) return error.code;
    throw error;
  }
}

const plain: Hs256Rules = { secret: SECRET };
const strict: Hs256Rules = { secret: SECRET, issuer: 'https://id.example.com', audience: 'herald' };
const tolerant: Hs256Rules = { secret: SECRET, clockToleranceSeconds: 5 };

const CASES: Array<[string, Hs256Rules, string]> = [
  ['a valid token', plain, token(hs256, claims())],
  ['a valid token with extra header fields', plain, token(json({ alg: 'HS256', typ: 'JWT', kid: 'k1' }), claims())],
  ['signed with another secret', plain, token(hs256, claims(), OTHER)],
  ['alg none, unsigned', plain, `${json({ alg: 'none' })}.${claims()}.`],
  ['alg none, with an HMAC', plain, token(json({ alg: 'none' }), claims())],
  ['alg HS512 header over an HS256 MAC', plain, token(json({ alg: 'HS512' }), claims())],
  ['alg RS256 header over an HS256 MAC', plain, token(json({ alg: 'RS256' }), claims())],
  ['alg in lower case', plain, token(json({ alg: 'hs256' }), claims())],
  ['no alg', plain, token(json({ typ: 'JWT' }), claims())],
  ['b64 false', plain, token(json({ alg: 'HS256', b64: false, crit: ['b64'] }), claims())],
  ['a crit naming an unknown extension', plain, token(json({ alg: 'HS256', crit: ['exp'], exp: 1 }), claims())],
  ['no exp', plain, token(hs256, json({ sub: 'alice' }))],
  ['no sub', plain, token(hs256, json({ exp: NOW_S + 600 }))],
  ['a string exp', plain, token(hs256, claims({ exp: String(NOW_S + 600) }))],
  ['a null exp', plain, token(hs256, claims({ exp: null }))],
  ['exp now', plain, token(hs256, claims({ exp: NOW_S }))],
  ['exp a second from now', plain, token(hs256, claims({ exp: NOW_S + 1 }))],
  ['exp a fraction ahead', plain, token(hs256, claims({ exp: NOW_S + 0.5 }))],
  ['expired 10 s ago', plain, token(hs256, claims({ exp: NOW_S - 10 }))],
  ['expired 3 s ago, tolerance 5', tolerant, token(hs256, claims({ exp: NOW_S - 3 }))],
  ['expired 5 s ago, tolerance 5', tolerant, token(hs256, claims({ exp: NOW_S - 5 }))],
  ['expired 7 s ago, tolerance 5', tolerant, token(hs256, claims({ exp: NOW_S - 7 }))],
  ['nbf in the past', plain, token(hs256, claims({ nbf: NOW_S - 60 }))],
  ['nbf now', plain, token(hs256, claims({ nbf: NOW_S }))],
  ['nbf a second ahead', plain, token(hs256, claims({ nbf: NOW_S + 1 }))],
  ['nbf 3 s ahead, tolerance 5', tolerant, token(hs256, claims({ nbf: NOW_S + 3 }))],
  ['nbf 7 s ahead, tolerance 5', tolerant, token(hs256, claims({ nbf: NOW_S + 7 }))],
  ['a string nbf', plain, token(hs256, claims({ nbf: String(NOW_S - 60) }))],
  ['a numeric iat', plain, token(hs256, claims({ iat: NOW_S - 60 }))],
  ['an iat in the future', plain, token(hs256, claims({ iat: NOW_S + 600 }))],
  ['a string iat', plain, token(hs256, claims({ iat: 'yesterday' }))],
  ['expired, with a bad nbf', plain, token(hs256, claims({ exp: NOW_S - 10, nbf: 'x' }))],
  ['issuer and audience', strict, token(hs256, claims({ iss: 'https://id.example.com', aud: 'herald' }))],
  ['audience among several', strict, token(hs256, claims({ iss: 'https://id.example.com', aud: ['other', 'herald'] }))],
  ['another audience', strict, token(hs256, claims({ iss: 'https://id.example.com', aud: 'other' }))],
  ['audiences without ours', strict, token(hs256, claims({ iss: 'https://id.example.com', aud: ['a', 'b'] }))],
  ['an empty audience list', strict, token(hs256, claims({ iss: 'https://id.example.com', aud: [] }))],
  ['another issuer', strict, token(hs256, claims({ iss: 'https://evil.example.com', aud: 'herald' }))],
  ['no issuer', strict, token(hs256, claims({ aud: 'herald' }))],
  ['no audience', strict, token(hs256, claims({ iss: 'https://id.example.com' }))],
  ['expired, for another audience', strict, token(hs256, claims({ iss: 'https://id.example.com', aud: 'other', exp: NOW_S - 10 }))],
  ['issuer and audience when none are configured', plain, token(hs256, claims({ iss: 'anyone', aud: 'anything' }))],
  ['claims that are an array', plain, token(hs256, json([1, 2]))],
  ['claims that are null', plain, token(hs256, json(null))],
  ['claims that are a string', plain, token(hs256, json('alice'))],
  ['claims that are not JSON', plain, token(hs256, b64('{"sub":'))],
  ['claims that are not UTF-8', plain, token(hs256, b64(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])))],
  ['a header that is not JSON', plain, token(b64('{alg'), claims())],
  ['a header that is an array', plain, token(json(['HS256']), claims())],
  ['base64 padding in the claims', plain, token(hs256, `${claims()}==`)],
  ['a standard-base64 character in the claims', plain, token(hs256, `${claims()}+`)],
  ['a truncated signature', plain, token(hs256, claims()).slice(0, -2)],
  ['a signature with a byte more', plain, `${token(hs256, claims())}AA`],
  ['an empty signature', plain, `${hs256}.${claims()}.`],
  ['two segments', plain, `${hs256}.${claims()}`],
  ['four segments', plain, `${token(hs256, claims())}.x`],
  ['five segments (JWE form)', plain, 'a.b.c.d.e'],
  ['no segments', plain, 'not-a-token'],
  ['three garbage segments', plain, 'a.b.c'],
  ['an empty header', plain, token('', claims())],
  ['empty claims', plain, token(hs256, '')],
  ['the empty string', plain, ''],
];

describe('createHs256Verifier agrees with jose', () => {
  it.each(CASES)('on %s', async (_label, rules, value) => {
    const ours = ourOutcome(rules, value);
    expect(ours).toEqual(await joseOutcome(rules, value));
  });

  it('agrees on every token when one verifier sees them all in turn (its header check is remembered)', async () => {
    const verifiers = new Map<Hs256Rules, ReturnType<typeof createHs256Verifier>>();
    for (const [label, rules, value] of [...CASES, ...CASES.toReversed()]) {
      const verify = verifiers.get(rules) ?? createHs256Verifier(rules);
      verifiers.set(rules, verify);
      let ours: unknown;
      try {
        ours = verify(value, NOW_MS);
      } catch (error) {
        ours = error instanceof HeraldError ? error.code : error;
      }
      expect(ours, label).toEqual(await joseOutcome(rules, value));
    }
  });

  it('tries tokens both accept and tokens each refuses, expired and invalid', async () => {
    const outcomes = await Promise.all(CASES.map(([, rules, value]) => joseOutcome(rules, value)));
    expect(outcomes.filter((o) => typeof o === 'object').length).toBeGreaterThanOrEqual(10);
    expect(outcomes.filter((o) => o === 'token_expired').length).toBeGreaterThanOrEqual(3);
    expect(outcomes.filter((o) => o === 'token_invalid').length).toBeGreaterThanOrEqual(30);
  });
});

describe('createHs256Verifier', () => {
  it('returns the claims of a valid token', () => {
    expect(createHs256Verifier(plain)(token(hs256, claims({ role: 'x' })), NOW_MS)).toEqual({ sub: 'alice', exp: NOW_S + 600, role: 'x' });
  });

  it('refuses any crit header, even one jose would accept (b64: true), as an extension it does not implement', async () => {
    const value = token(json({ alg: 'HS256', b64: true, crit: ['b64'] }), claims());
    expect(await joseOutcome(plain, value)).toMatchObject({ sub: 'alice' });
    expect(ourOutcome(plain, value)).toBe('token_invalid');
  });

  it('says nothing of why a token failed', () => {
    let caught: unknown;
    try {
      createHs256Verifier(plain)(token(hs256, claims(), OTHER), NOW_MS);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(HeraldError);
    expect((caught as HeraldError).toJSON()).toEqual({ error: 'token_invalid', message: 'the token could not be verified' });
  });
});
