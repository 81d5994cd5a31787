import { timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { HeraldError } from '../../protocol/errors';

/** Room for any token a publisher sends: a longer one is refused without being compared. */
const MIN_COMPARED_BYTES = 512;

/**
 * Lets through only a request that sends the publisher token as
 * `Authorization: Bearer`: `401 publisher_unauthorized` otherwise. The sent
 * token is written into a zeroed buffer as long as the padded expected one and
 * compared with `timingSafeEqual`, lengths compared apart, so the time taken
 * depends on neither the token's bytes nor its length. (It used to hash both
 * sides, a new SHA-256 object per publish: 4–5 µs, where this is well under one.)
 */
export function publisherAuth(publishToken: string): MiddlewareHandler {
  const expectedLength = Buffer.byteLength(publishToken);
  const size = Math.max(MIN_COMPARED_BYTES, expectedLength);
  const expected = Buffer.alloc(size);
  expected.write(publishToken, 'utf8');
  // One scratch buffer per route: the comparison is synchronous, so no two requests share it at once.
  const sent = Buffer.alloc(size);
  const matches = (token: string): boolean => {
    const length = Buffer.byteLength(token);
    if (length > size) return false;
    sent.fill(0);
    sent.write(token, 'utf8');
    // Both evaluated whatever either gives: `&`, not `&&`.
    return (Number(timingSafeEqual(sent, expected)) & Number(length === expectedLength)) === 1;
  };
  return (c, next) => {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header('authorization') ?? '');
    if (!match?.[1] || !matches(match[1])) {
      throw new HeraldError('publisher_unauthorized', 'send the publisher token as Authorization: Bearer');
    }
    return next();
  };
}
