import { Hono } from 'hono';
import { getRequestListener, type HttpBindings } from '@hono/node-server';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { createAuthenticator } from '../../services/node/auth';
import { webAssets } from '../../services/node/routes/client-asset';
import { devRoutes } from '../../services/node/routes/dev';
import { isHeraldError } from '../../services/protocol/errors';
import type { HeraldEvent } from '../../services/protocol/envelope';
import type { AwsPublishing } from '../../services/publisher/create-publisher';
import { createHttpPublisher } from '../../services/publisher/http-publisher';
import type { Logger } from '../../services/shared/log';
import type { AlbProxyOptions } from './alb-proxy';

export interface ClusterDemoOptions {
  /** The cluster's HERALD_JWT_SECRET: the nodes verify the session cookies it signs. */
  readonly secret: string;
  /**
   * How the demo's send publishes: on AWS, `createAwsPublishing` (the publisher
   * library, as chat code there would); on Redis, `httpDemoPublishing` (`POST
   * /publish` through the proxy, as any other service would).
   */
  readonly publishing: AwsPublishing;
  readonly log: Logger;
  /** @default 'herald_token', the nodes' default */
  readonly authCookie?: string;
}

export interface ClusterDemo {
  /** For the proxy: the demo's paths, answered beside it (`AlbProxyOptions.local`). */
  readonly local: NonNullable<AlbProxyOptions['local']>;
  close(): Promise<void>;
}

/**
 * The demo page beside the cluster's proxy, so that it works through a
 * multi-node shape: the very routes a dev-mode node serves
 * (services/node/routes/dev.ts), signing sessions with the cluster's HS256 key
 * and publishing as that shape's services do. The nodes stay in aws or redis
 * mode, where dev mode is refused; `/events` and `/herald-client.js` go to them.
 */
export function clusterDemo(options: ClusterDemoOptions): ClusterDemo {
  const secret = new TextEncoder().encode(options.secret);
  const authCookie = options.authCookie ?? 'herald_token';
  const { publishing } = options;
  const app = new Hono<{ Bindings: HttpBindings }>();
  const paths = devRoutes(app, {
    secret,
    authCookie,
    authenticate: createAuthenticator({ kind: 'hs256', secret }, authCookie),
    publish: (events, publisherId) => publishing.publish(events, publisherId, events.length > 1),
    envelope: publishing.envelope,
    log: options.log,
    assets: webAssets(),
  });
  app.onError((error, c) => {
    if (isHeraldError(error)) return c.json(error.toJSON(), error.status as ContentfulStatusCode);
    options.log.error('demo.internal_error', { path: c.req.path, error });
    return c.json({ error: 'internal', message: 'internal error' }, 500);
  });
  const listener = getRequestListener(app.fetch);
  return {
    local: { paths: new Set(Object.keys(paths)), listener: (req, res) => void listener(req, res) },
    close: () => publishing.close(),
  };
}

/**
 * Publishing through `POST /publish` at `url` with the publisher token, for
 * the demo of a shape whose services publish over HTTP. The dev routes hand
 * over validated events; they go out as envelopes with their ids, so the
 * HTTP publisher's retries stay deduplicated.
 */
export function httpDemoPublishing(options: { readonly url: string; readonly token: string; readonly log: Logger }): AwsPublishing {
  const publisher = createHttpPublisher({ url: options.url, token: options.token, log: options.log });
  const envelope = (event: HeraldEvent): Record<string, unknown> => ({
    id: event.id,
    to: event.to,
    event: event.event,
    data: JSON.parse(event.data) as unknown,
    ttl: event.ttlSeconds,
  });
  return {
    envelope: {},
    publish: async (events, _publisherId, batch) => (batch ? publisher.publishBatch(events.map(envelope)) : [await publisher.publish(envelope(events[0]!))]),
    close: () => publisher.close(),
  };
}
