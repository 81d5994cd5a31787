// `npm run cluster`: a multi-node shape on one machine, behind a small
// round-robin proxy that stands in for the load balancer (the ALB on AWS).
// The nodes are separate processes of the container's entry
// (`node --enable-source-maps dist/herald-node.mjs`):
//   - by default in aws mode, on emulators run in this process (fauxqs for
//     SNS/SQS, dynalite for DynamoDB, both on 127.0.0.1);
//   - with `--redis`, in redis mode, on a `redis-server` this script starts
//     (Debian's package, installed by scripts/ensure-redis.mjs) on a free port.
// The demo page and its sign-in are served beside the proxy
// (scripts/fleet/cluster-demo.ts), publishing as that shape's services do: the
// publisher library on AWS, `POST /publish` on Redis. Ctrl-C stops everything
// it started, by pid. Secrets go to .herald/cluster.json (mode 0600), never to
// the terminal.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { onStopPresses } from './stop-signals.mjs';
import { createAwsPublishing } from '../services/publisher/create-publisher';
import { createLogger } from '../services/shared/log';
import { startCluster, type ClusterNode, type NodeProcessOptions } from './fleet/cluster';
import { clusterDemo, httpDemoPublishing, type ClusterDemo } from './fleet/cluster-demo';
import { startEmulators } from './fleet/emulators';
import { startRedisFleet } from './fleet/redis-fleet';
import { startRedisServer } from './fleet/redis-server';

const USAGE = `npm run cluster -- [--redis] [--nodes N] [--port P] [--quiet]

  --redis     nodes in redis mode on a redis-server started here (default: aws mode on emulators)
  --nodes N   node processes (default 3, at most 9)
  --port P    the proxy's port; nodes take P+1 … P+N (default 8090)
  --quiet     print only the nodes' warnings and errors (default: their info lines too)
`;

const root = new URL('..', import.meta.url).pathname;
const clusterFile = join(root, '.herald', 'cluster.json');

interface Options {
  readonly redis: boolean;
  readonly nodes: number;
  readonly port: number;
  readonly quiet: boolean;
}

function parse(): Options {
  const { values } = parseArgs({
    options: {
      redis: { type: 'boolean' },
      nodes: { type: 'string' },
      port: { type: 'string' },
      quiet: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const nodes = Number(values.nodes ?? 3);
  const port = Number(values.port ?? 8090);
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > 9) throw new Error('--nodes must be 1 to 9');
  if (!Number.isInteger(port) || port < 1 || port + nodes > 65_535) throw new Error('--port must leave room for the nodes below 65536');
  return { redis: values.redis ?? false, nodes, port, quiet: values.quiet ?? false };
}

let options: Options;
try {
  options = parse();
} catch (error) {
  console.error(`${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`);
  process.exit(2);
}

// The SDK's notice about Node 20 support is for whoever picks the runtime, not for each run of this script.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const run = (script: string): void => {
  const result = spawnSync(process.execPath, [join(root, script)], { stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
};
if (options.redis) run('scripts/ensure-redis.mjs');
run('scripts/build.mjs');

// HS256 keys are the UTF-8 bytes of HERALD_JWT_SECRET; the file keeps those bytes
// in base64url, as .herald/dev.json does, so `npm run token` signs the same way for both.
const secret = randomBytes(32).toString('base64url');
const publishToken = randomBytes(24).toString('base64url');
const nodeIds = Array.from({ length: options.nodes }, (_, i) => `node-${i + 1}`);
const drainMs = 3_000;
const proxyUrl = `http://127.0.0.1:${options.port}`;
/** The proxy's port + 1 … + N, as the usage says. */
const nodePorts = nodeIds.map((_, i) => options.port + 1 + i);
const demoLog = createLogger({ level: options.quiet ? 'warn' : 'info', sink: (line) => process.stdout.write(`[demo] ${line}\n`) });
let stopping = false;

const print = (nodeId: string, line: string): void => {
  if (stopping && !line.includes('"level":"warn"') && !line.includes('"level":"error"') && !/node\.(draining|stopped)/.test(line)) return;
  process.stdout.write(`[${nodeId}] ${line}\n`);
};

/** What both shapes share once running: the nodes, how to stop them, what to print and save. */
interface Running {
  readonly nodes: readonly ClusterNode[];
  pids(): number[];
  stop(options: { graceful: boolean; graceMs: number }): Promise<void>;
  /** Stops what the nodes ran on (emulators, redis-server), after the nodes. */
  release(): Promise<void>;
  /** Lines of the banner after the nodes', naming what the nodes share. */
  readonly backing: readonly string[];
  readonly mode: 'aws' | 'redis';
  readonly demoNote: string;
  /** Fields of .herald/cluster.json beyond the URLs and secrets. */
  readonly saved: Record<string, unknown>;
}

const processes: NodeProcessOptions = { entry: join(root, 'dist/herald-node.mjs'), nodeArgs: ['--enable-source-maps'], detached: true, retainLogs: false, onLine: print };
const nodeEnv = {
  HERALD_DRAIN_MS: String(drainMs),
  HERALD_LOG_LEVEL: options.quiet ? 'warn' : 'info',
  // Every request reaches the nodes from the proxy; the per-address limit applies to X-Forwarded-For.
  HERALD_TRUST_PROXY: 'true',
};
const proxyOptions = (demo: ClusterDemo) => ({
  port: options.port,
  onEvent: (event: string, fields: Record<string, unknown>) => console.log(`[proxy] ${event} ${JSON.stringify(fields)}`),
  local: demo.local,
});

async function startAws(): Promise<Running> {
  const emulators = await startEmulators();
  const names = { tableName: 'herald-cluster', topicName: 'herald-cluster' };
  // The demo publishes to the topic the cluster makes (CreateTopic is idempotent: the same ARN).
  const topicArn = await emulators.createTopic(names.topicName);
  const demo = clusterDemo({
    secret,
    publishing: createAwsPublishing({ topicArn, tableName: names.tableName, clients: emulators, log: demoLog }),
    log: demoLog,
  });
  const release = async (): Promise<void> => {
    await demo.close().catch(() => undefined);
    await emulators.stop().catch(() => undefined);
  };
  try {
    const cluster = await startCluster({
      ...processes,
      emulators,
      nodeIds,
      ports: nodePorts,
      ...names,
      queuePrefix: 'herald-cluster',
      secret,
      publishToken,
      env: nodeEnv,
      proxy: proxyOptions(demo),
    });
    return {
      nodes: cluster.nodes,
      pids: () => cluster.pids(),
      stop: (stopOptions) => cluster.stop(stopOptions),
      release,
      mode: 'aws',
      backing: [
        `  SNS/SQS    ${emulators.snsEndpoint} (fauxqs), topic ${cluster.topicArn}`,
        `  DynamoDB   ${emulators.dynamoEndpoint} (dynalite), table ${cluster.tableName}`,
      ],
      demoNote: 'messages go through DynamoDB, SNS and SQS',
      saved: { topicArn: cluster.topicArn, tableName: cluster.tableName, queuePrefix: cluster.queuePrefix, aws: emulators.env() },
    };
  } catch (error) {
    await release();
    throw error;
  }
}

async function startRedis(): Promise<Running> {
  // A password even on loopback: anything else on this machine could otherwise read and write the keys.
  const password = randomBytes(18).toString('base64url');
  const redis = await startRedisServer({ password, detached: true });
  const url = `redis://:${password}@127.0.0.1:${redis.port}`;
  // The demo publishes as any service on Redis would: POST /publish through the proxy.
  const demo = clusterDemo({ secret, publishing: httpDemoPublishing({ url: proxyUrl, token: publishToken, log: demoLog }), log: demoLog });
  const release = async (): Promise<void> => {
    await demo.close().catch(() => undefined);
    await redis.stop().catch(() => undefined);
  };
  try {
    const fleet = await startRedisFleet({
      ...processes,
      redis: { url },
      nodes: options.nodes,
      nodeIds,
      ports: nodePorts,
      secret,
      publishToken,
      env: nodeEnv,
      proxy: proxyOptions(demo),
    });
    return {
      nodes: fleet.nodes,
      pids: () => fleet.pids(),
      stop: (stopOptions) => fleet.stop(stopOptions),
      release,
      mode: 'redis',
      backing: [`  Redis      redis://127.0.0.1:${redis.port} (redis-server pid ${redis.pid}, no persistence; password in .herald/cluster.json)`],
      demoNote: 'messages go through POST /publish and Redis',
      saved: { redisUrl: url },
    };
  } catch (error) {
    await release();
    throw error;
  }
}

let cluster: Running;
try {
  cluster = await (options.redis ? startRedis() : startAws());
} catch (error) {
  console.error(`the cluster did not start: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}

mkdirSync(join(root, '.herald'), { recursive: true, mode: 0o700 });
writeFileSync(
  clusterFile,
  JSON.stringify(
    {
      url: proxyUrl,
      nodes: cluster.nodes.map((n) => ({ id: n.id, url: n.url })),
      jwtSecret: Buffer.from(secret).toString('base64url'),
      publishToken,
      ...cluster.saved,
    },
    null,
    2,
  ),
  { mode: 0o600 },
);

const across = cluster.mode === 'aws' ? 'through SNS and SQS' : 'through Redis Streams';
const demoPublishes =
  cluster.mode === 'aws'
    ? 'The nodes stay in aws mode (no dev routes): the demo\'s sign-in and send are answered beside the\nproxy, signing with the cluster\'s key and publishing with the publisher library.'
    : 'The nodes stay in redis mode (no dev routes): the demo\'s sign-in and send are answered beside the\nproxy, signing with the cluster\'s key and publishing with POST /publish through the proxy.';
console.log(`
Herald cluster: ${options.nodes} nodes in ${cluster.mode} mode behind a round-robin proxy (the ${cluster.mode === 'aws' ? "ALB's" : "load balancer's"} stand-in)

  demo page  ${proxyUrl}/   (sign in as anyone; ${cluster.demoNote})
  proxy      ${proxyUrl}
${cluster.nodes.map((n) => `  ${n.id.padEnd(10)} ${n.url}   (pid ${n.process.pid})`).join('\n')}
${cluster.backing.join('\n')}

The secrets are in .herald/cluster.json (readable only by you). In another terminal:

  TOKEN=$(npm run -s token -- --cluster alice)
  curl -N -H "Authorization: Bearer $TOKEN" ${proxyUrl}/events

and in a third:

  PUBLISHER=$(npm run -s token -- --cluster --publisher)
  curl -X POST ${proxyUrl}/publish -H "Authorization: Bearer $PUBLISHER" \\
    -H 'Content-Type: application/json' -d '{"to":{"users":["alice"]},"event":"message","data":{"text":"Hello"}}'

Each request through the proxy lands on the next node, so the publish and the
stream usually meet on different nodes, ${across}. ${demoPublishes}
Ctrl-C stops everything.
`);

/**
 * Stops every node by its pid: drained (SIGTERM) on the first press of Ctrl-C
 * (or a signal to this script's pid), at once (SIGKILL) on a second.
 */
async function shutdown(signal: NodeJS.Signals, presses: number): Promise<void> {
  if (presses > 1) {
    console.log(`${signal} again: killing the nodes (pids ${cluster.pids().join(', ')})`);
    for (const pid of cluster.pids()) process.kill(pid, 'SIGKILL');
    process.exit(130);
  }
  stopping = true;
  console.log(`\n${signal}: draining the nodes (pids ${cluster.pids().join(', ')}), up to ${drainMs / 1000} s; again to kill them at once`);
  try {
    await cluster.stop({ graceful: true, graceMs: drainMs + 5_000 });
  } finally {
    await cluster.release();
    rmSync(clusterFile, { force: true });
  }
  console.log('stopped');
  process.exit(0);
}
onStopPresses((signal, presses) => void shutdown(signal, presses));
// Last resort (an uncaught error): nothing outlives this script.
process.on('exit', () => {
  for (const pid of cluster.pids()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
});

// A node that dies on its own is reported; the proxy routes around it.
for (const node of cluster.nodes) {
  void node.process.exited.then((exit) => {
    if (!stopping) console.log(`[${node.id}] exited (code ${exit.code}, signal ${exit.signal}); the proxy routes around it`);
  });
}
