import type { MiddlewareHandler } from 'hono';
import { HeraldError } from '../../protocol/errors';

/** `application/json`, with at most a UTF-8 charset parameter (RFC 8259 §8.1: JSON is UTF-8). */
const JSON_TYPE = /^application\/json\s*(;\s*charset\s*=\s*"?utf-8"?\s*)?$/i;

/**
 * Refuses a body that is not sent as JSON: `415 unsupported_media_type`. It
 * also keeps out cross-site form posts, which cannot send this type without a
 * CORS preflight.
 */
export function requireJsonType(contentType: string | undefined): void {
  if (!JSON_TYPE.test(contentType ?? '')) throw new HeraldError('unsupported_media_type', 'send Content-Type: application/json');
}

/** A JSON body, uncompressed: the checks of `requireJsonType` and of `Content-Encoding`, before the body is read. */
export const jsonBodyOnly: MiddlewareHandler = (c, next) => {
  requireJsonType(c.req.header('content-type'));
  const encoding = c.req.header('content-encoding');
  if (encoding !== undefined && encoding.toLowerCase() !== 'identity') {
    throw new HeraldError('unsupported_media_type', `Content-Encoding ${encoding} is not accepted; send the JSON uncompressed`);
  }
  return next();
};
