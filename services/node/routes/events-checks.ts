import type { Context, MiddlewareHandler } from 'hono';
import type { HttpBindings } from '@hono/node-server';
import { HeraldError } from '../../protocol/errors';
import { REPLACED_ID_PREFIX } from '../../protocol/sse-frame';

/*
 * The checks `GET /events` makes before any work is done for a stream, one
 * middleware each, registered in this order with the route (events.ts).
 * Pure header, query and socket checks: nothing here knows the node.
 */

/** The position a reconnect resumes from: the `Last-Event-ID` header, or `?lastEventId=` for clients that cannot set it. */
export function lastEventIdOf(c: Context): string | undefined {
  return c.req.header('last-event-id') || c.req.query('lastEventId') || undefined;
}

/** Hono routes HEAD to GET handlers; a HEAD cannot carry a stream, and must not claim a tab. */
export const refuseHead: MiddlewareHandler = (c, next) => {
  if (c.req.method === 'HEAD') {
    c.header('Allow', 'GET');
    throw new HeraldError('method_not_allowed', '/events accepts GET only');
  }
  return next();
};

/**
 * Fetch Metadata: `EventSource` and `fetch()` send `empty`. Anything else is a page
 * loading /events as a document, an image, a frame: a cross-site link or `<img>`
 * would otherwise open a stream with the user's cookie and take over their active tab.
 */
export const refuseOtherFetchDest: MiddlewareHandler = (c, next) => {
  const destination = c.req.header('sec-fetch-dest');
  if (destination !== undefined && destination.toLowerCase() !== 'empty') {
    throw new HeraldError('fetch_dest_refused', '/events answers EventSource and fetch (Sec-Fetch-Dest: empty) only');
  }
  return next();
};

/**
 * HTML spec: "Clients will reconnect if the connection is closed; a client can
 * be told to stop reconnecting using the HTTP 204 No Content response code."
 * A tab that was replaced presents the id of its `replaced` event: stop it.
 */
export const stopReplacedTab: MiddlewareHandler = async (c, next) => {
  if (lastEventIdOf(c)?.startsWith(REPLACED_ID_PREFIX)) return c.body(null, 204);
  await next();
};

/** Query parameters that would carry identity in the URL, where it leaks into logs and history. */
const IDENTITY_PARAMS = ['userid', 'user', 'uid', 'user_id', 'sub', 'token', 'access_token', 'jwt', 'authorization'];

/** Identity comes only from the token: a URL that tries to carry one is refused, not ignored. */
export const refuseIdentityInUrl: MiddlewareHandler = (c, next) => {
  for (const name of Object.keys(c.req.queries())) {
    if (IDENTITY_PARAMS.includes(name.toLowerCase())) {
      throw new HeraldError('identity_in_url', `"${name}" is not accepted in the URL: identity comes only from the token`, { field: name });
    }
  }
  return next();
};

/**
 * Streams are HTTP/1.1 chunked (the ALB speaks 1.1 to targets) and own their
 * socket: a response queued behind another on a pipelined connection has none yet.
 */
export const requireOwnSocket: MiddlewareHandler<{ Bindings: HttpBindings }> = (c, next) => {
  const { incoming, outgoing } = c.env;
  if (incoming.httpVersion !== '1.1' || outgoing.socket === null || incoming.socket !== outgoing.socket) {
    throw new HeraldError('bad_request', 'event streams need HTTP/1.1 without pipelining');
  }
  return next();
};
