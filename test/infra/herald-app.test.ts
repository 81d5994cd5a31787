import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { AwsSolutionsChecks } from 'cdk-nag';
import { describe, expect, it } from 'vitest';
import { buildHeraldApp } from '../../bin/herald';
import { readHeraldSettings } from '../../bin/herald-settings';
import { HeraldStack } from '../../lib/herald-stack';
import { heraldNagAcknowledgements } from '../../lib/nag-suppressions';
import { entryOrFixture, once, REGION, tempDir } from './infra-kit';

const entries = {
  publisherEntry: entryOrFixture('services/publisher/lambda.ts'),
  janitorEntry: entryOrFixture('services/janitor/lambda.ts'),
};

/** Report findings instead of throwing, skip bundling (the CLI test bundles). */
const TEST_CONTEXT = { region: REGION, 'aws:cdk:bundling-stacks': [], '@aws-cdk/core:failSynthOnValidationErrors': false };

/** No domain: only a test stack may serve plain HTTP, and says so. */
const FIRST_TRY = { allowPlainHttp: true };

const VARIANTS: Record<string, Record<string, unknown>> = {
  'a first try (defaults: private tasks, generated HS256 secret, plain HTTP allowed)': FIRST_TRY,
  'the cheapest setup with a JWKS, a certificate and an alarm topic': {
    publicTasks: true,
    jwksUrl: 'https://id.example.com/.well-known/jwks.json',
    jwtIssuer: 'https://id.example.com/',
    jwtAudience: 'herald',
    domainName: 'push.example.com',
    certificateArn: 'arn:aws:acm:us-east-1:123456789012:certificate/abc',
    alarmTopicArn: 'arn:aws:sns:us-east-1:123456789012:pager',
  },
  'a domain in a Route 53 zone, multi-tab, bigger tasks': {
    domainName: 'push.example.com',
    hostedZoneId: 'Z0123456789ABC',
    hostedZoneName: 'example.com',
    tabPolicy: 'multi',
    taskCpu: 1024,
    taskMemoryMiB: 2048,
    minTasks: 4,
    maxTasks: 50,
  },
};

interface Violation {
  ruleName: string;
  violatingConstructs: { constructPath: string }[];
}

function findings(app: App): Violation[] {
  const report = JSON.parse(readFileSync(join(app.synth().directory, 'validation-report.json'), 'utf8')) as {
    pluginReports: { pluginName: string; violations: Violation[] }[];
  };
  return report.pluginReports.filter((r) => r.pluginName === 'AwsSolutions').flatMap((r) => r.violations);
}

function build(settings: Record<string, unknown> = FIRST_TRY) {
  return buildHeraldApp({ env: {}, outdir: tempDir('app'), context: { ...TEST_CONTEXT, ...settings }, overrides: entries });
}

describe('the Herald app under cdk-nag AwsSolutions', () => {
  it.each(Object.entries(VARIANTS))('has no unacknowledged finding: %s', (_name, settings) => {
    const { app } = build(settings);
    expect(findings(app)).toEqual([]);
  });

  it('reports a finding nobody acknowledged (the checks are really attached)', () => {
    const { app, stack } = build();
    new s3.Bucket(stack, 'Careless');
    expect(findings(app).map((v) => v.ruleName)).toEqual(expect.arrayContaining(['AwsSolutions-S1', 'AwsSolutions-S10']));
  });

  it.each(Object.entries(VARIANTS))('acknowledges only findings that really occur, on the construct that raises them: %s', (_name, settings) => {
    // GIVEN the same stack with the checks but without the acknowledgements
    const app = new App({ outdir: tempDir('app'), context: { ...TEST_CONTEXT, ...settings } });
    const { stackName, region, props } = readHeraldSettings((key) => app.node.tryGetContext(key), {});
    const stack = new HeraldStack(app, stackName, { ...props, ...entries, env: { region } });
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    // WHEN
    const raised = findings(app).flatMap((v) => v.violatingConstructs.map((c) => `${v.ruleName} @ ${c.constructPath}`));
    // THEN every acknowledgement names a raised finding at or under its scope, and every finding is acknowledged
    const acknowledged = heraldNagAcknowledgements(stack);
    for (const { scope, id } of acknowledged) {
      expect(raised.some((f) => f.startsWith(`${id} @ ${scope.node.path}/`) || f === `${id} @ ${scope.node.path}`), `${id} on ${scope.node.path}`).toBe(true);
    }
    for (const finding of raised) {
      const [id, path] = finding.split(' @ ') as [string, string];
      expect(acknowledged.some((a) => a.id === id && (path === a.scope.node.path || path.startsWith(`${a.scope.node.path}/`))), finding).toBe(true);
    }
    for (const { reason } of acknowledged) expect(reason.length).toBeGreaterThan(60);
  });
});

describe('HeraldStack', () => {
  const template = once(() => Template.fromStack(build().stack));

  it('names no physical resource except through the queue prefix', () => {
    const nameProperties: Record<string, string[]> = {
      'AWS::SNS::Topic': ['TopicName'],
      'AWS::DynamoDB::Table': ['TableName'],
      'AWS::S3::Bucket': ['BucketName'],
      'AWS::Lambda::Function': ['FunctionName'],
      'AWS::IAM::Role': ['RoleName'],
      'AWS::IAM::Policy': [],
      'AWS::ECS::Cluster': ['ClusterName'],
      'AWS::ECS::Service': ['ServiceName'],
      'AWS::ElasticLoadBalancingV2::LoadBalancer': ['Name'],
      'AWS::ElasticLoadBalancingV2::TargetGroup': ['Name'],
      'AWS::Logs::LogGroup': ['LogGroupName'],
      'AWS::CloudWatch::Dashboard': ['DashboardName'],
      'AWS::CloudWatch::Alarm': ['AlarmName'],
      'AWS::SecretsManager::Secret': ['Name'],
      'AWS::Events::Rule': ['Name'],
      'AWS::KMS::Key': [],
      'AWS::EC2::SecurityGroup': ['GroupName'],
    };
    const t = template().toJSON() as { Resources: Record<string, { Type: string; Properties?: Record<string, unknown> }> };
    for (const [id, resource] of Object.entries(t.Resources)) {
      for (const property of nameProperties[resource.Type] ?? []) {
        expect(resource.Properties?.[property], `${id}.${property}`).toBeUndefined();
      }
    }
  });

  it('uses the queue prefix only where queues are named: the IAM and endpoint policy ARNs, the node and janitor settings, the backlog query', () => {
    const t = Template.fromStack(build({ ...FIRST_TRY, queuePrefix: 'push-q' }).stack).toJSON() as { Resources: Record<string, { Properties?: unknown }> };
    // Properties only: the Metadata records cdk-nag acknowledgements, whose ids quote the IAM resources.
    const uses = JSON.stringify(Object.values(t.Resources).map((r) => r.Properties)).match(/.{0,24}push-q.{0,3}/g) ?? [];
    const kinds = uses.map((use) => {
      if (use.endsWith('push-q_*"')) return 'iam-arn';
      if (use.includes("LIKE 'push-q_%'")) return 'backlog-query';
      if (/"Value":"push-q"/.test(use) || /"HERALD_QUEUE_PREFIX":"push-q"/.test(use)) return 'setting';
      return use;
    });
    // Task role, janitor role and the SQS endpoint; node and janitor environments; the backlog alarm and its dashboard graph.
    expect(kinds.sort()).toEqual(['backlog-query', 'backlog-query', 'iam-arn', 'iam-arn', 'iam-arn', 'setting', 'setting']);
  });

  it('keeps the table and the logs when the stack is deleted', () => {
    const t = template();
    for (const type of ['AWS::DynamoDB::Table', 'AWS::S3::Bucket', 'AWS::Logs::LogGroup']) {
      for (const resource of Object.values(t.findResources(type))) expect((resource as { DeletionPolicy: string }).DeletionPolicy).toBe('Retain');
    }
  });

  it('refuses plain-HTTP access to the log bucket and blocks public access', () => {
    const t = template();
    t.hasResourceProperties('AWS::S3::Bucket', {
      PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
      LifecycleConfiguration: { Rules: [{ ExpirationInDays: 90, Status: 'Enabled' }] },
    });
    const [policy] = Object.values(t.findResources('AWS::S3::BucketPolicy')) as { Properties: { PolicyDocument: { Statement: Record<string, unknown>[] } } }[];
    expect(policy?.Properties.PolicyDocument.Statement).toContainEqual(
      expect.objectContaining({ Effect: 'Deny', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
    );
  });

  it('outputs what chat and job code and the browser need', () => {
    const outputs = template().toJSON() as { Outputs: Record<string, unknown> };
    expect(Object.keys(outputs.Outputs).sort()).toEqual(
      ['DashboardUrl', 'IngestTopicArn', 'JwtSecretArn', 'PublisherFunctionArn', 'PublisherFunctionName', 'QueuePrefix', 'TableName', 'TopicArn', 'TopicKeyArn', 'Url'].sort(),
    );
  });

  it('refuses to build a stack that would serve plain HTTP unless allowPlainHttp says so', () => {
    expect(() => build({})).toThrow(/domainName \(HERALD_DOMAIN_NAME\): is required: without it the load balancer serves plain HTTP.*allowPlainHttp=true/);
    expect(() => build({ allowPlainHttp: false })).toThrow(/allowPlainHttp=true \(HERALD_ALLOW_PLAIN_HTTP=true\) for a test stack/);
  });

  it('reads its settings from the environment when run by the CLI', () => {
    const { stack } = buildHeraldApp({
      env: { CDK_DEFAULT_REGION: 'eu-west-1', CDK_DEFAULT_ACCOUNT: '123456789012', HERALD_STACK_NAME: 'PushStaging', HERALD_MIN_TASKS: '1', HERALD_ALLOW_PLAIN_HTTP: 'true' },
      outdir: tempDir('app'),
      context: { 'aws:cdk:bundling-stacks': [], 'availability-zones:account=123456789012:region=eu-west-1': ['eu-west-1a', 'eu-west-1b', 'eu-west-1c'] },
      overrides: entries,
    });
    expect(stack.stackName).toBe('PushStaging');
    expect(stack.region).toBe('eu-west-1');
    expect(stack.account).toBe('123456789012');
    expect(stack.bus.queuePrefix).toBe('PushStaging');
    Template.fromStack(stack).hasResourceProperties('AWS::ECS::Service', { DesiredCount: 1 });
  });
});
