/**
 * CloudWatch embedded metric format (EMF): one JSON log line a minute from
 * which CloudWatch Logs extracts metrics, with no PutMetricData call and no
 * agent. ECS scales on ActiveConnections per task (docs/operations.md,
 * "Scaling"). Spec: docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/
 * CloudWatch_Embedded_Metric_Format_Specification.html — a metric target is a
 * number (or an array of at most 100 numbers) on the root node.
 */
import type { Env } from '../shared/settings';
import type { Histogram, NodeMetrics } from './metrics';

export const EMF_NAMESPACE = 'Herald';
export const DEFAULT_SERVICE_NAME = 'herald';

type Unit = 'Count' | 'Milliseconds';

export interface EmfSample {
  readonly timestampMs: number;
  readonly serviceName: string;
  /** Open streams now. */
  readonly activeConnections: number;
  /** Events written to streams since the previous line. */
  readonly deliveries: number;
  /** Streams cut for not reading, since the previous line. */
  readonly slowConsumerCuts: number;
  /** Estimated p99 of publish→write since the previous line; absent when nothing was written. */
  readonly publishToWriteP99Ms?: number | undefined;
}

export interface EmfRecord {
  readonly _aws: {
    readonly Timestamp: number;
    readonly CloudWatchMetrics: readonly [
      {
        readonly Namespace: string;
        readonly Dimensions: readonly (readonly string[])[];
        readonly Metrics: readonly { readonly Name: string; readonly Unit: Unit }[];
      },
    ];
  };
  readonly [member: string]: unknown;
}

/** The EMF document for one sample: one dimension set, [["ServiceName"]]. */
export function emfRecord(sample: EmfSample): EmfRecord {
  const values: [string, Unit, number][] = [
    ['ActiveConnections', 'Count', sample.activeConnections],
    ['Deliveries', 'Count', sample.deliveries],
    ['SlowConsumerCuts', 'Count', sample.slowConsumerCuts],
  ];
  // A metric with no observation is left out rather than reported as 0 ms.
  if (sample.publishToWriteP99Ms !== undefined) values.push(['PublishToWriteMs', 'Milliseconds', sample.publishToWriteP99Ms]);
  return {
    _aws: {
      Timestamp: Math.round(sample.timestampMs),
      CloudWatchMetrics: [{ Namespace: EMF_NAMESPACE, Dimensions: [['ServiceName']], Metrics: values.map(([Name, Unit]) => ({ Name, Unit })) }],
    },
    ServiceName: sample.serviceName,
    ...Object.fromEntries(values.map(([name, , value]) => [name, value])),
  };
}

export function emfServiceName(env: Env): string {
  return env.HERALD_SERVICE_NAME?.trim() || DEFAULT_SERVICE_NAME;
}

/** The histogram's finite bucket bounds in ms, read from its own rendering so they cannot drift from metrics.ts. */
export function bucketBoundsMs(histogram: Histogram): number[] {
  const bounds: number[] = [];
  for (const line of histogram.render('h')) {
    const match = /^h_bucket\{le="([^"]+)"\}/.exec(line);
    if (match?.[1] !== undefined && match[1] !== '+Inf') bounds.push(Number(match[1]) * 1000);
  }
  return bounds;
}

/**
 * The q-quantile of bucketed observations, interpolated linearly inside its
 * bucket as Prometheus's histogram_quantile does. Observations above the last
 * bound report that bound: the histogram knows no more about them.
 */
export function quantileMs(counts: readonly number[], overflow: number, boundsMs: readonly number[], q: number): number | undefined {
  const total = counts.reduce((a, b) => a + b, 0) + overflow;
  if (total === 0) return undefined;
  const rank = q * total;
  let below = 0;
  for (let i = 0; i < counts.length; i++) {
    const n = counts[i] ?? 0;
    if (n > 0 && below + n >= rank) {
      const lower = i === 0 ? 0 : (boundsMs[i - 1] ?? 0);
      const upper = boundsMs[i] ?? lower;
      return Math.round((lower + ((upper - lower) * (rank - below)) / n) * 1000) / 1000;
    }
    below += n;
  }
  return boundsMs.at(-1);
}

/** Counter growth since the previous reading; a counter that went down was reset, so all of it is new. */
function grew(now: number, before: number): number {
  return now >= before ? now - before : now;
}

/**
 * Turns the node's running counters into per-interval EMF lines. Call `next`
 * every 60 s; the first line covers everything since the counters started.
 */
export class EmfReporter {
  private deliveries = 0;
  private slowConsumerCuts = 0;
  private buckets: readonly number[] = [];
  private overflow = 0;
  private readonly boundsMs: readonly number[];

  constructor(
    private readonly metrics: NodeMetrics,
    private readonly serviceName: string = DEFAULT_SERVICE_NAME,
  ) {
    this.boundsMs = bucketBoundsMs(metrics.publishToWrite);
  }

  next(timestampMs: number, activeConnections: number): EmfRecord {
    const { deliveries, drops, publishToWrite } = this.metrics;
    const buckets = [...publishToWrite.counts];
    const overflow = publishToWrite.count - buckets.reduce((a, b) => a + b, 0);
    const sample: EmfSample = {
      timestampMs,
      serviceName: this.serviceName,
      activeConnections,
      deliveries: grew(deliveries, this.deliveries),
      slowConsumerCuts: grew(drops.slow_consumer, this.slowConsumerCuts),
      publishToWriteP99Ms: quantileMs(
        buckets.map((n, i) => grew(n, this.buckets[i] ?? 0)),
        grew(overflow, this.overflow),
        this.boundsMs,
        0.99,
      ),
    };
    this.deliveries = deliveries;
    this.slowConsumerCuts = drops.slow_consumer;
    this.buckets = buckets;
    this.overflow = overflow;
    return emfRecord(sample);
  }

  /** `next` as the one line to write to stdout, where the awslogs driver ships it to CloudWatch Logs. */
  line(timestampMs: number, activeConnections: number): string {
    return JSON.stringify(this.next(timestampMs, activeConnections));
  }
}
