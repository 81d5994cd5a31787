import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { onTestFinished } from 'vitest';

/**
 * A TCP proxy on 127.0.0.1:0 in front of a node. Its `stall()` makes every
 * open event stream go silent without closing it: no byte moves either way,
 * no FIN, no RST, as when a NAT or proxy on the path stops forwarding. The
 * browser's `EventSource` never reports an error for that; only a heartbeat
 * watchdog notices. Connections opened after the stall pass normally. Its
 * `refuseEvents()` answers stream requests with a 503 of its own.
 */
export interface StallProxy {
  /** `http://127.0.0.1:<port>`: load the page from here so its stream goes through the proxy. */
  readonly url: string;
  /** Freezes the connections that carried `GET /events`; returns how many. */
  stall(): number;
  /** Answers the next `count` requests for `/events` itself with `503` and `Retry-After`, as a draining node would. */
  refuseEvents(count: number, retryAfterSeconds: number): void;
  /** Requests for `/events` refused so far. */
  readonly refused: number;
}

export async function startStallProxy(target: string): Promise<StallProxy> {
  const { hostname, port } = new URL(target);
  const pairs = new Set<{ client: Socket; upstream: Socket; events: boolean; frozen: boolean; answered: boolean }>();
  let toRefuse = 0;
  let refused = 0;
  let retryAfter = 1;

  const server = createServer((client) => {
    const upstream = connect({ host: hostname, port: Number(port) });
    const pair = { client, upstream, events: false, frozen: false, answered: false };
    pairs.add(pair);
    const end = (): void => {
      pairs.delete(pair);
      // A refusal written by the proxy itself must be flushed, not cut.
      if (!pair.answered) client.destroy();
      upstream.destroy();
    };
    client.on('data', (chunk: Buffer) => {
      // Keep-alive may carry a page request first and the stream later: look at every request.
      const events = chunk.toString('latin1', 0, 12).startsWith('GET /events');
      if (events && toRefuse > 0) {
        toRefuse--;
        refused++;
        pair.answered = true;
        const body = '{"error":"draining","message":"this node is shutting down; reconnect"}';
        client.end(
          `HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: ${retryAfter}\r\n` +
            `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
        );
        upstream.destroy();
        return;
      }
      if (events) pair.events = true;
      if (!pair.frozen) upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!pair.frozen) client.write(chunk);
    });
    client.on('end', () => upstream.end()).on('error', end).on('close', end);
    upstream.on('end', () => client.end()).on('error', end).on('close', end);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  onTestFinished(async () => {
    for (const { client, upstream } of pairs) {
      client.destroy();
      upstream.destroy();
    }
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get refused() {
      return refused;
    },
    refuseEvents(count, retryAfterSeconds) {
      toRefuse = count;
      retryAfter = retryAfterSeconds;
    },
    stall() {
      let count = 0;
      for (const pair of pairs) {
        if (!pair.events || pair.frozen) continue;
        pair.frozen = true;
        // Stop reading too, so the kernel buffers fill and nothing is even acknowledged above TCP.
        pair.client.pause();
        pair.upstream.pause();
        count++;
      }
      return count;
    },
  };
}
