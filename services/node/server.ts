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

const HEADERS_TIMEOUT_MS = 30_000;
const CONNECTIONS_CHECK_MS = 1_000;
/** A flood drops sockets by the thousand: one line per interval says so. */
const DROP_REPORT_MS = 10_000;

/** Builds the node and its HTTP server, and listens. */
export async function startHerald(options: StartOptions): Promise<RunningHerald> {
  const { config, ports, log } = options;
  const node = new HeraldNode({ config, log, nodeId: options.nodeId, ...ports, ...(options.nodeTtlMs === undefined ? {} : { nodeTtlMs: options.nodeTtlMs }) });
  node.metrics.aws = ports.awsUsage;
  const app = createApp(node, { ...ports, limiter: ports.publishLimiter });
  // Node's request deadline covers receiving the request only, headers and
  // body: it ends once the request is complete, so a stream (a GET with no
  // body) that sends nothing but heartbeats for hours is never cut by it,
  // while a request trickling a body a byte at a time is answered 408 and
  // closed. The check runs every second, not Node's default 30 s, so the
  // deadline means what it says.
  const server = createServer(
    {
      requestTimeout: config.requestTimeoutMs,
      headersTimeout: Math.min(HEADERS_TIMEOUT_MS, config.requestTimeoutMs),
      connectionsCheckingInterval: CONNECTIONS_CHECK_MS,
    },
    getRequestListener(app.fetch),
  );
  // Past the cap Node closes new sockets at once, before any parsing: the
  // open-files limit is never reached, and the stream caps below it answer first.
  server.maxConnections = config.maxSockets;
  let lastDropReportMs = Number.NEGATIVE_INFINITY;
  server.on('drop', () => {
    node.metrics.socketsDropped++;
    const now = Date.now();
    if (now - lastDropReportMs < DROP_REPORT_MS) return;
    lastDropReportMs = now;
    log.warn('http.sockets_dropped', { maxSockets: config.maxSockets, droppedSoFar: node.metrics.socketsDropped });
  });
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
