import type { Hono } from 'hono';
import type { HttpBindings } from '@hono/node-server';
import { HeraldError, withIds } from '../../protocol/errors';
import { parsePublishBody } from '../../protocol/envelope';
import { maxPublishBodyBytes } from '../../protocol/limits';
import { publish, type PublishDeps } from '../../publisher/publish';
import type { Config } from '../config';
import type { NodeMetrics } from '../metrics';
import { readBody } from '../read-body';
import { jsonBodyOnly } from './json-type';
import { publisherAuth } from './publisher-auth';

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
): void {
  const { publishToken } = config;
  if (publishToken === undefined) return;
  const maxBodyBytes = maxPublishBodyBytes(config.maxDataBytes);

  app.post(
    '/publish',
    publisherAuth(publishToken),
    jsonBodyOnly,
    async (c) => {
      const raw = await readBody(c.env.incoming, maxBodyBytes);
      let body: unknown;
      try {
        body = JSON.parse(utf8.decode(raw));
      } catch {
        throw new HeraldError('json_invalid', 'the body is not valid UTF-8 JSON');
      }
      const events = parsePublishBody(body, { maxDataBytes: config.maxDataBytes, defaultTtlSeconds: config.defaultTtlSeconds });
      const batch = typeof body === 'object' && body !== null && 'notifications' in body;
      const results = await publish(events, deps, 'http', { batch }).catch((error: unknown) => {
        // Part of it may be stored: a caller that sent no ids learns the minted ones, so its retry is not stored twice.
        throw withIds(error, events.map((e) => e.id));
      });
      metrics.published += events.length;
      return c.json(batch ? { results } : results[0], 202);
    },
  );
}
