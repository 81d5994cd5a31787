import { Hono } from 'hono';
import { getRequestListener, type HttpBindings } from '@hono/node-server';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { SNSClient } from '@aws-sdk/client-sns';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { createAuthenticator } from '../../services/node/auth';
import { webAssets } from '../../services/node/routes/client-asset';
import { devRoutes } from '../../services/node/routes/dev';
import { isHeraldError } from '../../services/protocol/errors';
import { createAwsPublishing } from '../../services/publisher/create-publisher';
import type { Logger } from '../../services/shared/log';
import type { AlbProxyOptions } from './alb-proxy';

export interface ClusterDemoOptions {
  /** The cluster's HERALD_JWT_SECRET: the nodes verify the session cookies it signs. */
  readonly secret: string;
  readonly topicArn: string;
  readonly tableName: string;
  readonly clients: { readonly sns: SNSClient; readonly dynamo: DynamoDBClient };
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
 * The demo page beside the cluster's proxy, so that it works through the AWS
 * shape: the very routes a dev-mode node serves (services/node/routes/dev.ts),
 * signing sessions with the cluster's HS256 key and publishing with the
 * publisher library (history and owners in DynamoDB, then SNS → the owning
 * node's queue), as chat code on AWS would. The nodes stay in aws mode, where
 * dev mode is refused; `/events` and `/herald-client.js` go to them.
 */
export function clusterDemo(options: ClusterDemoOptions): ClusterDemo {
  const secret = new TextEncoder().encode(options.secret);
  const authCookie = options.authCookie ?? 'herald_token';
  const publishing = createAwsPublishing({ topicArn: options.topicArn, tableName: options.tableName, clients: options.clients, log: options.log });
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
