/**
 * The redis shape on one machine: node processes of the built entry in redis
 * mode, all on one Redis (a server or a cluster), each picking its own node
 * id as a fleet's processes do, optionally behind the round-robin proxy that
 * stands in for a load balancer. Nothing is made in Redis beforehand: the
 * nodes need nothing set up. Every process it starts is stopped by its pid.
 */
import type { ChildNode } from './child-node';
import { startAlbProxy, type AlbProxy, type AlbProxyOptions } from './alb-proxy';
import { launchNode, randomSecret, signUserToken, stopNodes, type ClusterNode, type NodeProcessOptions } from './cluster';

export type RedisTargetEnv = { readonly url: string } | { readonly clusterNodes: readonly string[] };

export interface RedisFleetOptions extends NodeProcessOptions {
  readonly redis: RedisTargetEnv;
  /** How many node processes to start at once. */
  readonly nodes: number;
  /** `HERALD_REDIS_PREFIX`; @default the node's own (`herald:`) */
  readonly keyPrefix?: string;
  /** Extra environment for every node (HERALD_RETRY_MS, HERALD_HEARTBEAT_MS, …). */
  readonly env?: Readonly<Record<string, string>>;
  /**
   * `HERALD_NODE_ID` of each node, in start order. @default none: each
   * process picks its own, read from its `http.listening` line
   */
  readonly nodeIds?: readonly string[];
  /** `HERALD_PORT` of each node, in start order. @default 0 for each (a free port) */
  readonly ports?: readonly number[];
  /** The nodes' HS256 key (`HERALD_JWT_SECRET`). @default a random one (`token()` signs with it) */
  readonly secret?: string;
  /** `HERALD_PUBLISH_TOKEN`. @default a random one (`ClusterNode.publish` sends it) */
  readonly publishToken?: string;
  /** Put the load balancer stand-in in front of the nodes. @default undefined (no proxy) */
  readonly proxy?: Omit<AlbProxyOptions, 'targets'>;
}

export interface RedisFleet {
  /** In start order; each `id` is the node id the process picked. */
  readonly nodes: readonly ClusterNode[];
  readonly proxy: AlbProxy | undefined;
  token(userId: string): Promise<string>;
  /** Pids of node processes still running. */
  pids(): number[];
  /** Stops every node by its pid (see Cluster.stop) and closes the proxy. Redis is the caller's. */
  stop(options?: { graceful?: boolean; graceMs?: number }): Promise<void>;
}

function redisEnvironment(options: RedisFleetOptions, secret: string, publishToken: string): Record<string, string> {
  const target: Record<string, string> = 'url' in options.redis ? { HERALD_REDIS_URL: options.redis.url } : { HERALD_REDIS_CLUSTER_NODES: options.redis.clusterNodes.join(',') };
  return {
    PATH: process.env.PATH ?? '',
    HERALD_MODE: 'redis',
    HERALD_HOST: '127.0.0.1',
    HERALD_PORT: '0',
    HERALD_JWT_SECRET: secret,
    HERALD_PUBLISH_TOKEN: publishToken,
    // Every client of a test comes from 127.0.0.1, and through the proxy from its one address.
    HERALD_CONNECT_RATE_PER_IP: '10000',
    ...target,
    ...(options.keyPrefix === undefined ? {} : { HERALD_REDIS_PREFIX: options.keyPrefix }),
    ...options.env,
  };
}

/** Starts `options.nodes` processes at once (and the proxy, if asked), resolving once every one listens. */
export async function startRedisFleet(options: RedisFleetOptions): Promise<RedisFleet> {
  const children: ChildNode[] = [];
  let proxy: AlbProxy | undefined;
  const stop: RedisFleet['stop'] = async (stopOptions = {}) => {
    await stopNodes(children, stopOptions);
    await proxy?.close();
  };
  const secret = options.secret ?? randomSecret();
  const publishToken = options.publishToken ?? randomSecret();
  const env = redisEnvironment(options, secret, publishToken);
  let nodes: ClusterNode[];
  try {
    nodes = await Promise.all(
      Array.from({ length: options.nodes }, (_, i) => {
        const nodeId = options.nodeIds?.[i];
        const port = options.ports?.[i] ?? 0;
        const launch = nodeId === undefined
          ? { env: { ...env, HERALD_PORT: String(port) }, label: `node ${i + 1}`, port, publishToken, idFromLog: true }
          : { env: { ...env, HERALD_PORT: String(port), HERALD_NODE_ID: nodeId }, label: nodeId, port, publishToken };
        return launchNode(options, launch, (child) => children.push(child));
      }),
    );
    if (options.proxy) proxy = await startAlbProxy({ ...options.proxy, targets: nodes.map((n) => n.url) });
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
  return {
    nodes,
    proxy,
    token: (userId) => signUserToken(userId, secret),
    pids: () => children.filter((c) => !c.exit).map((c) => c.pid),
    stop,
  };
}
