/**
 * The node's Prometheus metrics, rendered in text exposition format 0.0.4.
 * Kept to plain counters and one histogram: the hot path only adds numbers.
 */

/** Upper bounds, in seconds, of the publish→write latency buckets. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** Why an event was not written to a stream: the stream was cut for not reading (the event is still in history). */
export type DropReason = 'slow_consumer';

export class Histogram {
  readonly counts = new Array<number>(LATENCY_BUCKETS.length).fill(0);
  sum = 0;
  count = 0;

  observe(seconds: number): void {
    this.sum += seconds;
    this.count++;
    for (let i = 0; i < LATENCY_BUCKETS.length; i++) {
      if (seconds <= LATENCY_BUCKETS[i]!) {
        this.counts[i]!++;
        return;
      }
    }
  }

  render(name: string): string[] {
    const lines: string[] = [];
    let cumulative = 0;
    LATENCY_BUCKETS.forEach((le, i) => {
      cumulative += this.counts[i]!;
      lines.push(`${name}_bucket{le="${le}"} ${cumulative}`);
    });
    lines.push(`${name}_bucket{le="+Inf"} ${this.count}`, `${name}_sum ${this.sum}`, `${name}_count ${this.count}`);
    return lines;
  }
}

/** One operation's counts, as the aws adapters' request meter keeps them (adapters/aws/request-meter.ts). */
export interface AwsOperationUsage {
  readonly requests: number;
  readonly billedRequests: number;
  readonly readUnits: number;
  readonly writeUnits: number;
  readonly messages: number;
  readonly emptyReceives: number;
}

/** What the node's SDK clients sent so far, keyed `service.operation` (aws mode only). */
export interface AwsUsageSource {
  snapshot(): Readonly<Record<string, AwsOperationUsage>>;
}

/** The AWS request families, one sample per `service.operation` seen (none before the first request). */
export function renderAwsUsage(usage: Readonly<Record<string, AwsOperationUsage>>): string[] {
  const entries = Object.entries(usage)
    .map(([key, counts]) => {
      const dot = key.indexOf('.');
      return { service: key.slice(0, dot), operation: key.slice(dot + 1), counts };
    })
    .sort((a, b) => a.service.localeCompare(b.service) || a.operation.localeCompare(b.operation));
  const labels = (e: { service: string; operation: string }): string => `service="${e.service}",operation="${e.operation}"`;
  const family = (name: string, type: string, help: string, samples: string[]): string[] => [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...samples];
  const dynamo = entries.filter((e) => e.service === 'DynamoDB');
  const units = dynamo.flatMap((e) => [
    ...(e.counts.readUnits > 0 ? [`herald_dynamodb_capacity_units_total{operation="${e.operation}",kind="read"} ${e.counts.readUnits}`] : []),
    ...(e.counts.writeUnits > 0 ? [`herald_dynamodb_capacity_units_total{operation="${e.operation}",kind="write"} ${e.counts.writeUnits}`] : []),
  ]);
  const receives = entries.filter((e) => e.service === 'SQS' && e.operation === 'ReceiveMessage');
  return [
    ...family('herald_aws_requests_total', 'counter', 'AWS API requests sent by this node, retries included, by service and operation.', entries.map((e) => `herald_aws_requests_total{${labels(e)}} ${e.counts.requests}`)),
    ...family('herald_aws_billed_requests_total', 'counter', 'AWS API requests as billed: for SNS and SQS each 64 KiB chunk of payload counts as one.', entries.map((e) => `herald_aws_billed_requests_total{${labels(e)}} ${e.counts.billedRequests}`)),
    ...family('herald_aws_messages_total', 'counter', 'SNS/SQS messages carried: received by ReceiveMessage, entries of batch calls, one per Publish.', entries.filter((e) => e.service !== 'DynamoDB').map((e) => `herald_aws_messages_total{${labels(e)}} ${e.counts.messages}`)),
    ...family('herald_sqs_empty_receives_total', 'counter', 'ReceiveMessage answers that carried no message (empty long polls).', receives.map((e) => `herald_sqs_empty_receives_total ${e.counts.emptyReceives}`)),
    ...family('herald_dynamodb_capacity_units_total', 'counter', 'DynamoDB request units consumed, as DynamoDB reports them, by operation and kind.', units),
  ];
}

export class NodeMetrics {
  connectionsOpened = 0;
  deliveries = 0;
  replayed = 0;
  refusals = new Map<string, number>();
  drops: Record<DropReason, number> = { slow_consumer: 0 };
  closes = new Map<string, number>();
  published = 0;
  busMessages = 0;
  /** Sockets closed unanswered at the socket cap (HERALD_MAX_SOCKETS). */
  socketsDropped = 0;
  readonly publishToWrite = new Histogram();
  /** Set in aws mode: the AWS request families are rendered from it. */
  aws: AwsUsageSource | undefined;

  refused(code: string): void {
    this.refusals.set(code, (this.refusals.get(code) ?? 0) + 1);
  }

  closed(reason: string): void {
    this.closes.set(reason, (this.closes.get(reason) ?? 0) + 1);
  }

  render(gauges: { connections: number; users: number; draining: boolean }): string {
    const memory = process.memoryUsage();
    const cpu = process.cpuUsage();
    const out: string[] = [];
    const metric = (name: string, type: string, help: string, samples: string[]): void => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...samples);
    };
    const labelled = (name: string, label: string, values: Iterable<[string, number]>): string[] =>
      [...values].map(([value, n]) => `${name}{${label}="${value}"} ${n}`);

    metric('herald_connections', 'gauge', 'Open event streams on this node.', [`herald_connections ${gauges.connections}`]);
    metric('herald_users', 'gauge', 'Distinct users with an open stream on this node.', [`herald_users ${gauges.users}`]);
    metric('herald_draining', 'gauge', '1 while the node is shutting down.', [`herald_draining ${gauges.draining ? 1 : 0}`]);
    metric('herald_connections_opened_total', 'counter', 'Event streams opened.', [`herald_connections_opened_total ${this.connectionsOpened}`]);
    metric('herald_connections_closed_total', 'counter', 'Event streams closed, by reason.', labelled('herald_connections_closed_total', 'reason', this.closes));
    metric('herald_refusals_total', 'counter', 'Requests refused, by error code.', labelled('herald_refusals_total', 'code', this.refusals));
    metric('herald_deliveries_total', 'counter', 'Events written to streams (live).', [`herald_deliveries_total ${this.deliveries}`]);
    metric('herald_replayed_total', 'counter', 'Events written to streams from history on reconnect.', [`herald_replayed_total ${this.replayed}`]);
    metric('herald_drops_total', 'counter', 'Events not written, by reason.', labelled('herald_drops_total', 'reason', Object.entries(this.drops)));
    metric('herald_published_total', 'counter', 'Notifications accepted by this node\'s publish route.', [`herald_published_total ${this.published}`]);
    metric('herald_bus_messages_total', 'counter', 'Bus messages handled by this node.', [`herald_bus_messages_total ${this.busMessages}`]);
    metric('herald_sockets_dropped_total', 'counter', 'Sockets closed unanswered because the node held HERALD_MAX_SOCKETS.', [`herald_sockets_dropped_total ${this.socketsDropped}`]);
    metric('herald_publish_to_write_seconds', 'histogram', 'From publish accepted to the event written to its streams on this node.', this.publishToWrite.render('herald_publish_to_write_seconds'));
    if (this.aws) out.push(...renderAwsUsage(this.aws.snapshot()));
    metric('process_resident_memory_bytes', 'gauge', 'Resident memory size in bytes.', [`process_resident_memory_bytes ${memory.rss}`]);
    metric('nodejs_heap_used_bytes', 'gauge', 'V8 heap in use, in bytes.', [`nodejs_heap_used_bytes ${memory.heapUsed}`]);
    metric('process_cpu_seconds_total', 'counter', 'User and system CPU time spent, in seconds.', [`process_cpu_seconds_total ${(cpu.user + cpu.system) / 1e6}`]);
    return out.join('\n') + '\n';
  }
}
