import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { onTestFinished } from 'vitest';
import { loadConfig, type Config } from '../../../services/node/config';
import { composeLocal, type Ports } from '../../../services/node/compose';
import { startHerald, type RunningHerald } from '../../../services/node/server';
import { createLogger, type Logger } from '../../../services/shared/log';
import { scrape } from '../../support/prometheus-text';

/** One `GET /events` the node received, whatever it answered. */
export interface EventsRequest {
  readonly atMs: number;
  readonly url: string;
  readonly lastEventIdHeader: string | undefined;
}

export interface DevNode extends RunningHerald {
  readonly config: Config;
  readonly logs: Array<Record<string, unknown>>;
  /** Every request for `/events`, in arrival order (counted before any routing, so 204s and 401s too). */
  readonly eventsRequests: EventsRequest[];
  /** Publishes one chat `message` through `POST /publish`; returns its id. */
  publishMessage(userId: string, text: string): Promise<string>;
  /** One sample of `/metrics`, e.g. `herald_connections`. */
  metric(name: string): Promise<number>;
  /** Cuts every open stream from the server side (its socket is destroyed), as a crashed proxy would. */
  dropStreams(): number;
}

export interface DevNodeOptions {
  readonly env?: Record<string, string>;
  readonly ports?: (defaults: Ports) => Ports;
}

let sequence = 0;

/**
 * A real node in dev mode (no HERALD_JWT_SECRET: the demo page and /dev/*
 * exist) on 127.0.0.1:0, with a 1 s heartbeat so the client's watchdog acts
 * within seconds, and a short `retry:`. Stopped when the calling test finishes.
 */
export async function startDevNode(options: DevNodeOptions = {}): Promise<DevNode> {
  const config = loadConfig({
    HERALD_PORT: '0',
    HERALD_HEARTBEAT_MS: '1000',
    HERALD_RETRY_MS: '300',
    HERALD_DRAIN_MS: '200',
    HERALD_CONNECT_RATE_PER_IP: '10000',
    ...options.env,
  });
  const logs: Array<Record<string, unknown>> = [];
  const log: Logger = createLogger({ level: 'debug', sink: (line) => logs.push(JSON.parse(line) as Record<string, unknown>) });
  const defaults = composeLocal(config, log);
  const running = await startHerald({ config, ports: options.ports ? options.ports(defaults) : defaults, log, nodeId: `browser-${++sequence}` });

  const eventsRequests: EventsRequest[] = [];
  const streamSockets = new Set<Socket>();
  running.server.on('request', (req: IncomingMessage) => {
    if (!req.url?.startsWith('/events')) return;
    const header = req.headers['last-event-id'];
    eventsRequests.push({ atMs: Date.now(), url: req.url, lastEventIdHeader: typeof header === 'string' ? header : undefined });
    streamSockets.add(req.socket);
    req.socket.once('close', () => streamSockets.delete(req.socket));
  });
  onTestFinished(async () => {
    running.server.closeAllConnections();
    await running.shutdown();
  });

  const publishToken = config.publishToken;
  if (publishToken === undefined) throw new Error('dev mode should have made a publisher token');
  return {
    ...running,
    config,
    logs,
    eventsRequests,
    async publishMessage(userId, text) {
      const response = await fetch(new URL('/publish', running.url), {
        method: 'POST',
        headers: { Authorization: `Bearer ${publishToken}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ to: { users: [userId] }, event: 'message', data: { fromUserId: 'herald-test', text } }),
      });
      const body = (await response.json()) as { id?: string };
      if (response.status !== 202 || typeof body.id !== 'string') throw new Error(`publish answered ${response.status}: ${JSON.stringify(body)}`);
      return body.id;
    },
    async metric(name) {
      const value = (await scrape(running.url)).samples.get(name);
      if (value === undefined) throw new Error(`metric ${name} not found in /metrics`);
      return value;
    },
    dropStreams() {
      const sockets = [...streamSockets];
      for (const socket of sockets) socket.destroy();
      return sockets.length;
    },
  };
}
