import { createRemoteJWKSet, errors, jwtVerify, type JWTVerifyOptions } from 'jose';
import { HeraldError } from '../protocol/errors';
import { isValidUserId } from '../protocol/envelope';
import type { AuthConfig } from './config';
import { createHs256Verifier, type Claims } from './hs256';

export interface Identity {
  readonly userId: string;
  /** From the token's `exp`; the stream is closed then. */
  readonly expiresAtMs: number;
}

export interface TokenSources {
  readonly authorization: string | undefined;
  readonly cookie: string | undefined;
}

export type Authenticator = (sources: TokenSources) => Promise<Identity>;

const ASYMMETRIC = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

/**
 * The token from `Authorization: Bearer`, else from the named cookie. Never from
 * the URL. Another scheme (a proxy's `Basic`) is not ours and does not hide the cookie.
 *
 * Two cookies of that name are refused, not chosen between: a sibling subdomain
 * (or a page over plain http) can set one with its own Domain or Path
 * ("cookie tossing"), and the browser sends it beside the real one, more
 * specific paths first, so taking either could open the stream as the
 * attacker's user. A `__Host-` name (RFC 6265bis cookie prefixes) keeps such
 * cookies out altogether.
 */
export function extractToken(sources: TokenSources, cookieName: string): string | undefined {
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(sources.authorization ?? '');
  if (bearer?.[1] !== undefined) return bearer[1];
  if (sources.cookie === undefined) return undefined;
  let found: string | undefined;
  let seen = false;
  for (const part of sources.cookie.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === cookieName) {
      if (seen) throw new HeraldError('token_ambiguous', `the request carries more than one ${cookieName} cookie; clear this site's cookies and sign in again`);
      seen = true;
      const value = part.slice(eq + 1).trim();
      found = value === '' ? undefined : value;
    }
  }
  return found;
}

/**
 * HS256 tokens are verified with node:crypto (`hs256.ts`), JWKS tokens with
 * jose. The algorithm list is pinned per key type, so `alg: none` and an HS256
 * token signed with a public key are both refused.
 */
export function createAuthenticator(config: AuthConfig, cookieName: string): Authenticator {
  const verify = createVerifier(config);
  return async (sources) => {
    const token = extractToken(sources, cookieName);
    if (token === undefined) throw new HeraldError('token_missing', 'send a token as Authorization: Bearer or in the auth cookie');
    const { sub, exp } = await verify(token);
    if (!isValidUserId(sub) || typeof exp !== 'number') {
      throw new HeraldError('token_invalid', 'the token needs a string `sub` (the user id) and an `exp`');
    }
    // The stream ends when a reconnect with this token would be refused, not before.
    return { userId: sub, expiresAtMs: (exp + (config.clockToleranceSeconds ?? 0)) * 1000 };
  };
}

function createVerifier(config: AuthConfig): (token: string) => Promise<Claims> {
  if (config.kind === 'hs256') {
    const verify = createHs256Verifier(config);
    return (token) => Promise.resolve(verify(token, Date.now()));
  }
  const keys = createRemoteJWKSet(config.jwksUrl, { cooldownDuration: 30_000, cacheMaxAge: 600_000 });
  const options: JWTVerifyOptions = {
    algorithms: ASYMMETRIC,
    // `exp` is required: a token without one would hold a stream open forever.
    requiredClaims: ['sub', 'exp'],
    // An identity provider's clock a second ahead would otherwise make a fresh token "not yet valid" (`nbf`).
    clockTolerance: config.clockToleranceSeconds ?? 0,
    issuer: config.issuer,
    audience: config.audience,
  };
  return async (token) => {
    try {
      return (await jwtVerify(token, keys, options)).payload;
    } catch (error) {
      throw classify(error);
    }
  };
}

/** A bad token is the client's problem (401); an unreachable key set is ours (503, retry). */
function classify(error: unknown): HeraldError {
  if (error instanceof errors.JWTExpired) return new HeraldError('token_expired', 'the token has expired');
  // jose throws its plain JOSEError (no subclass) only while fetching the set: a non-200 answer, a body that is not JSON.
  const keysUnavailable =
    error instanceof errors.JWKSTimeout ||
    error instanceof errors.JWKSInvalid ||
    !(error instanceof errors.JOSEError) ||
    error.code === errors.JOSEError.code;
  if (keysUnavailable) {
    return new HeraldError('unavailable', 'the token keys could not be fetched', { cause: error, retryAfterMs: 2000 });
  }
  return new HeraldError('token_invalid', 'the token could not be verified');
}
