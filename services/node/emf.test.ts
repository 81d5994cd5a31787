import { describe, expect, it } from 'vitest';
import { EmfReporter, bucketBoundsMs, emfRecord, emfServiceName, quantileMs } from './emf';
import { Histogram, NodeMetrics } from './metrics';

const T0 = Date.UTC(2030, 0, 1, 12, 0, 0);
const BOUNDS_MS = [0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];

const COUNT_METRICS = [
  { Name: 'ActiveConnections', Unit: 'Count' },
  { Name: 'Deliveries', Unit: 'Count' },
  { Name: 'SlowConsumerCuts', Unit: 'Count' },
];

describe('emfRecord', () => {
  it('builds the exact EMF document: timestamp, namespace Herald, one [["ServiceName"]] dimension set, units, and values on the root', () => {
    const record = emfRecord({
      timestampMs: T0,
      serviceName: 'herald-prod',
      activeConnections: 1234,
      deliveries: 56,
      slowConsumerCuts: 2,
      publishToWriteP99Ms: 7.5,
    });
    expect(record).toEqual({
      _aws: {
        Timestamp: T0,
        CloudWatchMetrics: [
          {
            Namespace: 'Herald',
            Dimensions: [['ServiceName']],
            Metrics: [...COUNT_METRICS, { Name: 'PublishToWriteMs', Unit: 'Milliseconds' }],
          },
        ],
      },
      ServiceName: 'herald-prod',
      ActiveConnections: 1234,
      Deliveries: 56,
      SlowConsumerCuts: 2,
      PublishToWriteMs: 7.5,
    });
    // Every metric and dimension the directive names is a member of the root node (the spec's "target members").
    const directive = record._aws.CloudWatchMetrics[0];
    for (const { Name } of directive.Metrics) expect(typeof record[Name]).toBe('number');
    for (const name of directive.Dimensions.flat()) expect(typeof record[name]).toBe('string');
  });

  it('leaves PublishToWriteMs out of both the directive and the root when nothing was written', () => {
    const record = emfRecord({ timestampMs: T0, serviceName: 'herald', activeConnections: 0, deliveries: 0, slowConsumerCuts: 0 });
    expect(record._aws.CloudWatchMetrics[0].Metrics).toEqual(COUNT_METRICS);
    expect('PublishToWriteMs' in record).toBe(false);
  });
});

describe('emfServiceName', () => {
  it('reads HERALD_SERVICE_NAME, defaulting to herald', () => {
    expect(emfServiceName({ HERALD_SERVICE_NAME: ' chat-notify ' })).toBe('chat-notify');
    expect(emfServiceName({ HERALD_SERVICE_NAME: '' })).toBe('herald');
    expect(emfServiceName({})).toBe('herald');
  });
});

describe('quantileMs', () => {
  it('reads the histogram bounds from metrics.ts, in milliseconds', () => {
    expect(bucketBoundsMs(new Histogram())).toEqual(BOUNDS_MS);
  });

  it('has no value without observations', () => {
    expect(quantileMs(BOUNDS_MS.map(() => 0), 0, BOUNDS_MS, 0.99)).toBeUndefined();
  });

  it('interpolates inside the bucket that holds the rank', () => {
    const counts = BOUNDS_MS.map(() => 0);
    counts[3] = 100; // (2, 5] ms
    expect(quantileMs(counts, 0, BOUNDS_MS, 0.99)).toBe(4.97);
    expect(quantileMs(counts, 0, BOUNDS_MS, 0.5)).toBe(3.5);
    counts[0] = 900; // (0, 0.5] ms: now p99 sits at the 990th of 1000, in (2, 5]
    expect(quantileMs(counts, 0, BOUNDS_MS, 0.99)).toBe(4.7);
  });

  it('reports the last bound when the rank falls above it', () => {
    const counts = BOUNDS_MS.map(() => 0);
    counts[0] = 1;
    expect(quantileMs(counts, 99, BOUNDS_MS, 0.99)).toBe(5000);
  });
});

describe('EmfReporter', () => {
  it('reports counters as growth since the previous line, connections as they are now, and p99 of the interval only', () => {
    const metrics = new NodeMetrics();
    const reporter = new EmfReporter(metrics, 'herald-test');

    metrics.deliveries = 10;
    metrics.drops.slow_consumer = 1;
    for (let i = 0; i < 100; i++) metrics.publishToWrite.observe(0.004); // (2, 5] ms
    const first = reporter.next(T0, 42);
    expect(first).toMatchObject({ ServiceName: 'herald-test', ActiveConnections: 42, Deliveries: 10, SlowConsumerCuts: 1, PublishToWriteMs: 4.97 });
    expect(first._aws.Timestamp).toBe(T0);

    metrics.deliveries = 15;
    for (let i = 0; i < 100; i++) metrics.publishToWrite.observe(0.0003); // (0, 0.5] ms
    const second = reporter.next(T0 + 60_000, 40);
    expect(second).toMatchObject({ ActiveConnections: 40, Deliveries: 5, SlowConsumerCuts: 0, PublishToWriteMs: 0.495 });

    const quiet = reporter.next(T0 + 120_000, 40);
    expect(quiet).toMatchObject({ Deliveries: 0, SlowConsumerCuts: 0 });
    expect('PublishToWriteMs' in quiet).toBe(false);
  });

  it('counts observations above the last bucket, and treats a counter that went down as reset', () => {
    const metrics = new NodeMetrics();
    const reporter = new EmfReporter(metrics);
    metrics.deliveries = 100;
    reporter.next(T0, 0);
    metrics.deliveries = 3;
    for (let i = 0; i < 5; i++) metrics.publishToWrite.observe(9);
    expect(reporter.next(T0 + 60_000, 0)).toMatchObject({ ServiceName: 'herald', Deliveries: 3, PublishToWriteMs: 5000 });
  });

  it('writes one line of JSON', () => {
    const line = new EmfReporter(new NodeMetrics()).line(T0, 1);
    expect(line).not.toContain('\n');
    expect(JSON.parse(line)).toMatchObject({ _aws: { Timestamp: T0 }, ActiveConnections: 1 });
  });
});
