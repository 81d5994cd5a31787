import { Hono } from 'hono';
import type { HttpBindings } from '@hono/node-server';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { HeraldError, isHeraldError } from '../protocol/errors';
import { publish, type PublishDeps } from '../publisher/publish';
import type { HeraldNode } from './herald-node';
import { eventsRoute } from './routes/events';
import { publishRoute } from './routes/publish';
import { operationsRoutes } from './routes/operations';
import { clientAssetRoute, webAssets } from './routes/client-asset';
import { devRoutes } from './routes/dev';
import { devGuard } from './dev-guard';
import { openApiRoute } from './routes/openapi';

export type HeraldApp = Hono<{ Bindings: HttpBindings }>;

/**
 * Each path's methods, as the routes registered them: the 405 answers come
 * from where a route is declared, not from a list kept beside it. Middleware
 * (`use`, method ALL) and patterns are not resources.
 */
function allowedMethods(app: HeraldApp): Map<string, string> {
  const methods = new Map<string, string[]>();
  for (const { method, path } of app.routes) {
    if (method === 'ALL' || path.includes('*') || path.includes(':')) continue;
    const known = methods.get(path) ?? [];
    if (!known.includes(method)) known.push(method);
    methods.set(path, known);
  }
  return new Map([...methods].map(([path, list]) => [path, list.join(', ')]));
}

/**
 * The node's HTTP surface, without listening (main and tests both serve it).
 * Every refusal leaves through `onError` as `{"error": code, "message": …}` with
 * the code's status; anything unexpected is a bare 500 `internal`, its details
 * kept for the log.
 */
export function createApp(node: HeraldNode, publishDeps: PublishDeps): HeraldApp {
  const app: HeraldApp = new Hono<{ Bindings: HttpBindings }>();
  const { config, log } = node;

  eventsRoute(app, node, config.trustProxy);
  publishRoute(app, config, publishDeps, node.metrics);
  operationsRoutes(app, node, node.health);
  const assets = webAssets();
  clientAssetRoute(app, config, assets);
  openApiRoute(app);
  // The demo page and its sign-in exist only in dev mode; otherwise those paths are 404.
  // Registered before the dev routes, so it runs first on them; filled in once they are known.
  const devPaths = new Set<string>();
  if (config.dev) app.use('*', devGuard((path) => devPaths.has(path)));
  const dev =
    config.dev && config.auth.kind === 'hs256'
      ? devRoutes(app, {
          secret: config.auth.secret,
          authCookie: config.authCookie,
          authenticate: node.authenticate,
          publish: (events, publisherId) => publish(events, publishDeps, publisherId),
          envelope: { maxDataBytes: config.maxDataBytes, defaultTtlSeconds: config.defaultTtlSeconds },
          log,
          assets,
        })
      : {};
  for (const path of Object.keys(dev)) devPaths.add(path);

  for (const [path, allow] of allowedMethods(app)) {
    app.all(path, (c) => {
      // RFC 9110 §15.5.6: a 405 names the methods the resource does support.
      c.header('Allow', allow);
      throw new HeraldError('method_not_allowed', `${path} accepts ${allow} only`);
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
    // RFC 9110 §11.6.1: a 401 carries the challenge for the scheme it expects.
    if (refusal.status === 401) {
      // RFC 6750 §3.1: no error code when the request carried no credentials at all.
      const sentNothing = refusal.code === 'token_missing' || c.req.header('authorization') === undefined;
      c.header('WWW-Authenticate', sentNothing ? 'Bearer realm="herald"' : 'Bearer realm="herald", error="invalid_token"');
    }
    if (refusal.status >= 500) log.warn('http.unavailable', { code: refusal.code, path: c.req.path, error: refusal.details.cause });
    const retryAfterMs = refusal.details.retryAfterMs;
    if (retryAfterMs !== undefined) c.header('Retry-After', String(Math.max(1, Math.ceil(retryAfterMs / 1000))));
    return c.json(refusal.toJSON(), refusal.status as ContentfulStatusCode);
  });

  return app;
}
