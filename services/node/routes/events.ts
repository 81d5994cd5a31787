import type { Hono } from 'hono';
import type { HttpBindings } from '@hono/node-server';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { HeraldNode } from '../herald-node';
import { clientAddress } from '../client-address';
import { lastEventIdOf, refuseHead, refuseIdentityInUrl, refuseOtherFetchDest, requireOwnSocket, stopReplacedTab } from './events-checks';

/** JSON wanted and no event stream: a status check, never a browser's `EventSource` (it always asks for text/event-stream). */
function isStatusCheck(accept: string | undefined): boolean {
  return accept !== undefined && /\bapplication\/json\b/i.test(accept) && !/\btext\/event-stream\b/i.test(accept);
}

/**
 * `GET /events`. The stream response is written straight to Node's
 * `ServerResponse` rather than through Hono's `streamSSE`: that helper costs
 * about 44 KB per idle connection (a web ReadableStream, a TransformStream and
 * their promises, as measured when the node was first built) and hangs a writer
 * on a client that stops reading. Here a stream is a socket, a small object and
 * Node's own write buffer, capped in bytes.
 */
export function eventsRoute(app: Hono<{ Bindings: HttpBindings }>, node: HeraldNode, trustProxy: boolean): void {
  app.get('/events', refuseHead, refuseOtherFetchDest, stopReplacedTab, refuseIdentityInUrl, requireOwnSocket, async (c) => {
    const { incoming, outgoing } = c.env;
    const address = clientAddress(incoming, trustProxy);
    const admission = node.admit(address);
    let opened: Promise<void>;
    try {
      const identity = await node.authenticate({ authorization: c.req.header('authorization'), cookie: c.req.header('cookie') });
      // A status check: `EventSource` cannot read why it was refused, so a client asks
      // with `Accept: application/json` and gets the same refusals, or this, without
      // a stream being opened or the tab claimed (which would displace another tab).
      if (isStatusCheck(c.req.header('accept'))) return c.json({ ok: true, nodeId: node.nodeId });
      // Puts the stream in the hub before it returns: from there the hub counts it.
      // The request's socket is the response's own (requireOwnSocket).
      opened = node.open(outgoing, incoming.socket, address, identity.userId, identity.expiresAtMs, lastEventIdOf(c));
    } finally {
      admission.release();
    }
    await opened;
    return RESPONSE_ALREADY_SENT;
  });
}
