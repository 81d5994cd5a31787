import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { HeraldError } from '../../protocol/errors';

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/**
 * Lets through only a request that sends the publisher token as
 * `Authorization: Bearer`: `401 publisher_unauthorized` otherwise. Both sides
 * are compared as SHA-256 digests, which makes the comparison constant-time
 * whatever the lengths; the token's own digest is taken once.
 */
export function publisherAuth(publishToken: string): MiddlewareHandler {
  const expected = digest(publishToken);
  return (c, next) => {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header('authorization') ?? '');
    if (!match?.[1] || !timingSafeEqual(digest(match[1]), expected)) {
      throw new HeraldError('publisher_unauthorized', 'send the publisher token as Authorization: Bearer');
    }
    return next();
  };
}
