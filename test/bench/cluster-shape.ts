/**
 * The cluster shape (`--shape cluster`): the AWS shape on this machine, as
 * `npm run cluster` runs it. Nodes are the container's entry
 * (dist/herald-node.mjs) in aws mode, one process each; the emulators
 * (fauxqs, dynalite) run in a process of their own; publishing goes through
 * the Lambda handler (services/publisher/lambda.ts, invoked in the bench's
 * process) → DynamoDB → SNS → each node's SQS queue. The clients connect to
 * the nodes directly, spread evenly, so the ALB stand-in is not what is
 * measured. Memory and CPU come from each node's /metrics (no forced GC).
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createAwsClients, type AwsClients } from '../../services/adapters/aws/sdk-clients';
import { SnsBus } from '../../services/adapters/aws/sns-bus';
import { createHandler } from '../../services/publisher/lambda';
import { httpStatus } from '../../services/protocol/errors';
import { silentLogger } from '../../services/shared/log';
import { buildEntryPoint } from '../support/child-node';
import { startCluster, type Cluster } from '../../scripts/fleet/cluster';
import { emulatorsAt } from '../../scripts/fleet/emulators';
import { IpcChild, track } from './processes';
import { fleetReadings, freePorts, roundRobinPublisher } from './node-fleet';
import type { PublishOutcome } from './publisher';
import type { AwsUsageSample, NodeUnderTest, PublishBody, ShapeOptions } from './shape';

const here = new URL('.', import.meta.url).pathname;

interface LambdaPublisher {
  readonly publish: (body: PublishBody) => Promise<PublishOutcome>;
  /** The handler's clients, made here so the cost phase can read their request meter. */
  readonly clients: AwsClients;
  readonly invocations: { count: number; wallMs: number };
}

/** Publishes the way chat and job code does on AWS: the Lambda handler, here called in-process. */
function lambdaPublisher(env: Record<string, string>, credentials: { accessKeyId: string; secretAccessKey: string }): LambdaPublisher {
  // The clients the handler would make itself (createAwsClients from the same environment), kept for their meter.
  const clients = createAwsClients(env, { credentials });
  const handler = createHandler(env, { log: silentLogger, clients });
  const invocations = { count: 0, wallMs: 0 };
  const publish = async (body: PublishBody): Promise<PublishOutcome> => {
    const started = performance.now();
    try {
      const answer = await handler(body);
      return answer.ok ? { status: 202, body: '' } : { status: httpStatus[answer.error], body: JSON.stringify(answer) };
    } catch (error) {
      // A fault after the handler's own retries: what Lambda reports as a failed invocation.
      return { status: 503, body: error instanceof Error ? error.message : String(error) };
    } finally {
      invocations.count++;
      invocations.wallMs += performance.now() - started;
    }
  };
  return { publish, clients, invocations };
}

export async function startClusterShape(options: ShapeOptions): Promise<NodeUnderTest> {
  // The SDK's notice about Node 20 support would land in the middle of the bench's output.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const entry = await buildEntryPoint();
  const emulatorProcess = await IpcChild.spawn({
    label: 'emulators',
    args: ['--import', 'tsx', join(here, 'emulators-process.ts')],
    env: { ...process.env, NODE_OPTIONS: '', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    startTimeoutMs: 30_000,
  });
  const emulators = emulatorsAt({ snsEndpoint: String(emulatorProcess.hello.snsEndpoint), dynamoEndpoint: String(emulatorProcess.hello.dynamoEndpoint) });
  const label = `bench-${randomBytes(3).toString('hex')}`;
  const perNode = Math.ceil(options.connections / options.nodes);
  let cluster: Cluster;
  try {
    cluster = await startCluster({
      emulators,
      entry: entry.path,
      nodeIds: Array.from({ length: options.nodes }, (_, i) => `bench-${i + 1}`),
      ports: await freePorts(options.nodes),
      tableName: `${label}-table`,
      topicName: `${label}-topic`,
      queuePrefix: label,
      secret: options.secret,
      publishToken: options.publishToken,
      env: {
        // The clients connect from a few addresses: the per-address limit must not bite.
        HERALD_CONNECT_RATE_PER_IP: '1000000',
        HERALD_CONNECT_BURST_PER_IP: '1000000',
        HERALD_MAX_CONNECTIONS_PER_IP: '10000000',
        HERALD_MAX_CONNECTIONS: String(Math.ceil(perNode * 1.1) + 100),
        HERALD_PUBLISH_RATE: '10000000',
        HERALD_LOG_LEVEL: 'warn',
        HERALD_DRAIN_MS: '0',
        // No ALB in front: the address is the socket's.
        HERALD_TRUST_PROXY: 'false',
      },
      onLine: (nodeId, line) => process.stderr.write(`[${nodeId}] ${line}\n`),
      retainLogs: false,
    });
  } catch (error) {
    await emulatorProcess.stop();
    entry.dispose();
    throw error;
  }
  // Stopped by pid with everything else on Ctrl-C, an error or exit.
  for (const node of cluster.nodes) track(node.process.child);

  const publishEnv = {
    ...emulators.env(),
    HERALD_TOPIC_ARN: cluster.topicArn,
    HERALD_TABLE_NAME: cluster.tableName,
    HERALD_PUBLISH_RATE: '10000000',
  };
  const http = options.publishVia === 'http' ? roundRobinPublisher(cluster.nodes.map((n) => n.url), options.publishToken, options.publishers) : undefined;
  const lambda = http ? undefined : lambdaPublisher(publishEnv, emulators.credentials);
  const publish = http?.publish ?? lambda!.publish;
  // Its own clients, so what it sends is in neither the Lambda's meter nor the nodes'.
  const busClients = createAwsClients(publishEnv, { credentials: emulators.credentials });
  const bus = { sender: new SnsBus({ sns: busClients.sns, topicArn: cluster.topicArn }), nodeOf: (user: number) => cluster.nodes[user % cluster.nodes.length]!.id };
  const readings = fleetReadings(cluster.nodes);

  const emulatorCpu = async (): Promise<number> => (await emulatorProcess.request<{ cpuUs: number }>('sample', {}, 10_000)).cpuUs;
  const emulatorCpuAtStart = await emulatorCpu();
  const benchCpuAtStart = process.cpuUsage();
  const path =
    options.publishVia === 'http'
      ? 'POST /publish on each node in turn → DynamoDB → SNS → SQS → node'
      : 'the Lambda handler (services/publisher/lambda.ts, called in the bench process) → DynamoDB → SNS → SQS → node';

  return {
    url: cluster.nodes[0]!.url,
    urls: cluster.nodes.map((n) => n.url),
    description: `cluster shape: ${options.nodes} nodes in aws mode (dist/herald-node.mjs, pids ${cluster.pids().join(', ')}), emulators in pid ${emulatorProcess.hello.pid}, clients connected directly to the nodes (user i → node i mod ${options.nodes})`,
    notes: [
      `publishing through ${path}`,
      `memory and CPU: the sum over the nodes of process_resident_memory_bytes / nodejs_heap_used_bytes / process_cpu_seconds_total from /metrics (no forced GC, so per-stream memory is noisier than the local shape's); the emulators' and the publisher's CPU are not counted`,
      `targets are the single-node ones; this shape measures the AWS path (DynamoDB, SNS, SQS long polls) on emulators sharing the machine's cores with ${options.nodes} nodes and the load clients`,
    ],
    publish,
    memory: readings.memory,
    cpu: readings.cpu,
    counters: readings.counters,
    perNode: readings.perNode,
    awsUsage: async (): Promise<AwsUsageSample> => ({
      publisher: lambda?.clients.meter.snapshot() ?? {},
      lambda: { invocations: lambda?.invocations.count ?? 0, wallMs: lambda?.invocations.wallMs ?? 0 },
      nodes: await readings.usage(),
    }),
    bus,
    otherCpuSeconds: async () => {
      const bench = process.cpuUsage(benchCpuAtStart);
      return {
        'emulators (fauxqs + dynalite)': ((await emulatorCpu()) - emulatorCpuAtStart) / 1e6,
        [`bench process (${options.publishVia === 'http' ? 'HTTP publisher' : 'Lambda handler'}, load-client coordination)`]: (bench.user + bench.system) / 1e6,
      };
    },
    stop: async () => {
      http?.close();
      for (const clients of lambda ? [lambda.clients, busClients] : [busClients]) for (const client of [clients.sns, clients.sqs, clients.dynamo]) client.destroy();
      await cluster.stop();
      await emulators.stop();
      await emulatorProcess.stop();
      entry.dispose();
    },
  };
}
