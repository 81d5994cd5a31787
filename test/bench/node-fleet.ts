/**
 * What the multi-node shapes (cluster, redis) read from their nodes the same
 * way: each node's /metrics, summed or per node, and free ports to give them.
 */
import { createServer, type AddressInfo, type Server } from 'node:net';
import { HttpPublisher, getText, parseMetrics, type PublishOutcome } from './publisher';
import type { PublishBody } from './shape';
import type { NodeAwsUsage, NodeBreakdown, NodeUnderTest } from './shape';
import { usageFromMetrics } from './cost';

export interface FleetNode {
  readonly id: string;
  readonly url: string;
}

function read(values: ReadonlyMap<string, number>, name: string, node: string): number {
  const value = values.get(name);
  if (value === undefined) throw new Error(`${node}/metrics has no ${name}`);
  return value;
}

/** Ports free right now on 127.0.0.1: the nodes log at warn, so their port cannot come from their `http.listening` line. */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () => new Promise<Server>((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve(server));
    })),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

/** The readings every multi-node shape gives: memory, CPU and counters summed over the nodes, and each node's own. */
export function fleetReadings(nodes: readonly FleetNode[]): Pick<NodeUnderTest, 'memory' | 'cpu' | 'counters' | 'perNode'> & { usage(): Promise<NodeAwsUsage[]> } {
  const all = async (): Promise<Array<{ node: FleetNode; values: Map<string, number> }>> =>
    Promise.all(nodes.map(async (node) => ({ node, values: parseMetrics(await getText(new URL('/metrics', node.url).href)) })));
  const sum = async (name: string): Promise<number> => (await all()).reduce((total, { node, values }) => total + read(values, name, node.id), 0);
  return {
    memory: async () => ({ rss: await sum('process_resident_memory_bytes'), heapUsed: await sum('nodejs_heap_used_bytes'), afterGc: false }),
    cpu: async () => ({ totalUs: (await sum('process_cpu_seconds_total')) * 1e6 }),
    counters: async () => {
      const total = new Map<string, number>();
      for (const { values } of await all()) for (const [name, value] of values) if (name.startsWith('herald_')) total.set(name, (total.get(name) ?? 0) + value);
      return total;
    },
    perNode: async (): Promise<NodeBreakdown[]> =>
      (await all()).map(({ node, values }) => ({
        id: node.id,
        connections: read(values, 'herald_connections', node.id),
        rss: read(values, 'process_resident_memory_bytes', node.id),
        cpuSeconds: read(values, 'process_cpu_seconds_total', node.id),
        busMessages: read(values, 'herald_bus_messages_total', node.id),
        deliveries: read(values, 'herald_deliveries_total', node.id),
      })),
    usage: async () =>
      (await all()).map(({ node, values }) => ({
        id: node.id,
        usage: usageFromMetrics(values),
        cpuSeconds: read(values, 'process_cpu_seconds_total', node.id),
        busMessages: read(values, 'herald_bus_messages_total', node.id),
        deliveries: read(values, 'herald_deliveries_total', node.id),
      })),
  };
}

/** POST /publish on each node in turn, as a service behind a load balancer would. */
export function roundRobinPublisher(urls: readonly string[], publishToken: string, connections: number): { publish: (body: PublishBody) => Promise<PublishOutcome>; close: () => void } {
  const publishers = urls.map((url) => new HttpPublisher(url, publishToken, connections));
  let next = 0;
  return {
    publish: (body) => publishers[next++ % publishers.length]!.post(JSON.stringify(body)),
    close: () => publishers.forEach((p) => p.close()),
  };
}
