/**
 * The measured phases, run with every stream open. Each publish carries
 * `{"b": tag, "t": ns since the epoch}` in its data, stamped just before the
 * POST; the client process that reads it stamps its own arrival on the same
 * monotonic clock, so no phase needs the publisher and the reader in one process.
 */
import type { ClientFleet } from './client-fleet';
import type { LoopDelay } from './ipc';
import type { NodeUnderTest, Notification, PublishBody } from './shape';
import { LatencyHistogram, median } from './stats';

export interface BenchContext {
  readonly node: NodeUnderTest;
  readonly fleet: ClientFleet;
  /** Users whose stream is open: the only ones a unicast targets. */
  readonly users: readonly number[];
  readonly epochNs: bigint;
  readonly log: (line: string) => void;
}

const EVENT = 'bench';

function nowNs(context: BenchContext): number {
  return Number(process.hrtime.bigint() - context.epochNs);
}

function randomUser(context: BenchContext): string {
  return `u${context.users[Math.floor(Math.random() * context.users.length)]!}`;
}

function unicast(context: BenchContext, tag: string, ttl?: number): Notification {
  const notification = { to: { users: [randomUser(context)] }, event: EVENT, data: { b: tag, t: nowNs(context) } };
  return ttl === undefined ? notification : { ...notification, ttl };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Publishes whose answer was not 202, by status (or transport error). */
class Refusals {
  readonly byStatus: Record<string, number> = {};
  total = 0;

  add(status: string, n: number): void {
    this.byStatus[status] = (this.byStatus[status] ?? 0) + n;
    this.total += n;
  }

  async publish(node: NodeUnderTest, body: PublishBody, n: number): Promise<boolean> {
    try {
      const { status } = await node.publish(body);
      if (status === 202) return true;
      this.add(String(status), n);
    } catch (error) {
      this.add((error as NodeJS.ErrnoException).code ?? 'error', n);
    }
    return false;
  }
}

export interface UnicastResult {
  /** The node's event-loop delay during the phase, where the shape can tell. */
  readonly nodeLoopDelay: LoopDelay | undefined;
  readonly sent: number;
  readonly received: number;
  readonly refused: Record<string, number>;
  readonly latency: LatencyHistogram;
}

/** `samples` publishes to random connected users, one at a time: each POST waits for the previous answer. */
export async function unicastLatency(context: BenchContext, samples: number, tag = 'u'): Promise<UnicastResult> {
  const refusals = new Refusals();
  await context.node.loopDelay?.start();
  for (let i = 0; i < samples; i++) await refusals.publish(context.node, unicast(context, tag), 1);
  const total = await context.fleet.waitFor(tag, samples - refusals.total, { timeoutMs: 15_000, quietMs: 3_000 });
  const nodeLoopDelay = await context.node.loopDelay?.stop();
  return { nodeLoopDelay, sent: samples, received: total.count, refused: refusals.byStatus, latency: total.latency };
}

export interface BroadcastResult {
  /** Per round: from just before the POST to the last client's read, in ms. */
  readonly roundsMs: number[];
  /** Per round: how many streams read it. */
  readonly reached: number[];
  readonly expected: number;
  readonly medianMs: number;
  /** Publish→read of every recipient of every round. */
  readonly latency: LatencyHistogram;
  readonly nodeCpuUs: number;
  readonly refused: Record<string, number>;
}

/** `rounds` broadcasts, one at a time, each waited for until every open stream has read it. */
export async function broadcastFanOut(context: BenchContext, rounds: number, expected: number): Promise<BroadcastResult> {
  const roundsMs: number[] = [];
  const reached: number[] = [];
  const latency = new LatencyHistogram();
  const refusals = new Refusals();
  const cpuBefore = await context.node.cpu();
  for (let round = 0; round < rounds; round++) {
    const tag = `b${round}`;
    const sentNs = nowNs(context);
    const ok = await refusals.publish(context.node, { to: { all: true }, event: EVENT, data: { b: tag, t: sentNs } }, 1);
    if (!ok) continue;
    const total = await context.fleet.waitFor(tag, expected, { timeoutMs: 30_000, quietMs: 5_000 });
    roundsMs.push((total.lastArrivalNs - sentNs) / 1e6);
    reached.push(total.count);
    latency.merge(total.latency);
    // Let the clients' read loops go idle, so rounds do not overlap.
    await sleep(200);
  }
  const nodeCpuUs = (await context.node.cpu()).totalUs - cpuBefore.totalUs;
  return { roundsMs, reached, expected, medianMs: median(roundsMs), latency, nodeCpuUs, refused: refusals.byStatus };
}

export interface SustainedOptions {
  readonly durationS: number;
  /** Concurrent keep-alive publish connections. */
  readonly publishers: number;
  /** Notifications per POST (`{notifications:[…]}` when above 1). */
  readonly batch: number;
  /** Open-loop notifications per second; undefined = closed loop, as fast as the node answers. */
  readonly rate: number | undefined;
  /** `ttl` of each notification; undefined leaves the node's default. */
  readonly ttl: number | undefined;
}

export interface SustainedResult {
  readonly mode: string;
  readonly batch: number;
  readonly ttl: number | undefined;
  readonly sent: number;
  readonly accepted: number;
  readonly received: number;
  readonly lost: number;
  readonly refused: Record<string, number>;
  /** Open loop only: batches not sent because too many were already in flight. */
  readonly skipped: number;
  readonly publishSeconds: number;
  /** From the first publish to the last read. */
  readonly deliverySeconds: number;
  readonly deliveriesPerSecond: number;
  readonly nodeCpuUs: number;
  /** The kernel's share of `nodeCpuUs`, where the shape can tell. */
  readonly nodeSystemCpuUs: number | undefined;
  readonly clientCpuUs: number;
  /** CPU of this process (the publisher, and the clients' coordination) over the phase. */
  readonly publisherCpuUs: number;
  readonly latency: LatencyHistogram;
}

function batchBody(context: BenchContext, size: number, tag: string, ttl: number | undefined): PublishBody {
  if (size === 1) return unicast(context, tag, ttl);
  return { notifications: Array.from({ length: size }, () => unicast(context, tag, ttl)) };
}

/** Bound on open-loop batches in flight, so an unreachable rate cannot queue without limit. */
const MAX_IN_FLIGHT = 256;

/**
 * Publishes unicasts (in batches) for `durationS`, then waits for the clients
 * to read all that was accepted. LOST is sent minus read after the settle
 * (refused publishes count as lost, and are listed by status).
 */
export async function sustainedDeliveries(context: BenchContext, options: SustainedOptions, tag = 's'): Promise<SustainedResult> {
  const refusals = new Refusals();
  let sent = 0;
  let accepted = 0;
  let skipped = 0;
  const send = async (): Promise<void> => {
    sent += options.batch;
    if (await refusals.publish(context.node, batchBody(context, options.batch, tag, options.ttl), options.batch)) accepted += options.batch;
  };

  const [cpuBefore, clientsBefore] = await Promise.all([context.node.cpu(), context.fleet.report([])]);
  const publisherBefore = process.cpuUsage();
  const startNs = nowNs(context);
  const started = performance.now();
  const endAt = started + options.durationS * 1000;
  if (options.rate === undefined) {
    const worker = async (): Promise<void> => {
      while (performance.now() < endAt) await send();
    };
    await Promise.all(Array.from({ length: options.publishers }, worker));
  } else {
    // Open loop: batches are due at the rate whatever the answers; the agent queues them on its sockets.
    const batchesPerMs = options.rate / options.batch / 1000;
    const inFlight = new Set<Promise<void>>();
    let issued = 0;
    while (performance.now() < endAt) {
      const due = Math.floor((performance.now() - started) * batchesPerMs) - issued;
      for (let i = 0; i < due; i++, issued++) {
        if (inFlight.size >= MAX_IN_FLIGHT) {
          skipped++;
          continue;
        }
        const request = send().finally(() => inFlight.delete(request));
        inFlight.add(request);
      }
      await sleep(2);
    }
    await Promise.all(inFlight);
  }
  const publishSeconds = (performance.now() - started) / 1000;

  const total = await context.fleet.waitFor(tag, accepted, { timeoutMs: 60_000, quietMs: 5_000, pollMs: 100 });
  const [cpuAfter, clientsAfter] = await Promise.all([context.node.cpu(), context.fleet.report([])]);
  const publisher = process.cpuUsage(publisherBefore);
  const deliverySeconds = Math.max(1e-9, (total.lastArrivalNs - startNs) / 1e9);
  return {
    mode: options.rate === undefined ? `closed loop, ${options.publishers} connections` : `open loop at ${options.rate}/s, ${options.publishers} connections`,
    batch: options.batch,
    ttl: options.ttl,
    sent,
    accepted,
    received: total.count,
    lost: sent - total.count,
    refused: refusals.byStatus,
    skipped,
    publishSeconds,
    deliverySeconds,
    deliveriesPerSecond: total.count / deliverySeconds,
    nodeCpuUs: cpuAfter.totalUs - cpuBefore.totalUs,
    nodeSystemCpuUs: cpuAfter.systemUs === undefined || cpuBefore.systemUs === undefined ? undefined : cpuAfter.systemUs - cpuBefore.systemUs,
    clientCpuUs: clientsAfter.cpuUs - clientsBefore.cpuUs,
    publisherCpuUs: publisher.user + publisher.system,
    latency: total.latency,
  };
}
