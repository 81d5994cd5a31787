/**
 * What the bench measures through: a node (or a cluster) it can publish to,
 * ask for memory and CPU, and stop. A shape is a function that starts one;
 * `local` runs a node in its own process, `cluster` the AWS shape on this
 * machine (nodes in aws mode on the emulators, publishing through the Lambda
 * handler), `redis` nodes on one redis-server, and `nchan` is not Herald but
 * nginx + Nchan, the same phases' reference. Each is an entry of `SHAPES`,
 * returning the same interface.
 */
import type { UsageSnapshot } from '../../services/adapters/aws/request-meter';
import type { BusSender } from '../../services/ports/bus';
import type { LoopDelay, StreamSpec } from './ipc';
import type { PublishOutcome } from './publisher';
import { startLocalShape } from './local-shape';

export interface Notification {
  readonly to: { readonly users: readonly string[] } | { readonly all: true };
  readonly event: string;
  readonly data: unknown;
  readonly ttl?: number;
}

export type PublishBody = Notification | { readonly notifications: readonly Notification[] };

export interface MemorySample {
  readonly rss: number;
  readonly heapUsed: number;
  /** V8 heap committed (used or not); the local shape only. */
  readonly heapTotal?: number;
  /** Memory of C++ objects bound to JS (Buffers included); the local shape only. */
  readonly external?: number;
  /** True when a full GC ran just before the sample (local shape); /metrics cannot force one. */
  readonly afterGc: boolean;
  /** How `rss` splits, where the target is several processes (nginx: master and worker), plus other memory figures, in bytes. */
  readonly parts?: Readonly<Record<string, number>>;
}

export interface CpuSample {
  /** User + system, in µs. */
  readonly totalUs: number;
  /** System (kernel) time alone, where the shape can tell: on loopback, TCP sends are charged here. */
  readonly systemUs?: number;
}

/** One node of a cluster, from its /metrics. */
export interface NodeBreakdown {
  readonly id: string;
  readonly connections: number;
  readonly rss: number;
  readonly cpuSeconds: number;
  readonly busMessages: number;
  readonly deliveries: number;
}

/** One node's request meter, CPU and counters, from its /metrics (cluster shape). */
export interface NodeAwsUsage {
  readonly id: string;
  readonly usage: UsageSnapshot;
  readonly cpuSeconds: number;
  readonly busMessages: number;
  readonly deliveries: number;
}

/** What the cluster's AWS clients have sent so far: the in-process publisher's and each node's. */
export interface AwsUsageSample {
  /** The request meter of the Lambda handler's clients (empty with `--publish-via http`: the nodes publish). */
  readonly publisher: UsageSnapshot;
  /** Lambda handler invocations and their summed wall time, in the bench process. */
  readonly lambda: { readonly invocations: number; readonly wallMs: number };
  readonly nodes: readonly NodeAwsUsage[];
}

export interface NodeUnderTest {
  /** Base URL the clients connect to (`GET /events`). */
  readonly url: string;
  /** Streams that are not a Herald node's (`--compare nchan`): how the clients open them. */
  readonly stream?: StreamSpec;
  /** Notifications one POST can carry; absent: a Herald node's 100. Nchan takes one message per POST. */
  readonly maxBatch?: number;
  /** Several nodes: the clients spread their streams evenly over these (user i → urls[i mod n]) instead of `url`. */
  readonly urls?: readonly string[];
  /** Lines printed under the table: how the figures were taken. */
  readonly notes?: readonly string[];
  /** Per-node figures of a cluster, sampled at idle and at the end. */
  perNode?(): Promise<NodeBreakdown[]>;
  /** The AWS requests counted so far (cluster shape): what the cost phase prices. */
  awsUsage?(): Promise<AwsUsageSample>;
  /**
   * The cluster's bus, to send to as a publisher would after its history
   * write and owners lookup (cluster shape): the cost phase drives the nodes'
   * receive path with it at a rate the emulated publish path cannot reach.
   */
  readonly bus?: { readonly sender: BusSender; nodeOf(user: number): string };
  /** CPU seconds used since start by the shape's other processes (emulators, an in-process publisher), by name. */
  otherCpuSeconds?(): Promise<Record<string, number>>;
  readonly description: string;
  publish(body: PublishBody): Promise<PublishOutcome>;
  memory(): Promise<MemorySample>;
  /** CPU time the node has used so far. */
  cpu(): Promise<CpuSample>;
  /** The node's herald_* counters (from /metrics). */
  counters(): Promise<Map<string, number>>;
  /** The node's event-loop delay over a window; absent when the shape cannot measure it. */
  readonly loopDelay?: {
    start(): Promise<void>;
    stop(): Promise<LoopDelay>;
  };
  /** CPU profile of a window, written as a .cpuprofile; absent when the shape cannot profile. */
  readonly profiler?: {
    start(): Promise<void>;
    stop(path: string): Promise<void>;
    /** The file whose line numbers the profile refers to, to name the source module of each function. */
    readonly bundlePath: string;
  };
  stop(): Promise<void>;
}

export interface ShapeOptions {
  /** Connections the node must accept: its caps are set above this. */
  readonly connections: number;
  readonly secret: string;
  readonly publishToken: string;
  /** Keep-alive connections for publishing. */
  readonly publishers: number;
  /** Where the bundles are (see build.ts). */
  readonly buildDir: string;
  /** Nodes of the cluster shape. */
  readonly nodes: number;
  /** How the cluster shape publishes: the Lambda handler (→ SNS → SQS → node) or a node's POST /publish. */
  readonly publishVia: 'lambda' | 'http';
  /** Extra `node` flags for the local shape's node process (`--node-flags`). */
  readonly nodeFlags?: readonly string[];
}

export type Shape = (options: ShapeOptions) => Promise<NodeUnderTest>;

export const SHAPES: Readonly<Record<string, Shape>> = {
  local: startLocalShape,
  // Loaded on use: it brings the AWS SDK and the Lambda publisher, which the local shape does not need.
  cluster: async (options) => (await import('./cluster-shape')).startClusterShape(options),
  redis: async (options) => (await import('./redis-shape')).startRedisShape(options),
  // Not Herald: nginx + Nchan from Debian's packages, for `--compare nchan` (or alone).
  nchan: async (options) => (await import('./nchan-target')).startNchanTarget(options),
};
