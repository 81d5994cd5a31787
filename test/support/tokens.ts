import { SignJWT } from 'jose';

/** The HS256 secret every test node is configured with. */
export const TEST_SECRET = 'test-secret-that-is-at-least-32-bytes-long';
export const TEST_PUBLISH_TOKEN = 'test-publisher-token-0123456789';

export interface TokenOptions {
  /** Seconds from now; negative for an already expired token. Default one hour. */
  readonly expiresInSeconds?: number;
  readonly secret?: string;
  readonly omitExp?: boolean;
  readonly claims?: Record<string, unknown>;
}

/** A real HS256 JWT for `sub`, signed with jose like an identity provider would. */
export async function signToken(sub: string, options: TokenOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  let jwt = new SignJWT(options.claims ?? {}).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuedAt(now);
  if (!options.omitExp) jwt = jwt.setExpirationTime(now + (options.expiresInSeconds ?? 3600));
  return jwt.sign(new TextEncoder().encode(options.secret ?? TEST_SECRET));
}

/** An unsigned `alg: none` token, which must always be refused. */
export function unsignedToken(sub: string): string {
  const encode = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${encode({ alg: 'none', typ: 'JWT' })}.${encode({ sub, exp: Math.floor(Date.now() / 1000) + 3600 })}.`;
}
