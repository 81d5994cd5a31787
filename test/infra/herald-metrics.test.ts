import { Duration, type Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { describe, expect, it } from 'vitest';
import { HeraldMetrics, NODE_METRIC_NAMES } from '../../lib/constructs/herald-metrics';
import { EMF_NAMESPACE, emfRecord } from '../../services/node/emf';
import { bareStack } from './infra-kit';

/** One EMF line as a node writes it, with every metric present (a p99 only appears once something was written). */
const emitted = emfRecord({ timestampMs: 0, serviceName: 'herald-test', activeConnections: 3, deliveries: 5, slowConsumerCuts: 1, publishToWriteP99Ms: 12 });
const [emittedDirective] = emitted._aws.CloudWatchMetrics;

interface AlarmProperties {
  Namespace?: string;
  MetricName?: string;
  Dimensions?: { Name: string; Value: unknown }[];
  Period?: number;
  Statistic?: string;
  Metrics?: unknown[];
}

/** The metric as CloudFormation sees it: an alarm on a bare stack. */
function alarmOn(stack: Stack, metric: cloudwatch.Metric): AlarmProperties {
  new cloudwatch.Alarm(stack, 'Alarm', { metric, threshold: 1, evaluationPeriods: 1 });
  const alarms = Object.values(Template.fromStack(stack).findResources('AWS::CloudWatch::Alarm')) as { Properties: AlarmProperties }[];
  expect(alarms).toHaveLength(1);
  return alarms[0]!.Properties;
}

describe('HeraldMetrics', () => {
  it('names exactly the metrics a node emits, in the namespace and with the one dimension set it emits them under', () => {
    expect(EMF_NAMESPACE).toBe('Herald');
    expect(emittedDirective.Namespace).toBe(EMF_NAMESPACE);
    expect(emittedDirective.Dimensions).toEqual([['ServiceName']]);
    expect(emittedDirective.Metrics.map((m) => m.Name)).toEqual([...NODE_METRIC_NAMES]);
    expect(NODE_METRIC_NAMES).toEqual(['ActiveConnections', 'Deliveries', 'SlowConsumerCuts', 'PublishToWriteMs']);
  });

  it('reads every node metric from the Herald namespace, for its service name only, one minute at a time', () => {
    const metrics = new HeraldMetrics('herald-test');
    for (const name of NODE_METRIC_NAMES) {
      const metric = metrics.metric(name);
      expect(metric.namespace).toBe('Herald');
      expect(metric.metricName).toBe(name);
      expect(metric.dimensions).toEqual({ ServiceName: 'herald-test' });
      expect(metric.period.toSeconds()).toBe(60);
    }
    // The dimension value is the one the node writes as ServiceName (HERALD_SERVICE_NAME).
    expect(emitted.ServiceName).toBe(metrics.serviceName);
  });

  it('renders into CloudFormation with the namespace, name, dimension, period, statistic and label the dashboards show', () => {
    const stack = bareStack();
    // A labelled metric: CloudFormation gets it as a one-metric MetricStat list.
    expect(alarmOn(stack, new HeraldMetrics('herald-test').deliveries()).Metrics).toEqual([
      {
        Id: 'm1',
        Label: 'events written to streams',
        MetricStat: {
          Metric: { Namespace: 'Herald', MetricName: 'Deliveries', Dimensions: [{ Name: 'ServiceName', Value: 'herald-test' }] },
          Period: 60,
          Stat: 'Sum',
        },
        ReturnData: true,
      },
    ]);
  });

  it('reads open streams as the average per task, what the service scales on, and as the sum for the fleet', () => {
    const metrics = new HeraldMetrics('herald-test');
    const perTask = metrics.activeConnectionsPerTask();
    expect({ name: perTask.metricName, statistic: perTask.statistic, label: perTask.label }).toEqual({
      name: 'ActiveConnections',
      statistic: 'Average',
      label: 'streams per task',
    });
    const total = metrics.activeConnectionsTotal();
    expect({ name: total.metricName, statistic: total.statistic, label: total.label }).toEqual({
      name: 'ActiveConnections',
      statistic: 'Sum',
      label: 'streams, all tasks',
    });
    expect(emittedDirective.Metrics).toContainEqual({ Name: 'ActiveConnections', Unit: 'Count' });
  });

  it('sums deliveries and slow-consumer cuts, which each line reports as counts since the previous one', () => {
    const metrics = new HeraldMetrics('herald-test');
    const summed = [metrics.deliveries(), metrics.slowConsumerCuts()].map((m) => ({ name: m.metricName, statistic: m.statistic, label: m.label }));
    expect(summed).toEqual([
      { name: 'Deliveries', statistic: 'Sum', label: 'events written to streams' },
      { name: 'SlowConsumerCuts', statistic: 'Sum', label: 'streams cut for not reading' },
    ]);
    expect(emittedDirective.Metrics).toContainEqual({ Name: 'Deliveries', Unit: 'Count' });
    expect(emittedDirective.Metrics).toContainEqual({ Name: 'SlowConsumerCuts', Unit: 'Count' });
  });

  it("reads publish→write latency as the worst node's p99, in milliseconds", () => {
    const p99 = new HeraldMetrics('herald-test').publishToWriteP99();
    expect({ name: p99.metricName, statistic: p99.statistic, label: p99.label }).toEqual({
      name: 'PublishToWriteMs',
      statistic: 'Maximum',
      label: 'publish→write p99, worst node (ms)',
    });
    expect(emittedDirective.Metrics).toContainEqual({ Name: 'PublishToWriteMs', Unit: 'Milliseconds' });
  });

  it('lets the caller change the period and statistic of a metric and keeps its namespace and dimension', () => {
    const stack = bareStack();
    const metric = new HeraldMetrics('herald-test').metric('SlowConsumerCuts', { period: Duration.minutes(5), statistic: cloudwatch.Stats.MAXIMUM });
    expect(alarmOn(stack, metric)).toEqual({
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      EvaluationPeriods: 1,
      Threshold: 1,
      Namespace: 'Herald',
      MetricName: 'SlowConsumerCuts',
      Dimensions: [{ Name: 'ServiceName', Value: 'herald-test' }],
      Period: 300,
      Statistic: 'Maximum',
    });
  });
});
