/**
 * What the bench measures through: a node (or, later, a cluster) it can
 * publish to, ask for memory and CPU, and stop. A shape is a function that
 * starts one; `local` runs a node in its own process. An AWS cluster shape
 * plugs in as another entry of `SHAPES`, returning the same interface.
 */
import type { LoopDelay } from './ipc';
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
}

export interface CpuSample {
  /** User + system, in µs. */
  readonly totalUs: number;
  /** System (kernel) time alone, where the shape can tell: on loopback, TCP sends are charged here. */
  readonly systemUs?: number;
}

export interface NodeUnderTest {
  /** Base URL the clients connect to (`GET /events`). */
  readonly url: string;
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
}

export type Shape = (options: ShapeOptions) => Promise<NodeUnderTest>;

export const SHAPES: Readonly<Record<string, Shape>> = {
  local: startLocalShape,
};
