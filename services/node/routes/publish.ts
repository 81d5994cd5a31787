import { createHash, timingSafeEqual } from 'node:crypto';
import type { Hono } from 'hono';
import type { HttpBindings } from '@hono/node-server';
import { bodyLimit } from 'hono/body-limit';
import { HeraldError } from '../../protocol/errors';
import { parsePublishBody } from '../../protocol/envelope';
import { MAX_BATCH } from '../../protocol/limits';
import { publish, type PublishDeps } from '../../publisher/publish';
import type { Config } from '../config';
import type { NodeMetrics } from '../metrics';

/** Hashing both sides first makes the comparison constant-time whatever the lengths. */
function sameSecret(given: string, expected: string): boolean {
  const digest = (s: string): Buffer => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/**
 * `POST /publish`: one envelope or `{ "notifications": [...] }`, guarded by the
 * publisher token. The Lambda publisher calls the same `publish()`.
 */
export function publishRoute(
  app: Hono<{ Bindings: HttpBindings }>,
  config: Config,
  deps: PublishDeps,
  metrics: NodeMetrics,
): void {
  const { publishToken } = config;
  if (publishToken === undefined) return;
  // Room for a full batch of maximum-size events plus their envelopes.
  const maxBodyBytes = MAX_BATCH * (config.maxDataBytes + 4096);

  app.post(
    '/publish',
    (c, next) => {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header('authorization') ?? '');
      if (!match?.[1] || !sameSecret(match[1], publishToken)) {
        throw new HeraldError('publisher_unauthorized', 'send the publisher token as Authorization: Bearer');
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
      if (!/^application\/json\b/i.test(c.req.header('content-type') ?? '')) {
        throw new HeraldError('unsupported_media_type', 'send Content-Type: application/json');
      }
      let body: unknown;
      try {
        body = JSON.parse(await c.req.text());
      } catch {
        throw new HeraldError('json_invalid', 'the body is not valid JSON');
      }
      const events = parsePublishBody(body, { maxDataBytes: config.maxDataBytes, defaultTtlSeconds: config.defaultTtlSeconds });
      const results = await publish(events, deps, 'http');
      metrics.published += events.length;
      const batch = typeof body === 'object' && body !== null && 'notifications' in body;
      return c.json(batch ? { results } : results[0], 202);
    },
  );
}
