// `npm run cluster`: the AWS shape on one machine. The emulators run in this
// process (fauxqs for SNS/SQS, dynalite for DynamoDB, both on 127.0.0.1), the
// nodes are separate processes of the container's entry
// (`node --enable-source-maps dist/herald-node.mjs`) in aws mode, and a small
// round-robin proxy stands in for the ALB. The demo page and its sign-in are
// served beside the proxy (test/support/cluster-demo.ts), publishing through
// the publisher library as chat code on AWS would. Ctrl-C stops everything it started,
// by pid. Secrets go to .herald/cluster.json (mode 0600), never to the terminal.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createLogger } from '../services/shared/log';
import { startCluster, type Cluster } from '../test/support/cluster';
import { clusterDemo } from '../test/support/cluster-demo';
import { startEmulators } from '../test/support/emulators';

const USAGE = `npm run cluster -- [--nodes N] [--port P] [--quiet]

  --nodes N   node processes (default 3, at most 9)
  --port P    the proxy's port; nodes take P+1 … P+N (default 8090)
  --quiet     print only the nodes' warnings and errors (default: their info lines too)
`;

const root = new URL('..', import.meta.url).pathname;
const clusterFile = join(root, '.herald', 'cluster.json');

function parse(): { nodes: number; port: number; quiet: boolean } {
  const { values } = parseArgs({
    options: { nodes: { type: 'string' }, port: { type: 'string' }, quiet: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const nodes = Number(values.nodes ?? 3);
  const port = Number(values.port ?? 8090);
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > 9) throw new Error('--nodes must be 1 to 9');
  if (!Number.isInteger(port) || port < 1 || port + nodes > 65_535) throw new Error('--port must leave room for the nodes below 65536');
  return { nodes, port, quiet: values.quiet ?? false };
}

let options: { nodes: number; port: number; quiet: boolean };
try {
  options = parse();
} catch (error) {
  console.error(`${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`);
  process.exit(2);
}

// The SDK's notice about Node 20 support is for whoever picks the runtime, not for each run of this script.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const build = spawnSync(process.execPath, [join(root, 'scripts/build.mjs')], { stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);

// HS256 keys are the UTF-8 bytes of HERALD_JWT_SECRET; the file keeps those bytes
// in base64url, as .herald/dev.json does, so `npm run token` signs the same way for both.
const secret = randomBytes(32).toString('base64url');
const publishToken = randomBytes(24).toString('base64url');
const nodeIds = Array.from({ length: options.nodes }, (_, i) => `node-${i + 1}`);
const drainMs = 3_000;

const emulators = await startEmulators();
const names = { tableName: 'herald-cluster', topicName: 'herald-cluster' };
// The demo publishes to the topic the cluster makes (CreateTopic is idempotent: the same ARN).
const demo = clusterDemo({
  secret,
  topicArn: await emulators.createTopic(names.topicName),
  tableName: names.tableName,
  clients: emulators,
  log: createLogger({ level: options.quiet ? 'warn' : 'info', sink: (line) => process.stdout.write(`[demo] ${line}\n`) }),
});
let cluster: Cluster | undefined;
let stopping = false;

const print = (nodeId: string, line: string): void => {
  if (stopping && !line.includes('"level":"warn"') && !line.includes('"level":"error"') && !/node\.(draining|stopped)/.test(line)) return;
  process.stdout.write(`[${nodeId}] ${line}\n`);
};

try {
  cluster = await startCluster({
    emulators,
    entry: join(root, 'dist/herald-node.mjs'),
    nodeArgs: ['--enable-source-maps'],
    nodeIds,
    ports: nodeIds.map((_, i) => options.port + 1 + i),
    ...names,
    queuePrefix: 'herald-cluster',
    secret,
    publishToken,
    env: {
      HERALD_DRAIN_MS: String(drainMs),
      HERALD_LOG_LEVEL: options.quiet ? 'warn' : 'info',
      // Every request reaches the nodes from the proxy; the per-address limit applies to X-Forwarded-For.
      HERALD_TRUST_PROXY: 'true',
    },
    proxy: {
      port: options.port,
      onEvent: (event, fields) => console.log(`[proxy] ${event} ${JSON.stringify(fields)}`),
      local: demo.local,
    },
    detached: true,
    retainLogs: false,
    onLine: print,
  });
} catch (error) {
  console.error(`the cluster did not start: ${error instanceof Error ? error.message : String(error)}`);
  await demo.close();
  await emulators.stop();
  process.exit(1);
}

const proxyUrl = cluster.proxy?.url ?? '';
mkdirSync(join(root, '.herald'), { recursive: true, mode: 0o700 });
writeFileSync(
  clusterFile,
  JSON.stringify(
    {
      url: proxyUrl,
      nodes: cluster.nodes.map((n) => ({ id: n.id, url: n.url })),
      jwtSecret: Buffer.from(secret).toString('base64url'),
      publishToken,
      topicArn: cluster.topicArn,
      tableName: cluster.tableName,
      queuePrefix: cluster.queuePrefix,
      aws: emulators.env(),
    },
    null,
    2,
  ),
  { mode: 0o600 },
);

console.log(`
Herald cluster: ${options.nodes} nodes in aws mode behind a round-robin proxy (the ALB's stand-in)

  demo page  ${proxyUrl}/   (sign in as anyone; messages go through DynamoDB, SNS and SQS)
  proxy      ${proxyUrl}
${cluster.nodes.map((n) => `  ${n.id.padEnd(10)} ${n.url}   (pid ${n.process.pid})`).join('\n')}
  SNS/SQS    ${emulators.snsEndpoint} (fauxqs), topic ${cluster.topicArn}
  DynamoDB   ${emulators.dynamoEndpoint} (dynalite), table ${cluster.tableName}

The secrets are in .herald/cluster.json (readable only by you). In another terminal:

  TOKEN=$(npm run -s token -- --cluster alice)
  curl -N -H "Authorization: Bearer $TOKEN" ${proxyUrl}/events

and in a third:

  PUBLISHER=$(npm run -s token -- --cluster --publisher)
  curl -X POST ${proxyUrl}/publish -H "Authorization: Bearer $PUBLISHER" \\
    -H 'Content-Type: application/json' -d '{"to":{"users":["alice"]},"event":"message","data":{"text":"Hello"}}'

Each request through the proxy lands on the next node, so the publish and the
stream usually meet on different nodes, through SNS and SQS. The nodes stay in
aws mode (no dev routes): the demo's sign-in and send are answered beside the
proxy, signing with the cluster's key and publishing with the publisher
library. Ctrl-C stops everything.
`);

/** Stops every node by its pid: drained (SIGTERM) the first time, at once (SIGKILL) on a second signal. */
let signals = 0;
async function shutdown(signal: NodeJS.Signals): Promise<void> {
  signals++;
  if (signals > 1) {
    console.log(`${signal} again: killing the nodes (pids ${cluster?.pids().join(', ')})`);
    for (const pid of cluster?.pids() ?? []) process.kill(pid, 'SIGKILL');
    process.exit(130);
  }
  stopping = true;
  console.log(`\n${signal}: draining the nodes (pids ${cluster?.pids().join(', ')}), up to ${drainMs / 1000} s; again to kill them at once`);
  try {
    await cluster?.stop({ graceful: true, graceMs: drainMs + 5_000 });
  } finally {
    await demo.close().catch(() => undefined);
    await emulators.stop().catch(() => undefined);
    rmSync(clusterFile, { force: true });
  }
  console.log('stopped');
  process.exit(0);
}
process.on('SIGINT', (signal) => void shutdown(signal));
process.on('SIGTERM', (signal) => void shutdown(signal));
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
