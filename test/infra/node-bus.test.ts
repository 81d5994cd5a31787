import { Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { describe, expect, it } from 'vitest';
import { NodeBus } from '../../lib/constructs/node-bus';
import { bareStack, grantsOf, REGION } from './infra-kit';

function setup(queuePrefix = 'herald-test') {
  const stack = bareStack();
  const bus = new NodeBus(stack, 'Bus', { queuePrefix });
  // A bus nobody may publish on does not synthesize.
  const publisher = new iam.Role(stack, 'Publisher', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
  bus.grantPublish(publisher);
  const role = new iam.Role(stack, 'Grantee', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') });
  const topic = stack.resolve(bus.topic.topicArn) as unknown;
  const key = stack.resolve(bus.key.keyArn) as unknown;
  const queues = { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:sqs:${REGION}:`, { Ref: 'AWS::AccountId' }, `:${queuePrefix}_*`]] };
  const subscriptions = '*';
  return { stack, bus, role, publisher, topic, key, queues, subscriptions };
}

function topicStatements(stack: ReturnType<typeof setup>['stack']): Record<string, unknown>[] {
  const [policy] = Object.values(Template.fromStack(stack).findResources('AWS::SNS::TopicPolicy')) as {
    Properties: { PolicyDocument: { Statement: Record<string, unknown>[] } };
  }[];
  return policy?.Properties.PolicyDocument.Statement ?? [];
}

describe('NodeBus', () => {
  it('encrypts the topic with its own rotating KMS key and names neither', () => {
    // GIVEN
    const { stack, key } = setup();
    // THEN
    const template = Template.fromStack(stack);
    const [topic] = Object.values(template.findResources('AWS::SNS::Topic')) as { Properties: Record<string, unknown> }[];
    expect(topic?.Properties.KmsMasterKeyId).toEqual(key);
    expect(topic?.Properties.TopicName).toBeUndefined();
    template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
    template.resourceCountIs('AWS::KMS::Alias', 0);
  });

  it('refuses publishing to the topic without TLS', () => {
    // GIVEN
    const { stack, topic } = setup();
    // THEN
    const [policy] = Object.values(Template.fromStack(stack).findResources('AWS::SNS::TopicPolicy')) as {
      Properties: { Topics: unknown[]; PolicyDocument: { Statement: Record<string, unknown>[] } };
    }[];
    expect(policy?.Properties.Topics).toEqual([topic]);
    expect(policy?.Properties.PolicyDocument.Statement).toContainEqual(
      expect.objectContaining({
        Effect: 'Deny',
        Action: 'sns:Publish',
        Principal: '*',
        Resource: topic,
        Condition: { Bool: { 'aws:SecureTransport': 'false' } },
      }),
    );
  });

  it('refuses publishing to the topic by any principal but the roles granted it, whatever IAM allows them: a forged drain stops a node', () => {
    // GIVEN
    const { stack, bus, role, publisher, topic } = setup();
    // WHEN
    bus.grantNodeRuntime(role);
    bus.allowPublishers(['arn:aws:iam::123456789012:role/billing']);
    // THEN
    expect(topicStatements(stack)).toContainEqual({
      Sid: 'HeraldRolesOnly',
      Effect: 'Deny',
      Action: 'sns:Publish',
      Principal: { AWS: '*' },
      Resource: topic,
      Condition: { ArnNotEquals: { 'aws:PrincipalArn': [stack.resolve(publisher.roleArn), stack.resolve(role.roleArn), 'arn:aws:iam::123456789012:role/billing'] } },
    });
  });

  it('lets only a role publish, and refuses to synthesize a bus nobody may publish on', () => {
    const stack = bareStack();
    const bus = new NodeBus(stack, 'Bus', { queuePrefix: 'herald-test' });
    expect(() => bus.grantPublish(new iam.User(stack, 'Someone'))).toThrow(/only a role/);
    expect(() => Template.fromStack(stack)).toThrow(/no role may publish on the bus/);
  });

  it('lets a node manage only queues named with the prefix, subscribe to the topic, unsubscribe (on *: no resource-level permission) and publish', () => {
    // GIVEN
    const { stack, bus, role, topic, key, queues, subscriptions } = setup();
    // WHEN
    bus.grantNodeRuntime(role);
    // THEN
    expect(grantsOf(Template.fromStack(stack), stack, role)).toEqual([
      {
        // DeleteMessageBatch is authorized as sqs:DeleteMessage: there is no sqs:DeleteMessageBatch action to grant.
        actions: [
          'sqs:CreateQueue',
          'sqs:GetQueueUrl',
          'sqs:GetQueueAttributes',
          'sqs:SetQueueAttributes',
          'sqs:TagQueue',
          'sqs:ReceiveMessage',
          'sqs:DeleteMessage',
          'sqs:DeleteQueue',
        ],
        resource: queues,
      },
      { actions: ['sns:Subscribe'], resource: topic },
      { actions: ['sns:Unsubscribe'], resource: subscriptions },
      { actions: ['sns:Publish'], resource: topic },
      { actions: ['kms:GenerateDataKey', 'kms:Decrypt'], resource: key },
    ]);
  });

  it('gives a publisher sns:Publish on the topic and the key use it needs, nothing more', () => {
    // GIVEN
    const { stack, bus, role, topic, key } = setup();
    // WHEN
    bus.grantPublish(role);
    // THEN
    expect(grantsOf(Template.fromStack(stack), stack, role)).toEqual([
      { actions: ['sns:Publish'], resource: topic },
      { actions: ['kms:GenerateDataKey', 'kms:Decrypt'], resource: key },
    ]);
  });

  it('gives the janitor ListQueues and Unsubscribe on * (neither has resource-level permissions) and the rest on the prefix and the topic', () => {
    // GIVEN
    const { stack, bus, role, topic, queues, subscriptions } = setup();
    // WHEN
    bus.grantJanitor(role);
    // THEN
    const grants = grantsOf(Template.fromStack(stack), stack, role);
    expect(grants).toEqual([
      { actions: ['sqs:ListQueues'], resource: '*' },
      { actions: ['sqs:GetQueueAttributes', 'sqs:ListQueueTags', 'sqs:GetQueueUrl', 'sqs:DeleteQueue'], resource: queues },
      { actions: ['sns:ListSubscriptionsByTopic'], resource: topic },
      { actions: ['sns:Unsubscribe'], resource: subscriptions },
    ]);
    expect(grants.filter((g) => g.resource === '*').flatMap((g) => g.actions)).toEqual(['sqs:ListQueues', 'sns:Unsubscribe']);
  });

  it.each(['', 'a'.repeat(40), 'has.dot', 'has space', 'has_underscore'])('refuses the queue prefix %j (1-39 of A-Z a-z 0-9 -)', (prefix) => {
    expect(() => setup(prefix)).toThrow(/queuePrefix/);
  });

  it('accepts a 39-character prefix, which leaves a node id 40 of the 80 characters SQS allows', () => {
    expect(() => setup('p'.repeat(39))).not.toThrow();
  });
});
