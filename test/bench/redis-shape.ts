/**
 * The redis shape (`--shape redis`): `--nodes` processes of the container's
 * entry (dist/herald-node.mjs) in redis mode on one Debian `redis-server`
 * started on a free port. Publishing is `POST /publish` on each node in turn
 * and the clients spread over the nodes (user i → node i mod N), so most
 * unicasts cross nodes through Redis. Memory and CPU are the nodes' own, from
 * their /metrics; Redis's CPU (INFO cpu) is reported apart.
 */
import type { ChildNode } from '../../scripts/fleet/child-node';
import { buildEntryPoint, spawnChildNode } from '../support/child-node';
import { eventually } from '../../scripts/fleet/deadline';
import { rawCommand, startRedisServer } from '../../scripts/fleet/redis-server';
import { fleetReadings, freePorts, roundRobinPublisher } from './node-fleet';
import { track } from './processes';
import type { NodeUnderTest, ShapeOptions } from './shape';

const START_TIMEOUT_MS = 30_000;

/** User + system CPU seconds of the Redis server so far. */
async function redisCpuSeconds(port: number): Promise<number> {
  const info = await rawCommand(port, 'INFO cpu');
  const field = (name: string): number => Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(info)?.[1] ?? NaN);
  return field('used_cpu_user') + field('used_cpu_sys');
}

/** Resolves once the node answers /healthz 200 (it can deliver); rejects if it exits first or the deadline passes. */
function healthy(node: ChildNode, url: string): Promise<void> {
  return eventually(
    async () => {
      if (node.exit) throw new Error(`a node exited (${node.exit.code ?? node.exit.signal}) before it was healthy: ${node.stderrLines.join('\n')}`);
      return (await fetch(`${url}/healthz`).then((r) => r.status, () => 0)) === 200;
    },
    START_TIMEOUT_MS,
    `/healthz 200 from the node at ${url}`,
  );
}

export async function startRedisShape(options: ShapeOptions): Promise<NodeUnderTest> {
  const [redis, entry] = await Promise.all([startRedisServer(), buildEntryPoint()]);
  const perNode = Math.ceil(options.connections / options.nodes);
  const ports = await freePorts(options.nodes);
  const nodes = ports.map((port, i) => {
    const child = spawnChildNode(entry.path, {
      HERALD_MODE: 'redis',
      HERALD_REDIS_URL: redis.url,
      HERALD_NODE_ID: `bench-${i + 1}`,
      HERALD_HOST: '127.0.0.1',
      HERALD_PORT: String(port),
      HERALD_JWT_SECRET: options.secret,
      HERALD_PUBLISH_TOKEN: options.publishToken,
      // The clients connect from a few addresses: the per-address limit must not bite.
      HERALD_CONNECT_RATE_PER_IP: '1000000',
      HERALD_CONNECT_BURST_PER_IP: '1000000',
      HERALD_MAX_CONNECTIONS_PER_IP: '10000000',
      HERALD_MAX_CONNECTIONS: String(Math.ceil(perNode * 1.1) + 100),
      HERALD_PUBLISH_RATE: '10000000',
      HERALD_LOG_LEVEL: 'warn',
      HERALD_DRAIN_MS: '0',
    });
    // Stopped by pid with everything else on Ctrl-C, an error or exit.
    track(child.child);
    return { id: `bench-${i + 1}`, url: `http://127.0.0.1:${port}`, child };
  });
  const stopNodes = async (): Promise<void> => {
    await Promise.all(nodes.map((n) => n.child.stop()));
  };
  try {
    await Promise.all(nodes.map((n) => healthy(n.child, n.url)));
  } catch (error) {
    await stopNodes();
    await redis.stop();
    entry.dispose();
    throw error;
  }
  const readings = fleetReadings(nodes);
  const publisher = roundRobinPublisher(nodes.map((n) => n.url), options.publishToken, options.publishers);
  const redisCpuAtStart = await redisCpuSeconds(redis.port);
  const benchCpuAtStart = process.cpuUsage();

  return {
    url: nodes[0]!.url,
    urls: nodes.map((n) => n.url),
    description: `redis shape: ${options.nodes} nodes in redis mode (dist/herald-node.mjs, pids ${nodes.map((n) => n.child.pid).join(', ')}), redis-server pid ${redis.pid} on port ${redis.port}, clients connected directly to the nodes (user i → node i mod ${options.nodes})`,
    notes: [
      'publishing through POST /publish on each node in turn → Redis (history, owners, the node streams) → the node holding the user',
      'memory and CPU: the sum over the nodes of process_resident_memory_bytes / nodejs_heap_used_bytes / process_cpu_seconds_total from /metrics (no forced GC); each node also answers POST /publish, so its CPU per bus message includes publishing',
      `targets are the single-node ones; Redis, ${options.nodes} nodes and the load clients share the machine's cores`,
    ],
    publish: publisher.publish,
    ...readings,
    otherCpuSeconds: async () => {
      const bench = process.cpuUsage(benchCpuAtStart);
      return {
        'redis-server': (await redisCpuSeconds(redis.port)) - redisCpuAtStart,
        'bench process (HTTP publisher, load-client coordination)': (bench.user + bench.system) / 1e6,
      };
    },
    stop: async () => {
      publisher.close();
      await stopNodes();
      await redis.stop();
      entry.dispose();
    },
  };
}
