import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

/**
 * A TCP proxy on 127.0.0.1:0 in front of a local service, to simulate an
 * outage: `block()` resets every open connection and resets new ones as they
 * arrive, so clients see ECONNRESET at once (not a hang); `unblock()` lets
 * traffic through again on the same address.
 */
export interface TcpProxy {
  /** `http://127.0.0.1:<port>`, to use as an endpoint in place of the target's. */
  readonly url: string;
  block(): void;
  unblock(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(target: string): Promise<TcpProxy> {
  const { hostname, port } = new URL(target);
  const pairs = new Set<readonly [Socket, Socket]>();
  let blocked = false;

  const server = createServer((client) => {
    if (blocked) {
      client.resetAndDestroy();
      return;
    }
    const upstream = connect({ host: hostname, port: Number(port) });
    const pair = [client, upstream] as const;
    pairs.add(pair);
    const end = (): void => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port: proxyPort } = server.address() as AddressInfo;

  const cut = (): void => {
    for (const [client, upstream] of pairs) {
      client.resetAndDestroy();
      upstream.destroy();
    }
    pairs.clear();
  };

  return {
    url: `http://127.0.0.1:${proxyPort}`,
    block: () => {
      blocked = true;
      cut();
    },
    unblock: () => {
      blocked = false;
    },
    close: async () => {
      blocked = true;
      cut();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
