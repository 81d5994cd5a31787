/**
 * The local shape: one node process, memory adapters, started from the
 * node-under-test bundle with `--expose-gc` so memory is read after a full GC.
 */
import { join } from 'node:path';
import type { LoopDelay, NodeSample } from './ipc';
import { IpcChild } from './processes';
import { HttpPublisher, getText, parseMetrics } from './publisher';
import type { NodeUnderTest, ShapeOptions } from './shape';

/** The node's environment: only what the bench sets, none of the caller's HERALD_* settings. */
export function localNodeEnv(options: ShapeOptions): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('HERALD_') && key !== 'NODE_OPTIONS') env[key] = value;
  }
  return {
    ...env,
    HERALD_MODE: 'local',
    HERALD_HOST: '127.0.0.1',
    HERALD_PORT: '0',
    HERALD_NODE_ID: 'bench',
    HERALD_JWT_SECRET: options.secret,
    HERALD_PUBLISH_TOKEN: options.publishToken,
    // Every client process connects from one address: the per-address limit must not bite.
    HERALD_CONNECT_RATE_PER_IP: '1000000',
    HERALD_CONNECT_BURST_PER_IP: '1000000',
    HERALD_MAX_CONNECTIONS_PER_IP: '10000000',
    HERALD_MAX_CONNECTIONS: String(Math.ceil(options.connections * 1.1) + 100),
    HERALD_PUBLISH_RATE: '10000000',
    HERALD_LOG_LEVEL: 'warn',
    HERALD_DRAIN_MS: '0',
  };
}

export async function startLocalShape(options: ShapeOptions): Promise<NodeUnderTest> {
  const bundlePath = join(options.buildDir, 'node-under-test.mjs');
  const child = await IpcChild.spawn({
    label: 'node-under-test',
    args: ['--expose-gc', ...(options.nodeFlags ?? []), bundlePath],
    env: localNodeEnv(options),
    startTimeoutMs: 20_000,
  });
  const url = String(child.hello.url);
  const publisher = new HttpPublisher(url, options.publishToken, options.publishers);
  const sample = (cmd: 'gc' | 'sample'): Promise<NodeSample> => child.request<NodeSample>(cmd, {}, 60_000);

  return {
    url,
    description: `local shape, node pid ${child.hello.pid}, bundled, node ${['--expose-gc', ...(options.nodeFlags ?? [])].join(' ')}`,
    publish: (body) => publisher.post(JSON.stringify(body)),
    memory: async () => {
      const { memory } = await sample('gc');
      return { rss: memory.rss, heapUsed: memory.heapUsed, heapTotal: memory.heapTotal, external: memory.external, afterGc: true };
    },
    cpu: async () => {
      const { cpuUs, systemCpuUs } = await sample('sample');
      return { totalUs: cpuUs, systemUs: systemCpuUs };
    },
    counters: async () => parseMetrics(await getText(`${url}/metrics`)),
    loopDelay: {
      start: async () => {
        await child.request('loop-delay-start', {}, 10_000);
      },
      stop: () => child.request<LoopDelay>('loop-delay-stop', {}, 10_000),
    },
    profiler: {
      bundlePath,
      start: async () => {
        await child.request('profile-start', {}, 10_000);
      },
      stop: async (path) => {
        await child.request('profile-stop', { path }, 60_000);
      },
    },
    stop: async () => {
      publisher.close();
      await child.stop();
    },
  };
}
