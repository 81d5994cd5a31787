import { Duration } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { describe, expect, it } from 'vitest';
import { buildHeraldApp } from '../../bin/herald';
import { INGEST_MAX_RECEIVES, IngestTopic } from '../../lib/constructs/ingest-topic';
import { bareStack, entryOrFixture, grantsOf, once, REGION, tempDir } from './infra-kit';

function setup() {
  const stack = bareStack();
  const key = new kms.Key(stack, 'Key');
  const publisher = new lambda.Function(stack, 'Publisher', {
    runtime: lambda.Runtime.NODEJS_22_X,
    handler: 'index.handler',
    code: lambda.Code.fromInline('export const handler = async () => ({})'),
    timeout: Duration.seconds(30),
  });
  const ingest = new IngestTopic(stack, 'Ingest', { key, publisher });
  const role = new iam.Role(stack, 'Billing', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') });
  return { stack, key, publisher, ingest, role };
}

type Resources = Record<string, { Type: string; Properties: Record<string, unknown> }>;

describe('IngestTopic', () => {
  const made = once(() => {
    const s = setup();
    return { ...s, template: Template.fromStack(s.stack) };
  });
  const ref = (value: unknown) => made().stack.resolve(value) as unknown;

  it('is a topic under the given key that refuses publishing without TLS', () => {
    const { template, ingest, key } = made();
    template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: ref(key.keyArn) });
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      Topics: [ref(ingest.topic.topicArn)],
      PolicyDocument: { Statement: [{ Effect: 'Deny', Action: 'sns:Publish', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }] },
    });
  });

  it('puts each message as it was published in a queue the publisher reads ten at a time, reporting the ones to try again', () => {
    const { template, ingest, publisher } = made();
    template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'sqs',
      TopicArn: ref(ingest.topic.topicArn),
      Endpoint: ref(ingest.queue.queueArn),
      RawMessageDelivery: true,
    });
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: ref(ingest.queue.queueArn),
      FunctionName: ref(publisher.functionName),
      BatchSize: 10,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
  });

  it('keeps a message that failed five times in a dead-letter queue for two weeks; both queues SSE-SQS and TLS-only', () => {
    const { template, ingest } = made();
    const queues = Object.entries(template.findResources('AWS::SQS::Queue') as Resources);
    const byRef = (q: { queueArn: string }) => queues.find(([id]) => JSON.stringify(ref(q.queueArn)).includes(`"${id}"`))?.[1].Properties;
    expect(byRef(ingest.queue)).toEqual({
      SqsManagedSseEnabled: true,
      VisibilityTimeout: 180,
      MessageRetentionPeriod: 86_400,
      RedrivePolicy: { deadLetterTargetArn: ref(ingest.deadLetters.queueArn), maxReceiveCount: INGEST_MAX_RECEIVES },
    });
    expect(byRef(ingest.deadLetters)).toEqual({ SqsManagedSseEnabled: true, MessageRetentionPeriod: 14 * 86_400 });
    const policies = Object.values(template.findResources('AWS::SQS::QueuePolicy') as Resources).map((p) => p.Properties) as {
      Queues: unknown[];
      PolicyDocument: { Statement: Record<string, unknown>[] };
    }[];
    for (const queue of [ingest.queue, ingest.deadLetters]) {
      const policy = policies.find((p) => JSON.stringify(p.Queues) === JSON.stringify([ref(queue.queueUrl)]));
      expect(policy?.PolicyDocument.Statement).toContainEqual(
        expect.objectContaining({ Effect: 'Deny', Action: 'sqs:*', Principal: { AWS: '*' }, Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
      );
    }
    // Only the ingest topic may send to the queue.
    const sending = policies.find((p) => JSON.stringify(p.Queues) === JSON.stringify([ref(ingest.queue.queueUrl)]))?.PolicyDocument.Statement.filter((s) => s.Effect === 'Allow');
    expect(sending).toEqual([
      expect.objectContaining({
        Action: 'sqs:SendMessage',
        Principal: { Service: 'sns.amazonaws.com' },
        Condition: { ArnEquals: { 'aws:SourceArn': ref(ingest.topic.topicArn) } },
      }),
    ]);
  });

  it('gives a service sns:Publish on the ingest topic and the key use SNS asks for, nothing more', () => {
    const s = setup();
    s.ingest.grantPublish(s.role);
    expect(grantsOf(Template.fromStack(s.stack), s.stack, s.role)).toEqual([
      { actions: ['sns:Publish'], resource: s.stack.resolve(s.ingest.topic.topicArn) as unknown },
      { actions: ['kms:GenerateDataKey', 'kms:Decrypt'], resource: s.stack.resolve(s.key.keyArn) as unknown },
    ]);
  });
});

describe('the Herald stack', () => {
  const app = once(() => {
    const { stack } = buildHeraldApp({
      env: {},
      outdir: tempDir('app'),
      context: {
        region: REGION,
        allowPlainHttp: true,
        busPublisherRoleArns: 'arn:aws:iam::123456789012:role/billing',
        'aws:cdk:bundling-stacks': [],
        '@aws-cdk/core:failSynthOnValidationErrors': false,
      },
      overrides: { publisherEntry: entryOrFixture('services/publisher/lambda.ts'), janitorEntry: entryOrFixture('services/janitor/lambda.ts') },
    });
    return { stack, template: Template.fromStack(stack) };
  });

  it('lets only the nodes, the publisher Lambda and the named library roles publish on the node bus', () => {
    const { stack, template } = app();
    const policy = Object.values(template.findResources('AWS::SNS::TopicPolicy') as Resources).find(
      (p) => JSON.stringify(p.Properties.Topics) === JSON.stringify([stack.resolve(stack.bus.topic.topicArn)]),
    );
    const statements = (policy?.Properties.PolicyDocument as { Statement: Record<string, unknown>[] }).Statement;
    expect(statements).toContainEqual(
      expect.objectContaining({
        Effect: 'Deny',
        Action: 'sns:Publish',
        Principal: { AWS: '*' },
        Condition: {
          ArnNotEquals: {
            'aws:PrincipalArn': [stack.resolve(stack.service.taskRole.roleArn), stack.resolve(stack.publisher.role.roleArn), 'arn:aws:iam::123456789012:role/billing'],
          },
        },
      }),
    );
  });

  it('has the publisher Lambda consume the ingest topic, whose ARN it outputs', () => {
    const { stack, template } = app();
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: stack.resolve(stack.ingest.queue.queueArn) as unknown,
      FunctionName: stack.resolve(stack.publisher.function.functionName) as unknown,
    });
    expect((template.toJSON() as { Outputs: Record<string, { Value: unknown }> }).Outputs.IngestTopicArn?.Value).toEqual(stack.resolve(stack.ingest.topic.topicArn));
  });
});
