import { Hono } from 'hono';
import type { HttpBindings } from '@hono/node-server';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { HeraldError, isHeraldError } from '../protocol/errors';
import type { PublishDeps } from '../publisher/publish';
import type { HeraldNode } from './herald-node';
import { eventsRoute } from './routes/events';
import { publishRoute } from './routes/publish';
import { operationsRoutes } from './routes/operations';

export type HeraldApp = Hono<{ Bindings: HttpBindings }>;

/**
 * The node's HTTP surface, without listening (main and tests both serve it).
 * Every refusal leaves through `onError` as `{"error": code, "message": …}` with
 * the code's status; anything unexpected is a bare 500 `internal`, its details
 * kept for the log.
 */
export function createApp(node: HeraldNode, publishDeps: PublishDeps): HeraldApp {
  const app: HeraldApp = new Hono<{ Bindings: HttpBindings }>();
  const { log } = node.deps;

  eventsRoute(app, node);
  publishRoute(app, node.deps.config, publishDeps, node.metrics);
  operationsRoutes(app, node);

  for (const path of ['/events', '/publish', '/healthz', '/metrics']) {
    app.all(path, () => {
      throw new HeraldError('method_not_allowed', 'method not allowed on this path');
    });
  }
  app.notFound((c) => {
    node.metrics.refused('not_found');
    return c.json(new HeraldError('not_found', 'no such path').toJSON(), 404);
  });

  app.onError((error, c) => {
    const refusal = isHeraldError(error) ? error : undefined;
    if (!refusal) {
      log.error('http.internal_error', { method: c.req.method, path: c.req.path, error });
      node.metrics.refused('internal');
      return c.json({ error: 'internal', message: 'internal error' }, 500);
    }
    node.metrics.refused(refusal.code);
    if (refusal.status >= 500) log.warn('http.unavailable', { code: refusal.code, path: c.req.path, error: refusal.details.cause });
    const retryAfterMs = refusal.details.retryAfterMs;
    if (retryAfterMs !== undefined) c.header('Retry-After', String(Math.max(1, Math.ceil(retryAfterMs / 1000))));
    return c.json(refusal.toJSON(), refusal.status as ContentfulStatusCode);
  });

  return app;
}
