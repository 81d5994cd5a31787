import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getRequestListener } from '@hono/node-server';
import type { Logger } from '../shared/log';
import type { Config } from './config';
import { createApp } from './app';
import { HeraldNode } from './herald-node';
import type { Ports } from './compose';

export interface RunningHerald {
  readonly node: HeraldNode;
  readonly server: Server;
  /** `http://host:port`, with the port actually bound (config port 0 picks a free one). */
  readonly url: string;
  /** Drains (closing streams over the drain window), then stops everything. */
  shutdown(): Promise<void>;
}

export interface StartOptions {
  readonly config: Config;
  readonly ports: Ports;
  readonly log: Logger;
  readonly nodeId: string;
  /** Overrides for tests: a short node heartbeat lifetime. */
  readonly nodeTtlMs?: number;
}

/** Builds the node and its HTTP server, and listens. */
export async function startHerald(options: StartOptions): Promise<RunningHerald> {
  const { config, ports, log } = options;
  const node = new HeraldNode({ config, log, nodeId: options.nodeId, ...ports, ...(options.nodeTtlMs === undefined ? {} : { nodeTtlMs: options.nodeTtlMs }) });
  node.metrics.aws = ports.awsUsage;
  const app = createApp(node, { ...ports, limiter: ports.publishLimiter });
  const server = createServer(getRequestListener(app.fetch));
  // A stream may legitimately send nothing but heartbeats for hours; Node's own
  // request timeout must not cut it (the heartbeat handles dead peers).
  server.requestTimeout = 0;
  server.headersTimeout = 30_000;
  await node.start();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const url = `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`;
  log.info('http.listening', { url, nodeId: node.nodeId });

  let stopping: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    stopping ??= (async () => {
      await node.drain();
      await node.stop();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.all([ports.owners.close(), ports.history.close(), ports.publishLimiter.close()]);
      await ports.release?.();
    })();
    return stopping;
  };
  return { node, server, url, shutdown };
}
