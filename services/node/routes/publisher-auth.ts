import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { HeraldError } from '../../protocol/errors';

/** Hashing both sides first makes the comparison constant-time whatever the lengths. */
function sameSecret(given: string, expected: string): boolean {
  const digest = (s: string): Buffer => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/** Lets through only a request that sends the publisher token as `Authorization: Bearer`: `401 publisher_unauthorized` otherwise. */
export function publisherAuth(publishToken: string): MiddlewareHandler {
  return (c, next) => {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header('authorization') ?? '');
    if (!match?.[1] || !sameSecret(match[1], publishToken)) {
      throw new HeraldError('publisher_unauthorized', 'send the publisher token as Authorization: Bearer');
    }
    return next();
  };
}
