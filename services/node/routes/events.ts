import type { Hono } from 'hono';
import type { HttpBindings } from '@hono/node-server';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { HeraldError } from '../../protocol/errors';
import { REPLACED_ID_PREFIX } from '../../protocol/sse-frame';
import type { HeraldNode } from '../herald-node';
import { clientAddress } from '../client-address';

/** JSON wanted and no event stream: a status check, never a browser's `EventSource` (it always asks for text/event-stream). */
function isStatusCheck(accept: string | undefined): boolean {
  return accept !== undefined && /\bapplication\/json\b/i.test(accept) && !/\btext\/event-stream\b/i.test(accept);
}

/** Query parameters that would carry identity in the URL, where it leaks into logs and history. */
const IDENTITY_PARAMS = ['userid', 'user', 'uid', 'user_id', 'sub', 'token', 'access_token', 'jwt', 'authorization'];

/**
 * `GET /events`. The stream response is written straight to Node's
 * `ServerResponse` rather than through Hono's `streamSSE`: that helper costs
 * about 44 KB per idle connection (a web ReadableStream, a TransformStream and
 * their promises, as measured when the node was first built) and hangs a writer
 * on a client that stops reading. Here a stream is a socket, a small object and
 * Node's own write buffer, capped in bytes.
 */
export function eventsRoute(app: Hono<{ Bindings: HttpBindings }>, node: HeraldNode): void {
  app.get('/events', async (c) => {
    // Hono routes HEAD to GET handlers; a HEAD cannot carry a stream, and must not claim a tab.
    if (c.req.method === 'HEAD') {
      c.header('Allow', 'GET');
      throw new HeraldError('method_not_allowed', '/events accepts GET only');
    }
    // Fetch Metadata: `EventSource` and `fetch()` send `empty`. Anything else is a page
    // loading /events as a document, an image, a frame: a cross-site link or `<img>`
    // would otherwise open a stream with the user's cookie and take over their active tab.
    const destination = c.req.header('sec-fetch-dest');
    if (destination !== undefined && destination.toLowerCase() !== 'empty') {
      throw new HeraldError('fetch_dest_refused', '/events answers EventSource and fetch (Sec-Fetch-Dest: empty) only');
    }
    const lastEventId = c.req.header('last-event-id') || c.req.query('lastEventId') || undefined;
    // HTML spec: "Clients will reconnect if the connection is closed; a client can
    // be told to stop reconnecting using the HTTP 204 No Content response code."
    // A tab that was replaced presents the id of its `replaced` event: stop it.
    if (lastEventId?.startsWith(REPLACED_ID_PREFIX)) return c.body(null, 204);

    for (const name of Object.keys(c.req.queries())) {
      if (IDENTITY_PARAMS.includes(name.toLowerCase())) {
        throw new HeraldError('identity_in_url', `"${name}" is not accepted in the URL: identity comes only from the token`, { field: name });
      }
    }
    const { incoming, outgoing } = c.env;
    // Streams are HTTP/1.1 chunked (the ALB speaks 1.1 to targets) and own their
    // socket: a response queued behind another on a pipelined connection has none yet.
    if (incoming.httpVersion !== '1.1' || outgoing.socket === null || incoming.socket !== outgoing.socket) {
      throw new HeraldError('bad_request', 'event streams need HTTP/1.1 without pipelining');
    }
    const address = clientAddress(incoming, node.deps.config.trustProxy);
    const admission = node.admit(address);
    let opened: Promise<void>;
    try {
      const identity = await node.authenticate({ authorization: c.req.header('authorization'), cookie: c.req.header('cookie') });
      // A status check: `EventSource` cannot read why it was refused, so a client asks
      // with `Accept: application/json` and gets the same refusals, or this, without
      // a stream being opened or the tab claimed (which would displace another tab).
      if (isStatusCheck(c.req.header('accept'))) return c.json({ ok: true, nodeId: node.nodeId });
      // Puts the stream in the hub before it returns: from there the hub counts it.
      opened = node.open(outgoing, outgoing.socket, address, identity.userId, identity.expiresAtMs, lastEventId);
    } finally {
      admission.release();
    }
    await opened;
    return RESPONSE_ALREADY_SENT;
  });
}
