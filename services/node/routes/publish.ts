import { createHash, timingSafeEqual } from 'node:crypto';
import type { Hono } from 'hono';
import type { HttpBindings } from '@hono/node-server';
import { bodyLimit } from 'hono/body-limit';
import { HeraldError } from '../../protocol/errors';
import { parsePublishBody } from '../../protocol/envelope';
import { maxPublishBodyBytes } from '../../protocol/limits';
import { publish, type PublishDeps } from '../../publisher/publish';
import type { Config } from '../config';
import type { NodeMetrics } from '../metrics';

/** Hashing both sides first makes the comparison constant-time whatever the lengths. */
function sameSecret(given: string, expected: string): boolean {
  const digest = (s: string): Buffer => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

const JSON_TYPE = /^application\/json\s*(;|$)/i;
/** Refuse, don't repair: bytes that are not UTF-8 are an error, not U+FFFD. */
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * `POST /publish`: one envelope or `{ "notifications": [...] }`, guarded by the
 * publisher token. The Lambda publisher calls the same `publish()`. Returns
 * whether the route is served (it is not without a token).
 */
export function publishRoute(
  app: Hono<{ Bindings: HttpBindings }>,
  config: Config,
  deps: PublishDeps,
  metrics: NodeMetrics,
): boolean {
  const { publishToken } = config;
  if (publishToken === undefined) return false;
  const maxBodyBytes = maxPublishBodyBytes(config.maxDataBytes);

  app.post(
    '/publish',
    (c, next) => {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header('authorization') ?? '');
      if (!match?.[1] || !sameSecret(match[1], publishToken)) {
        throw new HeraldError('publisher_unauthorized', 'send the publisher token as Authorization: Bearer');
      }
      if (!JSON_TYPE.test(c.req.header('content-type') ?? '')) {
        throw new HeraldError('unsupported_media_type', 'send Content-Type: application/json');
      }
      const encoding = c.req.header('content-encoding');
      if (encoding !== undefined && encoding.toLowerCase() !== 'identity') {
        throw new HeraldError('unsupported_media_type', `Content-Encoding ${encoding} is not accepted; send the JSON uncompressed`);
      }
      return next();
    },
    bodyLimit({
      maxSize: maxBodyBytes,
      onError: () => {
        throw new HeraldError('body_too_large', `the request body is over ${maxBodyBytes} bytes`);
      },
    }),
    async (c) => {
      let body: unknown;
      try {
        body = JSON.parse(utf8.decode(await c.req.arrayBuffer()));
      } catch {
        throw new HeraldError('json_invalid', 'the body is not valid UTF-8 JSON');
      }
      const events = parsePublishBody(body, { maxDataBytes: config.maxDataBytes, defaultTtlSeconds: config.defaultTtlSeconds });
      const results = await publish(events, deps, 'http');
      metrics.published += events.length;
      const batch = typeof body === 'object' && body !== null && 'notifications' in body;
      return c.json(batch ? { results } : results[0], 202);
    },
  );
  return true;
}
