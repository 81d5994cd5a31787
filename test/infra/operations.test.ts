import { Template } from 'aws-cdk-lib/assertions';
import * as sns from 'aws-cdk-lib/aws-sns';
import { describe, expect, it } from 'vitest';
import { HeraldNetwork } from '../../lib/constructs/herald-network';
import { HeraldTable } from '../../lib/constructs/herald-table';
import { IngestTopic } from '../../lib/constructs/ingest-topic';
import { JanitorFunction } from '../../lib/constructs/janitor-function';
import { LogBucket } from '../../lib/constructs/log-bucket';
import { NodeBus } from '../../lib/constructs/node-bus';
import { Operations } from '../../lib/constructs/operations';
import { PublisherFunction } from '../../lib/constructs/publisher-function';
import { SseService } from '../../lib/constructs/sse-service';
import { nodeImageFromRepository } from '../../lib/herald-stack';
import { bareStack, entryOrFixture, once, resolved } from './infra-kit';

interface AlarmProps {
  AlarmDescription: string;
  MetricName?: string;
  Namespace?: string;
  Statistic?: string;
  Dimensions?: { Name: string; Value: unknown }[];
  Threshold: number;
  ComparisonOperator: string;
  TreatMissingData: string;
  Metrics?: { Id: string; Expression?: string; MetricStat?: { Metric: { MetricName: string; Dimensions?: unknown[] } } }[];
  AlarmActions?: unknown[];
  OKActions?: unknown[];
}

function setup(withTopic = false) {
  const stack = bareStack();
  const logs = new LogBucket(stack, 'Logs');
  const network = new HeraldNetwork(stack, 'Network', { flowLogBucket: logs.bucket });
  const bus = new NodeBus(stack, 'Bus', { queuePrefix: 'herald-test' });
  const table = new HeraldTable(stack, 'Table');
  const service = new SseService(stack, 'Nodes', { vpc: network.vpc, bus, table, image: nodeImageFromRepository(), accessLogBucket: logs.bucket, allowPlainHttp: true });
  const publisher = new PublisherFunction(stack, 'Publisher', { bus, table, entry: entryOrFixture('services/publisher/lambda.ts') });
  const janitor = new JanitorFunction(stack, 'Janitor', { bus, table, entry: entryOrFixture('services/janitor/lambda.ts') });
  const ingest = new IngestTopic(stack, 'Ingest', { key: bus.key, publisher: publisher.function });
  const alarmTopic = withTopic ? sns.Topic.fromTopicArn(stack, 'Pager', 'arn:aws:sns:us-east-1:123456789012:pager') : undefined;
  new Operations(stack, 'Operations', {
    service,
    bus,
    publisher: publisher.function,
    janitor: janitor.function,
    ingestDeadLetters: ingest.deadLetters,
    ...(alarmTopic === undefined ? {} : { alarmTopic }),
  });
  const template = Template.fromStack(stack);
  const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm')).map((a) => (a as { Properties: AlarmProps }).Properties);
  return { stack, service, publisher, ingest, template, alarms };
}

const defaults = once(() => setup());

function alarm(alarms: AlarmProps[], description: RegExp): AlarmProps {
  const found = alarms.filter((a) => description.test(a.AlarmDescription));
  expect(found).toHaveLength(1);
  return found[0] as AlarmProps;
}

describe('Operations', () => {
  it('alarms when no node is healthy', () => {
    const { alarms } = defaults();
    expect(alarm(alarms, /No Herald node passes/)).toMatchObject({
      MetricName: 'HealthyHostCount',
      Namespace: 'AWS/ApplicationELB',
      Statistic: 'Minimum',
      Threshold: 1,
      ComparisonOperator: 'LessThanThreshold',
      TreatMissingData: 'breaching',
    });
  });

  it('alarms on the 5xx rate of target and load balancer responses', () => {
    const { alarms } = defaults();
    const rate = alarm(alarms, /5xx/);
    expect(rate.Threshold).toBe(5);
    expect(rate.Metrics?.find((m) => m.Expression !== undefined)?.Expression).toBe('IF(FILL(req, 0) > 0, 100 * (FILL(target, 0) + FILL(elb, 0)) / FILL(req, 0), 0)');
    expect(rate.Metrics?.map((m) => m.MetricStat?.Metric.MetricName).filter(Boolean).sort()).toEqual([
      'HTTPCode_ELB_5XX_Count',
      'HTTPCode_Target_5XX_Count',
      'RequestCount',
    ]);
  });

  it('alarms on the oldest message in any node queue of this deployment, queues being made at run time', () => {
    const { alarms } = defaults();
    const backlog = alarm(alarms, /stopped reading its queue/);
    expect(backlog.Metrics).toEqual([
      expect.objectContaining({
        Expression: `SELECT MAX(ApproximateAgeOfOldestMessage) FROM SCHEMA("AWS/SQS", QueueName) WHERE QueueName LIKE 'herald-test_%'`,
        ReturnData: true,
      }),
    ]);
    expect(backlog.Threshold).toBe(120);
  });

  it('alarms on publisher errors and throttles, and on a failing janitor', () => {
    const { stack, publisher, alarms } = defaults();
    const fn = resolved(stack, publisher.function.functionName);
    expect(alarm(alarms, /publisher failed/)).toMatchObject({ MetricName: 'Errors', Namespace: 'AWS/Lambda', Dimensions: [{ Name: 'FunctionName', Value: fn }], Threshold: 1 });
    expect(alarm(alarms, /throttled/)).toMatchObject({ MetricName: 'Throttles', Dimensions: [{ Name: 'FunctionName', Value: fn }], Threshold: 1 });
    expect(alarm(alarms, /janitor failed/)).toMatchObject({ MetricName: 'Errors' });
    expect(alarms).toHaveLength(7);
  });

  it('alarms on any message in the ingest dead-letter queue', () => {
    const { stack, ingest, alarms } = defaults();
    expect(alarm(alarms, /dead-letter queue/)).toMatchObject({
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Namespace: 'AWS/SQS',
      Dimensions: [{ Name: 'QueueName', Value: resolved(stack, ingest.deadLetters.queueName) }],
      Statistic: 'Maximum',
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
    });
  });

  it('notifies the alarm topic on alarm and on recovery when one is given', () => {
    expect(defaults().alarms.every((a) => a.AlarmActions === undefined)).toBe(true);
    const { alarms } = setup(true);
    for (const a of alarms) {
      expect(a.AlarmActions).toEqual(['arn:aws:sns:us-east-1:123456789012:pager']);
      expect(a.OKActions).toEqual(['arn:aws:sns:us-east-1:123456789012:pager']);
    }
  });

  it('draws streams, deliveries and publish→write latency from the metrics the nodes emit', () => {
    const { stack, template } = defaults();
    const [dashboard] = Object.values(template.findResources('AWS::CloudWatch::Dashboard')) as { Properties: { DashboardBody: unknown; DashboardName?: string } }[];
    expect(dashboard?.Properties.DashboardName).toBeUndefined();
    const body = JSON.stringify(dashboard?.Properties.DashboardBody);
    for (const metric of ['ActiveConnections', 'Deliveries', 'SlowConsumerCuts', 'PublishToWriteMs']) {
      expect(body).toContain(`[\\"Herald\\",\\"${metric}\\",\\"ServiceName\\",\\"${stack.stackName}\\"`);
    }
  });
});
