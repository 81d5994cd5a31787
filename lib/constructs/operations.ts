import { Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { NodeBus } from './node-bus';
import type { SseService } from './sse-service';

export interface OperationsProps {
  readonly service: SseService;
  readonly bus: NodeBus;
  readonly publisher: lambda.IFunction;
  readonly janitor: lambda.IFunction;
  /**
   * The ingest topic's dead-letter queue: a message there is a notification a
   * service sent that was never published.
   * @default - no alarm on it
   */
  readonly ingestDeadLetters?: sqs.IQueue;
  /**
   * Notified when an alarm fires and when it clears.
   * @default - no action: the alarms show in the CloudWatch console only
   */
  readonly alarmTopic?: sns.ITopic;
  /**
   * A node queue whose oldest message is older than this means a node stopped
   * reading (it is stuck, or it died and the janitor has not run yet).
   * @default Duration.minutes(2)
   */
  readonly queueAgeThreshold?: Duration;
}

/** Alarms and the dashboard: connections, deliveries and latency first. */
export class Operations extends Construct {
  readonly alarms: readonly cloudwatch.Alarm[];
  readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: OperationsProps) {
    super(scope, id);
    const { service, publisher, janitor } = props;
    const tg = service.targetGroup.metrics;
    const alb = service.loadBalancer.metrics;
    const requests = alb.requestCount({ period: Duration.minutes(5) });
    const fiveXxRate = new cloudwatch.MathExpression({
      expression: 'IF(FILL(req, 0) > 0, 100 * (FILL(target, 0) + FILL(elb, 0)) / FILL(req, 0), 0)',
      usingMetrics: {
        req: requests,
        target: alb.httpCodeTarget(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, { period: Duration.minutes(5) }),
        elb: alb.httpCodeElb(elbv2.HttpCodeElb.ELB_5XX_COUNT, { period: Duration.minutes(5) }),
      },
      label: '5xx, % of requests',
      period: Duration.minutes(5),
    });
    const queueAge = new cloudwatch.MathExpression({
      // Node queues are made at run time, so the alarm selects them by name (Metrics
      // Insights). Should its LIKE read `_` as a one-character wildcard, the pattern
      // only widens (another stack's `<prefix>x…`): it never misses one of ours.
      expression: `SELECT MAX(ApproximateAgeOfOldestMessage) FROM SCHEMA("AWS/SQS", QueueName) WHERE QueueName LIKE '${props.bus.queueNamePrefix}%'`,
      label: 'oldest message in a node queue (s)',
      period: Duration.minutes(1),
    });

    const alarms = [
      new cloudwatch.Alarm(this, 'NoHealthyNodes', {
        alarmDescription: 'No Herald node passes its health check: browsers cannot connect.',
        metric: tg.healthyHostCount({ statistic: cloudwatch.Stats.MINIMUM, period: Duration.minutes(1) }),
        comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
        threshold: 1,
        evaluationPeriods: 2,
        treatMissingData: cloudwatch.TreatMissingData.BREACHING,
      }),
      new cloudwatch.Alarm(this, 'Http5xxRate', {
        alarmDescription: 'More than 5 % of requests to Herald end in a 5xx (node full, unavailable, or no node).',
        metric: fiveXxRate,
        threshold: 5,
        evaluationPeriods: 3,
        datapointsToAlarm: 2,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      new cloudwatch.Alarm(this, 'NodeQueueBacklog', {
        alarmDescription: 'A node stopped reading its queue: its streams are not getting their events.',
        metric: queueAge,
        threshold: (props.queueAgeThreshold ?? Duration.minutes(2)).toSeconds(),
        evaluationPeriods: 5,
        datapointsToAlarm: 3,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      new cloudwatch.Alarm(this, 'PublisherErrors', {
        alarmDescription: 'The Herald publisher failed invocations (not refusals: those are answers).',
        metric: publisher.metricErrors({ period: Duration.minutes(5), statistic: cloudwatch.Stats.SUM }),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      new cloudwatch.Alarm(this, 'PublisherThrottles', {
        alarmDescription: 'Invocations of the Herald publisher were throttled: raise its concurrency or batch.',
        metric: publisher.metricThrottles({ period: Duration.minutes(5), statistic: cloudwatch.Stats.SUM }),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      new cloudwatch.Alarm(this, 'JanitorErrors', {
        alarmDescription: 'The Herald janitor failed three runs in a row: queues of dead nodes pile up.',
        metric: janitor.metricErrors({ period: Duration.minutes(5), statistic: cloudwatch.Stats.SUM }),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 3,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      ...(props.ingestDeadLetters === undefined
        ? []
        : [
            new cloudwatch.Alarm(this, 'IngestDeadLetters', {
              alarmDescription: 'Notifications sent to the Herald ingest topic failed five tries and wait in its dead-letter queue: fix the cause, then redrive them.',
              metric: props.ingestDeadLetters.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5), statistic: cloudwatch.Stats.MAXIMUM }),
              threshold: 1,
              comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
              evaluationPeriods: 1,
              treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
            }),
          ]),
    ];
    if (props.alarmTopic) {
      const action = new actions.SnsAction(props.alarmTopic);
      for (const alarm of alarms) {
        alarm.addAlarmAction(action);
        alarm.addOkAction(action);
      }
    }
    this.alarms = alarms;
    this.dashboard = this.buildDashboard(props, { fiveXxRate, queueAge });
  }

  private buildDashboard(props: OperationsProps, derived: { fiveXxRate: cloudwatch.IMetric; queueAge: cloudwatch.IMetric }): cloudwatch.Dashboard {
    const { service, publisher } = props;
    const m = service.metrics;
    const dashboard = new cloudwatch.Dashboard(this, 'Dashboard', { defaultInterval: Duration.hours(3) });
    const graph = (title: string, left: cloudwatch.IMetric[], right: cloudwatch.IMetric[] = []): cloudwatch.GraphWidget =>
      new cloudwatch.GraphWidget({ title, left, right, width: 8, height: 6 });
    dashboard.addWidgets(
      new cloudwatch.TextWidget({
        width: 24,
        height: 3,
        markdown: [
          `### Herald — ${Stack.of(this).stackName}`,
          'Top row: open streams (all tasks, and per task against the scaling target), events delivered per minute, and the worst node\'s publish→write p99. ',
          'Middle: the load balancer (new streams, 5xx, healthy nodes) and the service (CPU, memory). Bottom: the publisher Lambda and the node queues; ',
          'a queue whose oldest message keeps ageing belongs to a node that stopped reading.',
        ].join(''),
      }),
    );
    dashboard.addWidgets(
      graph('Open streams', [m.activeConnectionsTotal()], [m.activeConnectionsPerTask()]),
      graph('Deliveries per minute', [m.deliveries()], [m.slowConsumerCuts()]),
      graph('Publish → write p99 (ms)', [m.publishToWriteP99()]),
    );
    dashboard.addWidgets(
      graph(
        'Load balancer',
        [service.loadBalancer.metrics.requestCount({ label: 'requests (streams opened)' })],
        [derived.fiveXxRate],
      ),
      graph('Healthy nodes', [service.targetGroup.metrics.healthyHostCount({ statistic: cloudwatch.Stats.MINIMUM })]),
      graph('Service CPU and memory (%)', [service.service.metricCpuUtilization(), service.service.metricMemoryUtilization()]),
    );
    dashboard.addWidgets(
      graph('Publisher invocations', [publisher.metricInvocations()], [publisher.metricErrors(), publisher.metricThrottles()]),
      graph('Publisher duration p99 (ms)', [publisher.metricDuration({ statistic: cloudwatch.Stats.p(99) })]),
      graph('Node queues: oldest message (s)', [derived.queueAge]),
    );
    return dashboard;
  }
}
