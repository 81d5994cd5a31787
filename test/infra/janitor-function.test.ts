import { Duration } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { HeraldTable } from '../../lib/constructs/herald-table';
import { JanitorFunction } from '../../lib/constructs/janitor-function';
import { NodeBus } from '../../lib/constructs/node-bus';
import { bareStack, entryOrFixture, grantsOf, resolved } from './infra-kit';

function setup(interval?: Duration) {
  const stack = bareStack();
  const bus = new NodeBus(stack, 'Bus', { queuePrefix: 'herald-test' });
  // A bus nobody may publish on does not synthesize.
  bus.allowPublishers(['arn:aws:iam::123456789012:role/publisher']);
  const table = new HeraldTable(stack, 'Table');
  const janitor = new JanitorFunction(stack, 'Janitor', {
    bus,
    table,
    entry: entryOrFixture('services/janitor/lambda.ts'),
    ...(interval === undefined ? {} : { interval }),
  });
  return { stack, bus, table, janitor, template: Template.fromStack(stack) };
}

describe('JanitorFunction', () => {
  it('runs on Node 24, ARM64, with the topic, the table and the queue prefix to clean', () => {
    const { stack, bus, table, template } = setup();
    const [fn] = Object.values(template.findResources('AWS::Lambda::Function')) as { Properties: Record<string, unknown> }[];
    expect(fn?.Properties).toMatchObject({ Runtime: 'nodejs24.x', Architectures: ['arm64'], Handler: 'index.handler' });
    expect((fn?.Properties.Environment as { Variables: Record<string, unknown> }).Variables).toEqual({
      NODE_OPTIONS: '--enable-source-maps',
      HERALD_TOPIC_ARN: resolved(stack, bus.topic.topicArn),
      HERALD_TABLE_NAME: resolved(stack, table.table.tableName),
      HERALD_QUEUE_PREFIX: 'herald-test',
    });
    expect(fn?.Properties.ReservedConcurrentExecutions).toBeUndefined();
  });

  it('runs every five minutes by default, on a schedule only EventBridge may invoke it from', () => {
    const { stack, janitor, template } = setup();
    const [ruleId, rule] = Object.entries(template.findResources('AWS::Events::Rule'))[0] as [string, { Properties: Record<string, unknown> }];
    expect(rule.Properties).toMatchObject({ ScheduleExpression: 'rate(5 minutes)', State: 'ENABLED' });
    expect(rule.Properties.Targets).toEqual([expect.objectContaining({ Arn: resolved(stack, janitor.function.functionArn), RetryPolicy: { MaximumRetryAttempts: 0 } })]);
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction',
      Principal: 'events.amazonaws.com',
      SourceArn: { 'Fn::GetAtt': [ruleId, 'Arn'] },
    });
    expect(setup(Duration.minutes(2)).template.findResources('AWS::Events::Rule')).toSatisfy((rules: Record<string, { Properties: { ScheduleExpression: string } }>) =>
      Object.values(rules).every((r) => r.Properties.ScheduleExpression === 'rate(2 minutes)'),
    );
  });

  it('may list queue names, and read, delete and unsubscribe only those of this deployment', () => {
    const { stack, bus, table, janitor, template } = setup();
    const [logGroupId] = Object.keys(template.findResources('AWS::Logs::LogGroup'));
    const topic = resolved(stack, bus.topic.topicArn);
    expect(grantsOf(template, stack, janitor.role)).toEqual([
      { actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resource: { 'Fn::GetAtt': [logGroupId, 'Arn'] } },
      { actions: ['sqs:ListQueues'], resource: '*' },
      { actions: ['sqs:GetQueueAttributes', 'sqs:ListQueueTags', 'sqs:GetQueueUrl', 'sqs:DeleteQueue'], resource: resolved(stack, bus.nodeQueuesArn) },
      { actions: ['sns:ListSubscriptionsByTopic'], resource: topic },
      { actions: ['sns:Unsubscribe'], resource: '*' },
      { actions: ['dynamodb:Query', 'dynamodb:DeleteItem'], resource: [resolved(stack, table.table.tableArn)] },
    ]);
  });
});
