import { onTestFinished } from 'vitest';
import { loadConfig, type Config } from '../../services/node/config';
import { composeLocal, type Ports } from '../../services/node/compose';
import { startHerald, type RunningHerald } from '../../services/node/server';
import { createLogger, type Logger } from '../../services/shared/log';
import { MemoryNetwork } from '../../services/adapters/memory/memory-bus';
import { metricOf } from './prometheus-text';
import { TEST_PUBLISH_TOKEN, TEST_SECRET, signToken } from './tokens';

export interface TestNode extends RunningHerald {
  readonly config: Config;
  readonly ports: Ports;
  /** Every JSON log line the node wrote, parsed. */
  readonly logs: Array<Record<string, unknown>>;
  /** `POST /publish` with the publisher token; returns status and parsed body. */
  publish(body: unknown, init?: { token?: string; contentType?: string; raw?: string }): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }>;
  token(userId: string, expiresInSeconds?: number): Promise<string>;
  /**
   * One sample of `/metrics`, named exactly as exposed: `herald_connections` or
   * `herald_refusals_total{code="json_invalid"}`. A labelled counter with no
   * sample yet is 0 (nothing was counted under that label); any other missing
   * name is a mistake in the test and throws.
   */
  metric(name: string): Promise<number>;
}

export interface TestNodeOptions {
  /** Environment as the node would read it; merged over test defaults. */
  readonly env?: Record<string, string>;
  /** Replace some ports (e.g. gated adapters); the rest are memory adapters. */
  readonly ports?: (defaults: Ports) => Ports;
  /** Share a bus network with other nodes to test cross-node behaviour in one process. */
  readonly network?: MemoryNetwork;
  readonly nodeId?: string;
  readonly nodeTtlMs?: number;
}

let sequence = 0;

/**
 * Starts a real node on 127.0.0.1:0 with memory adapters and a test secret,
 * and stops it when the calling test finishes.
 */
export async function startTestNode(options: TestNodeOptions = {}): Promise<TestNode> {
  const config = loadConfig({
    HERALD_JWT_SECRET: TEST_SECRET,
    HERALD_PUBLISH_TOKEN: TEST_PUBLISH_TOKEN,
    HERALD_PORT: '0',
    HERALD_DRAIN_MS: '200',
    HERALD_CONNECT_RATE_PER_IP: '10000',
    ...options.env,
  });
  const logs: Array<Record<string, unknown>> = [];
  const log: Logger = createLogger({ level: 'debug', sink: (line) => logs.push(JSON.parse(line) as Record<string, unknown>) });
  const defaults = composeLocal(config, log, options.network ?? new MemoryNetwork());
  const ports = options.ports ? options.ports(defaults) : defaults;
  const running = await startHerald({
    config,
    ports,
    log,
    nodeId: options.nodeId ?? `test-${++sequence}`,
    ...(options.nodeTtlMs === undefined ? {} : { nodeTtlMs: options.nodeTtlMs }),
  });
  onTestFinished(async () => {
    running.server.closeAllConnections();
    await running.shutdown();
  });

  return {
    ...running,
    config,
    ports,
    logs,
    async publish(body, init = {}) {
      const response = await fetch(new URL('/publish', running.url), {
        method: 'POST',
        headers: {
          Authorization: `Bearer ${init.token ?? TEST_PUBLISH_TOKEN}`,
          'Content-Type': init.contentType ?? 'application/json',
        },
        body: init.raw ?? JSON.stringify(body),
      });
      const text = await response.text();
      return { status: response.status, body: (text ? JSON.parse(text) : {}) as Record<string, unknown>, headers: response.headers };
    },
    token: (userId, expiresInSeconds) => signToken(userId, expiresInSeconds === undefined ? {} : { expiresInSeconds }),
    metric: (name) => metricOf(running.url, name),
  };
}
