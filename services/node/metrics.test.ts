import { describe, expect, it } from 'vitest';
import { Histogram, NodeMetrics } from './metrics';

const BUCKETS = ['0.0005', '0.001', '0.002', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5'];

describe('Histogram', () => {
  it('renders every bucket at zero, then +Inf, sum and count, when nothing was observed', () => {
    expect(new Histogram().render('h')).toEqual([
      ...BUCKETS.map((le) => `h_bucket{le="${le}"} 0`),
      'h_bucket{le="+Inf"} 0',
      'h_sum 0',
      'h_count 0',
    ]);
  });

  it('renders cumulative buckets, with each upper bound inclusive', () => {
    const histogram = new Histogram();
    for (const seconds of [0.25, 0.5, 0.5, 2.5, 10]) histogram.observe(seconds);
    const cumulative = [0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 3, 4, 4];
    expect(histogram.render('herald_x_seconds')).toEqual([
      ...BUCKETS.map((le, i) => `herald_x_seconds_bucket{le="${le}"} ${cumulative[i]}`),
      'herald_x_seconds_bucket{le="+Inf"} 5',
      'herald_x_seconds_sum 13.75',
      'herald_x_seconds_count 5',
    ]);
  });

  it('puts a value at a bound in that bucket and a value just above it in the next', () => {
    const histogram = new Histogram();
    histogram.observe(0.0005);
    histogram.observe(0.00050001);
    expect(histogram.counts.slice(0, 3)).toEqual([1, 1, 0]);
  });

  it('counts a value above the last bound only in +Inf, sum and count', () => {
    const histogram = new Histogram();
    histogram.observe(6);
    expect(histogram.counts.every((n) => n === 0)).toBe(true);
    expect(histogram.render('h').slice(-3)).toEqual(['h_bucket{le="+Inf"} 1', 'h_sum 6', 'h_count 1']);
  });
});

describe('NodeMetrics.render', () => {
  const METRICS: readonly [string, string][] = [
    ['herald_connections', 'gauge'],
    ['herald_users', 'gauge'],
    ['herald_draining', 'gauge'],
    ['herald_connections_opened_total', 'counter'],
    ['herald_connections_closed_total', 'counter'],
    ['herald_refusals_total', 'counter'],
    ['herald_deliveries_total', 'counter'],
    ['herald_replayed_total', 'counter'],
    ['herald_drops_total', 'counter'],
    ['herald_published_total', 'counter'],
    ['herald_bus_messages_total', 'counter'],
    ['herald_sockets_dropped_total', 'counter'],
    ['herald_publish_to_write_seconds', 'histogram'],
    ['process_resident_memory_bytes', 'gauge'],
    ['nodejs_heap_used_bytes', 'gauge'],
    ['process_cpu_seconds_total', 'counter'],
  ];

  function rendered(): { text: string; lines: string[] } {
    const metrics = new NodeMetrics();
    metrics.connectionsOpened = 7;
    metrics.deliveries = 42;
    metrics.replayed = 3;
    metrics.published = 11;
    metrics.busMessages = 13;
    metrics.socketsDropped = 4;
    metrics.drops.slow_consumer = 2;
    metrics.refused('token_invalid');
    metrics.refused('token_invalid');
    metrics.refused('rate_limited');
    metrics.closed('client_closed');
    metrics.publishToWrite.observe(0.003);
    const text = metrics.render({ connections: 5, users: 4, draining: true });
    return { text, lines: text.split('\n') };
  }

  it.each(METRICS)('declares %s as a %s with HELP then TYPE lines', (name, type) => {
    const { lines } = rendered();
    const help = lines.findIndex((line) => line.startsWith(`# HELP ${name} `));
    expect(help).toBeGreaterThanOrEqual(0);
    expect(lines[help + 1]).toBe(`# TYPE ${name} ${type}`);
    expect(lines.filter((line) => line.startsWith(`# TYPE ${name} `))).toHaveLength(1);
  });

  it('declares each metric exactly once, in order', () => {
    const { lines } = rendered();
    expect(lines.filter((line) => line.startsWith('# TYPE ')).map((line) => line.split(' ')[2])).toEqual(METRICS.map(([name]) => name));
  });

  it('renders the gauges and counters it was given', () => {
    const { lines } = rendered();
    for (const sample of [
      'herald_connections 5',
      'herald_users 4',
      'herald_draining 1',
      'herald_connections_opened_total 7',
      'herald_connections_closed_total{reason="client_closed"} 1',
      'herald_refusals_total{code="token_invalid"} 2',
      'herald_refusals_total{code="rate_limited"} 1',
      'herald_deliveries_total 42',
      'herald_replayed_total 3',
      'herald_drops_total{reason="slow_consumer"} 2',
      'herald_published_total 11',
      'herald_bus_messages_total 13',
      'herald_sockets_dropped_total 4',
      'herald_publish_to_write_seconds_bucket{le="0.005"} 1',
      'herald_publish_to_write_seconds_count 1',
    ]) {
      expect(lines).toContain(sample);
    }
  });

  it('renders draining as 0 when not draining', () => {
    expect(new NodeMetrics().render({ connections: 0, users: 0, draining: false }).split('\n')).toContain('herald_draining 0');
  });

  it('renders process metrics as numbers', () => {
    const { lines } = rendered();
    for (const name of ['process_resident_memory_bytes', 'nodejs_heap_used_bytes', 'process_cpu_seconds_total']) {
      const sample = lines.find((line) => line.startsWith(`${name} `));
      expect(sample).toMatch(new RegExp(`^${name} \\d+(\\.\\d+)?(e[-+]?\\d+)?$`));
    }
  });

  it('ends with a newline and has no blank lines, as the exposition format requires', () => {
    const { text, lines } = rendered();
    expect(text.endsWith('\n')).toBe(true);
    expect(lines.slice(0, -1).filter((line) => line === '')).toEqual([]);
  });
});

describe('NodeMetrics.render in aws mode', () => {
  const usage = {
    'SQS.ReceiveMessage': { requests: 12, billedRequests: 12, readUnits: 0, writeUnits: 0, messages: 30, emptyReceives: 4 },
    'DynamoDB.PutItem': { requests: 3, billedRequests: 3, readUnits: 0, writeUnits: 6, messages: 0, emptyReceives: 0 },
    'DynamoDB.Query': { requests: 2, billedRequests: 2, readUnits: 1.5, writeUnits: 0, messages: 0, emptyReceives: 0 },
    'SNS.PublishBatch': { requests: 1, billedRequests: 2, readUnits: 0, writeUnits: 0, messages: 10, emptyReceives: 0 },
  };

  function lines(): string[] {
    const metrics = new NodeMetrics();
    metrics.aws = { snapshot: () => usage };
    return metrics.render({ connections: 0, users: 0, draining: false }).split('\n');
  }

  it.each([
    ['herald_aws_requests_total', 'counter'],
    ['herald_aws_billed_requests_total', 'counter'],
    ['herald_aws_messages_total', 'counter'],
    ['herald_sqs_empty_receives_total', 'counter'],
    ['herald_dynamodb_capacity_units_total', 'counter'],
  ])('declares %s as a %s, once', (name, type) => {
    const all = lines();
    const help = all.findIndex((line) => line.startsWith(`# HELP ${name} `));
    expect(all[help + 1]).toBe(`# TYPE ${name} ${type}`);
    expect(all.filter((line) => line.startsWith(`# TYPE ${name} `))).toHaveLength(1);
  });

  it('renders requests and billed requests by service and operation', () => {
    const all = lines();
    for (const sample of [
      'herald_aws_requests_total{service="SQS",operation="ReceiveMessage"} 12',
      'herald_aws_requests_total{service="DynamoDB",operation="PutItem"} 3',
      'herald_aws_billed_requests_total{service="SNS",operation="PublishBatch"} 2',
      'herald_aws_messages_total{service="SQS",operation="ReceiveMessage"} 30',
      'herald_sqs_empty_receives_total 4',
    ]) {
      expect(all).toContain(sample);
    }
  });

  it('renders DynamoDB units by operation and kind, leaving out a kind the operation never consumed', () => {
    const units = lines().filter((line) => line.startsWith('herald_dynamodb_capacity_units_total{'));
    expect(units).toEqual([
      'herald_dynamodb_capacity_units_total{operation="PutItem",kind="write"} 6',
      'herald_dynamodb_capacity_units_total{operation="Query",kind="read"} 1.5',
    ]);
  });

  it('leaves DynamoDB out of the message counts', () => {
    expect(lines().filter((line) => line.startsWith('herald_aws_messages_total{service="DynamoDB"'))).toEqual([]);
  });

  it('renders no AWS family in local mode', () => {
    expect(new NodeMetrics().render({ connections: 0, users: 0, draining: false })).not.toMatch(/herald_(aws|sqs|dynamodb)_/);
  });
});
