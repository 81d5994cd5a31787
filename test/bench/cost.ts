/**
 * The cost phase (cluster shape): what a notification costs on AWS, from the
 * request meters of the clients the code itself uses — the in-process Lambda
 * handler's (services/adapters/aws/request-meter.ts) and each node's, read
 * from its /metrics. Three windows, each a diff of the meters:
 *
 * 1. idle, nothing published: the nodes' fixed cost (empty long polls, heartbeats);
 * 2. single publishes, one unicast per Lambda invocation, at `--cost-rate`;
 * 3. the same count in batches of 100 unicasts to distinct users;
 * 4. the nodes' side alone: single-event deliver messages sent straight to the
 *    bus (SNS PublishBatch, 10 a call, each to the node of its user) at
 *    `--cost-rate`, as the publish path would after its history write and
 *    lookup. The emulated publish path (dynalite, the in-process Lambda) tops
 *    out far below 1,000/s on this machine; this window is what measures the
 *    node's CPU per bus message at that rate.
 *
 * Each unicast carries 600 bytes of data to a user whose stream is open; users
 * are taken in turn, so they spread over the nodes (user i is on node i mod N).
 * cost-report.ts prices the windows.
 */
import { usageBetween, type OperationUsage, type UsageSnapshot } from '../../services/adapters/aws/request-meter';
import type { BusEntry } from '../../services/ports/bus';
import { newEventId } from '../../services/protocol/event-id';
import type { BenchContext } from './phases';
import type { AwsUsageSample, NodeUnderTest, Notification, PublishBody } from './shape';

/** Bytes of `data` in each notification, as JSON. */
export const COST_DATA_BYTES = 600;
export const COST_BATCH = 100;
/** Bus messages a call in the bus window: one SNS PublishBatch. */
const BUS_BATCH = 10;
/** Bound on invocations in flight: past it the loop waits, so the count is always sent in full. */
const MAX_IN_FLIGHT = 256;
/** Longer than the nodes' pooled-delete delay (200 ms), so every delete is in the meters when they are read. */
const FLUSH_MS = 1_500;

export interface CostOptions {
  /** Notifications in each of the two publishing windows (the batched one rounds up to whole batches). */
  readonly count: number;
  /** Notifications per second, open loop. */
  readonly rate: number;
  /** Seconds of the idle window; 0 leaves it out. */
  readonly idleS: number;
}

/** What happened between two samples of the meters. */
export interface UsageWindow {
  readonly seconds: number;
  readonly publisher: UsageSnapshot;
  readonly lambda: { readonly invocations: number; readonly wallMs: number };
  readonly nodes: ReadonlyArray<{ readonly id: string; readonly usage: UsageSnapshot; readonly cpuSeconds: number; readonly busMessages: number; readonly deliveries: number }>;
}

export interface CostWindowResult {
  readonly batch: number;
  readonly sent: number;
  readonly accepted: number;
  readonly received: number;
  readonly refused: Record<string, number>;
  readonly rate: number;
  /** Notifications sent per second, as achieved. */
  readonly achievedRate: number;
  readonly window: UsageWindow;
}

export interface CostResult {
  readonly idle: UsageWindow | undefined;
  readonly single: CostWindowResult;
  readonly batched: CostWindowResult;
  /** Straight to the bus, one event a message (absent when the shape has no bus to send to). */
  readonly bus: CostWindowResult | undefined;
  /** Streams closed and opened again with `Last-Event-ID`: what a token renewal costs. */
  readonly reconnects: ReconnectWindowResult;
  /** Distinct users the notifications went to. */
  readonly users: number;
}

export interface ReconnectWindowResult {
  readonly asked: number;
  readonly reopened: number;
  readonly failures: Record<string, number>;
  readonly window: UsageWindow;
}

/** Streams each client process reconnects in the reconnect window. */
const RECONNECTS_PER_CLIENT = 250;

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

const FAMILY = /^herald_aws_(requests|billed_requests|messages)_total\{service="([^"]+)",operation="([^"]+)"\}$/;
const UNITS = /^herald_dynamodb_capacity_units_total\{operation="([^"]+)",kind="(read|write)"\}$/;
const FIELD = { requests: 'requests', billed_requests: 'billedRequests', messages: 'messages' } as const;

/** A node's request meter, back from the samples of its /metrics (services/node/metrics.ts renders them). */
export function usageFromMetrics(values: ReadonlyMap<string, number>): UsageSnapshot {
  const usage: Record<string, Mutable<OperationUsage>> = {};
  const entry = (key: string): Mutable<OperationUsage> => (usage[key] ??= { requests: 0, billedRequests: 0, readUnits: 0, writeUnits: 0, messages: 0, emptyReceives: 0 });
  for (const [name, value] of values) {
    const family = FAMILY.exec(name);
    if (family) {
      entry(`${family[2]!}.${family[3]!}`)[FIELD[family[1] as keyof typeof FIELD]] = value;
      continue;
    }
    const units = UNITS.exec(name);
    if (units) entry(`DynamoDB.${units[1]!}`)[units[2] === 'read' ? 'readUnits' : 'writeUnits'] = value;
    else if (name === 'herald_sqs_empty_receives_total') entry('SQS.ReceiveMessage').emptyReceives = value;
  }
  return usage;
}

function between(before: AwsUsageSample, after: AwsUsageSample, seconds: number): UsageWindow {
  return {
    seconds,
    publisher: usageBetween(before.publisher, after.publisher),
    lambda: { invocations: after.lambda.invocations - before.lambda.invocations, wallMs: after.lambda.wallMs - before.lambda.wallMs },
    nodes: after.nodes.map((a) => {
      const b = before.nodes.find((n) => n.id === a.id);
      return {
        id: a.id,
        usage: b ? usageBetween(b.usage, a.usage) : a.usage,
        cpuSeconds: a.cpuSeconds - (b?.cpuSeconds ?? 0),
        busMessages: a.busMessages - (b?.busMessages ?? 0),
        deliveries: a.deliveries - (b?.deliveries ?? 0),
      };
    }),
  };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs `send(0…n-1)` at `perSecond`, waiting (not skipping) when too many are in flight. Returns the seconds it took. */
async function openLoop(n: number, perSecond: number, send: (i: number) => Promise<void>): Promise<number> {
  const started = performance.now();
  const inFlight = new Set<Promise<void>>();
  for (let i = 0; i < n; i++) {
    const wait = started + (i * 1000) / perSecond - performance.now();
    if (wait >= 1) await sleep(wait);
    while (inFlight.size >= MAX_IN_FLIGHT) await Promise.race(inFlight);
    const request = send(i).finally(() => inFlight.delete(request));
    inFlight.add(request);
  }
  await Promise.all(inFlight);
  return (performance.now() - started) / 1000;
}

/** `data` of about COST_DATA_BYTES, stamped for the load clients' latency and tag counts. */
function dataMaker(context: BenchContext, tag: string): () => { b: string; p: string; t: number } {
  const stamp = (): number => Number(process.hrtime.bigint() - context.epochNs);
  // The stamp grows by a digit now and then; the data stays within a byte or two of 600.
  const padding = 'x'.repeat(Math.max(0, COST_DATA_BYTES - JSON.stringify({ b: tag, p: '', t: stamp() }).length));
  return () => ({ b: tag, p: padding, t: stamp() });
}

function notifications(context: BenchContext, tag: string): (user: number) => Notification {
  const data = dataMaker(context, tag);
  return (user) => ({ to: { users: [`u${user}`] }, event: 'bench', data: data() });
}

/** Sends calls `i` of `batch` notifications each; answers the HTTP-like status of each call, or throws. */
type BatchSend = (i: number) => Promise<number>;

/** Publishes through the shape's publisher (the Lambda handler): `batch` notifications an invocation. */
function viaPublisher(context: BenchContext, batch: number, tag: string): BatchSend {
  const make = notifications(context, tag);
  const userAt = (k: number): number => context.users[k % context.users.length]!;
  return async (i) => {
    const body: PublishBody = batch === 1 ? make(userAt(i)) : { notifications: Array.from({ length: batch }, (_, j) => make(userAt(i * batch + j))) };
    return (await context.node.publish(body)).status;
  };
}

/** Sends `batch` single-event deliver messages a call straight to the bus, each to the node that holds its user. */
function viaBus(context: BenchContext, bus: NonNullable<NodeUnderTest['bus']>, batch: number, tag: string): BatchSend {
  const data = dataMaker(context, tag);
  const userAt = (k: number): number => context.users[k % context.users.length]!;
  return async (i) => {
    const entries: BusEntry[] = Array.from({ length: batch }, (_, j) => {
      const user = userAt(i * batch + j);
      const event = { id: newEventId(), event: 'bench', data: JSON.stringify(data()), to: { users: [`u${user}`] }, ttlSeconds: 0, publishedAtMs: Date.now() };
      return { message: { kind: 'deliver', events: [event] }, target: { node: bus.nodeOf(user) } };
    });
    await bus.sender.sendBatch(entries);
    return 202;
  };
}

async function costWindow(context: BenchContext, usage: () => Promise<AwsUsageSample>, options: CostOptions, batch: number, tag: string, sendCall: BatchSend): Promise<CostWindowResult> {
  const { fleet } = context;
  const invocations = Math.ceil(options.count / batch);
  const refused: Record<string, number> = {};
  let accepted = 0;
  const send = async (i: number): Promise<void> => {
    try {
      const status = await sendCall(i);
      if (status === 202) accepted += batch;
      else refused[String(status)] = (refused[String(status)] ?? 0) + batch;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'error';
      refused[code] = (refused[code] ?? 0) + batch;
    }
  };

  const before = await usage();
  const started = performance.now();
  const publishSeconds = await openLoop(invocations, options.rate / batch, send);
  const total = await fleet.waitFor(tag, accepted, { timeoutMs: 60_000, quietMs: 5_000, pollMs: 100 });
  await sleep(FLUSH_MS);
  const after = await usage();
  const sent = invocations * batch;
  return {
    batch,
    sent,
    accepted,
    received: total.count,
    refused,
    rate: options.rate,
    achievedRate: sent / Math.max(1e-9, publishSeconds),
    window: between(before, after, (performance.now() - started) / 1000),
  };
}

/** Streams closed and reopened from their last id, after the publishing windows (so most have one). */
async function reconnectWindow(context: BenchContext, usage: () => Promise<AwsUsageSample>): Promise<ReconnectWindowResult> {
  const asked = RECONNECTS_PER_CLIENT * context.fleet.size;
  context.log(`cost: ${asked} streams reconnect with Last-Event-ID…`);
  await sleep(FLUSH_MS);
  const before = await usage();
  const started = performance.now();
  const summary = await context.fleet.reconnect(RECONNECTS_PER_CLIENT, 16);
  await sleep(FLUSH_MS);
  return { asked, reopened: summary.opened.length, failures: summary.failures, window: between(before, await usage(), (performance.now() - started) / 1000) };
}

/** The idle window, then single publishes, then batches of 100: each measured by diffing the meters. */
export async function costPhases(context: BenchContext, node: NodeUnderTest, options: CostOptions): Promise<CostResult> {
  const usage = node.awsUsage?.bind(node);
  if (!usage) throw new Error('this shape has no request meters to read (the cost phase needs --shape cluster)');
  let idle: UsageWindow | undefined;
  if (options.idleS > 0) {
    context.log(`cost: idle for ${options.idleS} s (the nodes' fixed cost)…`);
    // Let the previous phase's deletes and retries finish first.
    await sleep(FLUSH_MS);
    const before = await usage();
    const started = performance.now();
    await sleep(options.idleS * 1000);
    idle = between(before, await usage(), (performance.now() - started) / 1000);
  }
  context.log(`cost: ${options.count} single publishes at ${options.rate}/s…`);
  const single = await costWindow(context, usage, options, 1, 'c1', viaPublisher(context, 1, 'c1'));
  context.log(`cost: ${Math.ceil(options.count / COST_BATCH) * COST_BATCH} notifications in batches of ${COST_BATCH} at ${options.rate}/s…`);
  const batched = await costWindow(context, usage, options, COST_BATCH, 'c100', viaPublisher(context, COST_BATCH, 'c100'));
  let bus: CostWindowResult | undefined;
  if (node.bus) {
    context.log(`cost: ${Math.ceil(options.count / BUS_BATCH) * BUS_BATCH} single-event bus messages straight to SNS at ${options.rate}/s…`);
    bus = await costWindow(context, usage, options, BUS_BATCH, 'cbus', viaBus(context, node.bus, BUS_BATCH, 'cbus'));
  }
  const reconnects = await reconnectWindow(context, usage);
  return { idle, single, batched, bus, reconnects, users: Math.min(context.users.length, Math.max(options.count, COST_BATCH)) };
}
