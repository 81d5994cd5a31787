import { Duration, type Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as route53 from 'aws-cdk-lib/aws-route53';
import { describe, expect, it } from 'vitest';
import { HeraldNetwork } from '../../lib/constructs/herald-network';
import { HeraldTable } from '../../lib/constructs/herald-table';
import { LogBucket } from '../../lib/constructs/log-bucket';
import { NodeBus } from '../../lib/constructs/node-bus';
import { HIDDEN_PATH_PATTERNS, SseService, type SseServiceProps } from '../../lib/constructs/sse-service';
import { nodeImageFromRepository } from '../../lib/herald-stack';
import { PROBE_TIMEOUT_MS } from '../../services/adapters/aws/sns-sqs-bus';
import { loadConfig, MAX_DRAIN_MS } from '../../services/node/config';
import { EMF_NAMESPACE, emfRecord } from '../../services/node/emf';
import { bareStack, grantsOf, once, REGION, resolved } from './infra-kit';

type Extra = Partial<Omit<SseServiceProps, 'vpc' | 'bus' | 'table' | 'image' | 'accessLogBucket'>>;

/** `extra` may be a function of the stack, for props that are constructs in it (a certificate). */
function setup(extra: Extra | ((stack: Stack) => Extra) = {}, withZone = false) {
  const stack = bareStack();
  const logs = new LogBucket(stack, 'Logs');
  const network = new HeraldNetwork(stack, 'Network', { flowLogBucket: logs.bucket });
  const bus = new NodeBus(stack, 'Bus', { queuePrefix: 'herald-test' });
  const table = new HeraldTable(stack, 'Table');
  const hostedZone = withZone ? route53.HostedZone.fromHostedZoneAttributes(stack, 'Zone', { hostedZoneId: 'Z123EXAMPLE', zoneName: 'example.com' }) : undefined;
  const service = new SseService(stack, 'Nodes', {
    vpc: network.vpc,
    taskSubnets: network.taskSubnets,
    bus,
    table,
    image: nodeImageFromRepository(),
    accessLogBucket: logs.bucket,
    // A test stack: without a domain it serves plain HTTP, which it must say it allows.
    allowPlainHttp: true,
    ...(hostedZone === undefined ? {} : { hostedZone }),
    ...(typeof extra === 'function' ? extra(stack) : extra),
  });
  return { stack, service, bus, table, logs, template: Template.fromStack(stack) };
}

/** The default service, synthesized once for the tests that only read it. */
const defaults = once(() => setup());

interface ContainerDefinition {
  Environment: { Name: string; Value: unknown }[];
  Secrets?: { Name: string; ValueFrom: unknown }[];
  StopTimeout: number;
  ReadonlyRootFilesystem: boolean;
  PortMappings: { ContainerPort: number }[];
}

function container(template: Template): ContainerDefinition {
  const [taskDef] = Object.values(template.findResources('AWS::ECS::TaskDefinition')) as { Properties: { ContainerDefinitions: ContainerDefinition[] } }[];
  const [definition] = taskDef?.Properties.ContainerDefinitions ?? [];
  if (!definition) throw new Error('no container definition');
  return definition;
}

function env(template: Template): Record<string, unknown> {
  return Object.fromEntries(container(template).Environment.map((e) => [e.Name, e.Value]));
}

function attributes(template: Template, type: string, key: string): Record<string, string> {
  const [resource] = Object.values(template.findResources(type)) as { Properties: Record<string, { Key: string; Value: string }[]> }[];
  return Object.fromEntries((resource?.Properties[key] ?? []).map((a) => [a.Key, a.Value]));
}

function listeners(template: Template): { Port: number; Protocol: string; DefaultActions: Record<string, unknown>[]; Certificates?: unknown[] }[] {
  return Object.values(template.findResources('AWS::ElasticLoadBalancingV2::Listener')).map(
    (l) => (l as { Properties: { Port: number; Protocol: string; DefaultActions: Record<string, unknown>[]; Certificates?: unknown[] } }).Properties,
  );
}

describe('SseService: the settings long-lived streams need', () => {
  it('keeps idle streams open at least an hour, far longer than the heartbeat', () => {
    const { template } = defaults();
    const idleSeconds = Number(attributes(template, 'AWS::ElasticLoadBalancingV2::LoadBalancer', 'LoadBalancerAttributes')['idle_timeout.timeout_seconds']);
    const heartbeatMs = Number(env(template).HERALD_HEARTBEAT_MS);
    expect(idleSeconds).toBeGreaterThanOrEqual(3600);
    expect(heartbeatMs).toBe(15_000);
    expect(idleSeconds * 1000).toBeGreaterThan(2 * heartbeatMs);
  });

  it('sets the deregistration delay to the drain window, inside the 120 s stop timeout', () => {
    const { template } = setup({ drainWindow: Duration.seconds(100) });
    const delaySeconds = Number(attributes(template, 'AWS::ElasticLoadBalancingV2::TargetGroup', 'TargetGroupAttributes')['deregistration_delay.timeout_seconds']);
    const drainMs = Number(env(template).HERALD_DRAIN_MS);
    const stopTimeout = container(template).StopTimeout;
    expect(delaySeconds * 1000).toBe(drainMs);
    expect(stopTimeout).toBe(120);
    expect(delaySeconds).toBeLessThan(stopTimeout);
    expect(drainMs).toBeLessThanOrEqual(MAX_DRAIN_MS);
  });

  it('defaults the drain window to 90 s', () => {
    const { template } = defaults();
    expect(env(template).HERALD_DRAIN_MS).toBe('90000');
    expect(attributes(template, 'AWS::ElasticLoadBalancingV2::TargetGroup', 'TargetGroupAttributes')['deregistration_delay.timeout_seconds']).toBe('90');
  });

  it.each([
    [{ drainWindow: Duration.seconds(111) }, /drainWindow must be at most 110 s/],
    [{ drainWindow: Duration.millis(1500) }, /whole seconds/],
    [{ heartbeat: Duration.minutes(31), idleTimeout: Duration.seconds(3600) }, /heartbeat must be 1-300 s/],
    [{ idleTimeout: Duration.seconds(3599) }, /idleTimeout must be 3600-4000 s/],
    [{ maxTasks: 201 }, /maxTasks must be between minTasks and 200/],
    [{ minTasks: 3, maxTasks: 2 }, /maxTasks must be between minTasks and 200/],
  ] as [Extra, RegExp][])('refuses %j', (extra, message) => {
    expect(() => setup(extra)).toThrow(message);
  });

  it('speaks HTTP/2 to browsers, drops malformed headers and logs access to the encrypted bucket', () => {
    const { stack, logs, template } = defaults();
    const attrs = attributes(template, 'AWS::ElasticLoadBalancingV2::LoadBalancer', 'LoadBalancerAttributes');
    expect(attrs).toMatchObject({
      'routing.http2.enabled': 'true',
      'routing.http.drop_invalid_header_fields.enabled': 'true',
      'access_logs.s3.enabled': 'true',
    });
    expect(attrs['access_logs.s3.bucket']).toEqual(resolved(stack, logs.bucket.bucketName));
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', { Scheme: 'internet-facing', Type: 'application' });
    template.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
    });
  });

  it('checks /healthz and sends each new stream to the task holding the fewest', () => {
    const { template } = defaults();
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      HealthCheckPath: '/healthz',
      Matcher: { HttpCode: '200' },
      Port: 8080,
      TargetType: 'ip',
    });
    expect(attributes(template, 'AWS::ElasticLoadBalancingV2::TargetGroup', 'TargetGroupAttributes')['load_balancing.algorithm.type']).toBe(
      'least_outstanding_requests',
    );
  });
});

describe('SseService: the Fargate service', () => {
  it('ignores failing health checks of a new task for longer than its node waits to confirm its subscription', () => {
    const { template } = defaults();
    const [service] = Object.values(template.findResources('AWS::ECS::Service')) as { Properties: { HealthCheckGracePeriodSeconds: number } }[];
    const graceSeconds = service?.Properties.HealthCheckGracePeriodSeconds ?? 0;
    // The node opens its port (so /healthz answers) only once its probe came back, or exits after PROBE_TIMEOUT_MS.
    expect(graceSeconds * 1000).toBeGreaterThan(PROBE_TIMEOUT_MS);
    expect(graceSeconds).toBe(150);
  });

  it('runs 2 tasks on Graviton, replaces them with a circuit breaker that rolls back and never drops below 100 %', () => {
    const { template } = defaults();
    template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      RuntimePlatform: { CpuArchitecture: 'ARM64', OperatingSystemFamily: 'LINUX' },
      Cpu: '512',
      Memory: '1024',
      RequiresCompatibilities: ['FARGATE'],
    });
    template.hasResourceProperties('AWS::ECS::Service', {
      DesiredCount: 2,
      LaunchType: 'FARGATE',
      DeploymentConfiguration: {
        DeploymentCircuitBreaker: { Enable: true, Rollback: true },
        MinimumHealthyPercent: 100,
        MaximumPercent: 200,
      },
      NetworkConfiguration: { AwsvpcConfiguration: { AssignPublicIp: 'DISABLED' } },
    });
    expect(container(template)).toMatchObject({ ReadonlyRootFilesystem: true, PortMappings: [{ ContainerPort: 8080 }] });
  });

  it('runs the node in aws mode with the names of its topic, table and queue prefix', () => {
    const { stack, bus, table, template } = defaults();
    expect(env(template)).toEqual({
      HERALD_MODE: 'aws',
      HERALD_PORT: '8080',
      HERALD_TOPIC_ARN: resolved(stack, bus.topic.topicArn),
      HERALD_TABLE_NAME: resolved(stack, table.table.tableName),
      HERALD_QUEUE_PREFIX: 'herald-test',
      AWS_REGION: REGION,
      HERALD_TAB_POLICY: 'single',
      HERALD_HEARTBEAT_MS: '15000',
      HERALD_DRAIN_MS: '90000',
      HERALD_SERVICE_NAME: 'Test',
      HERALD_TRUST_PROXY: 'true',
    });
  });

  it('injects the generated HS256 secret from Secrets Manager, never as a plain variable', () => {
    const { stack, service, template } = defaults();
    expect(service.jwtSecret).toBeDefined();
    expect(env(template)).not.toHaveProperty('HERALD_JWT_SECRET');
    expect(container(template).Secrets).toEqual([{ Name: 'HERALD_JWT_SECRET', ValueFrom: resolved(stack, service.jwtSecret?.secretArn) }]);
    template.hasResourceProperties('AWS::SecretsManager::Secret', {
      GenerateSecretString: { PasswordLength: 64, ExcludePunctuation: true, IncludeSpace: false },
    });
  });

  it('verifies tokens with a JWKS when one is given, and then makes no secret', () => {
    const { template, service } = setup({ jwksUrl: 'https://id.example.com/.well-known/jwks.json', jwtIssuer: 'https://id.example.com/', jwtAudience: 'herald' });
    expect(env(template)).toMatchObject({
      HERALD_JWKS_URL: 'https://id.example.com/.well-known/jwks.json',
      HERALD_JWT_ISSUER: 'https://id.example.com/',
      HERALD_JWT_AUDIENCE: 'herald',
    });
    expect(container(template).Secrets).toBeUndefined();
    template.resourceCountIs('AWS::SecretsManager::Secret', 0);
    expect(() => service.grantReadJwtSecret(service.taskRole)).toThrow(/JWKS/);
  });

  it('refuses a JWKS without issuer and audience', () => {
    expect(() => setup({ jwksUrl: 'https://id.example.com/jwks.json' })).toThrow(/jwtIssuer and jwtAudience/);
  });

  it('has a task role and an execution role, and the task role can be assumed only by ECS for this account', () => {
    const { stack, service, template } = defaults();
    const [taskDef] = Object.values(template.findResources('AWS::ECS::TaskDefinition')) as { Properties: { TaskRoleArn: unknown; ExecutionRoleArn: unknown } }[];
    expect(taskDef?.Properties.TaskRoleArn).toEqual(resolved(stack, service.taskRole.roleArn));
    expect(taskDef?.Properties.ExecutionRoleArn).toEqual(resolved(stack, service.executionRole.roleArn));
    expect(resolved(stack, service.taskRole.roleArn)).not.toEqual(resolved(stack, service.executionRole.roleArn));
    template.hasResourceProperties('AWS::IAM::Role', {
      Description: 'Herald node: its own queue, the topic, the table',
      AssumeRolePolicyDocument: {
        Statement: [
          {
            Action: 'sts:AssumeRole',
            Effect: 'Allow',
            Principal: { Service: 'ecs-tasks.amazonaws.com' },
            Condition: {
              StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } },
              ArnLike: { 'aws:SourceArn': { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:ecs:${REGION}:`, { Ref: 'AWS::AccountId' }, ':*']] } },
            },
          },
        ],
      },
    });
  });

  it('lets the task role touch its queues, the topic, the key and the table, and nothing else', () => {
    const { stack, service, bus, table, template } = defaults();
    const topic = resolved(stack, bus.topic.topicArn);
    expect(grantsOf(template, stack, service.taskRole)).toEqual([
      {
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
        resource: resolved(stack, bus.nodeQueuesArn),
      },
      { actions: ['sns:Subscribe'], resource: topic },
      { actions: ['sns:Unsubscribe'], resource: '*' },
      { actions: ['sns:Publish'], resource: topic },
      { actions: ['kms:GenerateDataKey', 'kms:Decrypt'], resource: resolved(stack, bus.key.keyArn) },
      {
        actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:Query', 'dynamodb:BatchGetItem', 'dynamodb:BatchWriteItem'],
        resource: [resolved(stack, table.table.tableArn)],
      },
    ]);
  });

  it('lets the execution role pull from the CDK asset repository, write its own log group and read its own secret', () => {
    const { stack, service, template } = defaults();
    const [logGroupId] = Object.keys(template.findResources('AWS::Logs::LogGroup'));
    expect(grantsOf(template, stack, service.executionRole)).toEqual([
      {
        actions: ['ecr:BatchCheckLayerAvailability', 'ecr:GetDownloadUrlForLayer', 'ecr:BatchGetImage'],
        resource: {
          'Fn::Join': [
            '',
            [
              'arn:',
              { Ref: 'AWS::Partition' },
              `:ecr:${REGION}:`,
              { Ref: 'AWS::AccountId' },
              ':repository/',
              { 'Fn::Sub': `cdk-hnb659fds-container-assets-\${AWS::AccountId}-${REGION}` },
            ],
          ],
        },
      },
      { actions: ['ecr:GetAuthorizationToken'], resource: '*' },
      { actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resource: { 'Fn::GetAtt': [logGroupId, 'Arn'] } },
      { actions: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'], resource: resolved(stack, service.jwtSecret?.secretArn) },
    ]);
  });
});

describe('SseService: HTTPS', () => {
  it('serves plain HTTP on the ALB name when no domain is given, for a first try', () => {
    const { service, stack, template } = defaults();
    expect(listeners(template)).toEqual([expect.objectContaining({ Port: 80, Protocol: 'HTTP', DefaultActions: [expect.objectContaining({ Type: 'forward' })] })]);
    expect(resolved(stack, service.url)).toEqual({ 'Fn::Join': ['', ['http://', resolved(stack, service.loadBalancer.loadBalancerDnsName)]] });
  });

  it('serves HTTPS with the given certificate and redirects HTTP to it', () => {
    const { template, service } = setup((stack) => ({
      domainName: 'push.example.com',
      certificate: acm.Certificate.fromCertificateArn(stack, 'Cert', 'arn:aws:acm:us-east-1:123456789012:certificate/abc'),
    }));
    const all = listeners(template).sort((a, b) => a.Port - b.Port);
    expect(all).toHaveLength(2);
    expect(all[0]).toMatchObject({ Port: 80, Protocol: 'HTTP', DefaultActions: [{ Type: 'redirect', RedirectConfig: { Protocol: 'HTTPS', Port: '443', StatusCode: 'HTTP_301' } }] });
    expect(all[1]).toMatchObject({ Port: 443, Protocol: 'HTTPS', Certificates: [{ CertificateArn: 'arn:aws:acm:us-east-1:123456789012:certificate/abc' }] });
    expect(service.url).toBe('https://push.example.com');
  });

  it('makes a DNS-validated certificate and an alias record when given the hosted zone', () => {
    const { template } = setup({ domainName: 'push.example.com' }, true);
    template.hasResourceProperties('AWS::CertificateManager::Certificate', {
      DomainName: 'push.example.com',
      ValidationMethod: 'DNS',
      DomainValidationOptions: [{ DomainName: 'push.example.com', HostedZoneId: 'Z123EXAMPLE' }],
    });
    template.hasResourceProperties('AWS::Route53::RecordSet', { Name: 'push.example.com.', Type: 'A', HostedZoneId: 'Z123EXAMPLE', AliasTarget: Match.objectLike({}) });
  });

  it('refuses a domain with neither a certificate nor a zone', () => {
    expect(() => setup({ domainName: 'push.example.com' })).toThrow(/certificate or a hostedZone/);
  });

  it('refuses to serve plain HTTP, where tokens and cookies cross the internet in clear, unless allowPlainHttp says so', () => {
    expect(() => setup({ allowPlainHttp: false })).toThrow(/no domainName, so its load balancer would serve plain HTTP.*allowPlainHttp: true \(context allowPlainHttp=true\)/);
  });
});

describe('SseService: /metrics is not served through the load balancer', () => {
  interface Rule {
    ListenerArn: unknown;
    Priority: number;
    Conditions: { Field: string; PathPatternConfig?: { Values: string[] } }[];
    Actions: { Type: string; FixedResponseConfig?: { StatusCode: string; ContentType: string; MessageBody: string } }[];
  }
  const rules = (template: Template): Rule[] => Object.values(template.findResources('AWS::ElasticLoadBalancingV2::ListenerRule')).map((r) => (r as { Properties: Rule }).Properties);
  const hiddenRule = (listenerArn: unknown): Rule => ({
    ListenerArn: listenerArn,
    Priority: 1,
    Conditions: [{ Field: 'path-pattern', PathPatternConfig: { Values: [...HIDDEN_PATH_PATTERNS] } }],
    Actions: [{ Type: 'fixed-response', FixedResponseConfig: { StatusCode: '404', ContentType: 'application/json', MessageBody: '{"error":"not_found","message":"no such path"}' } }],
  });

  it('answers /metrics 404 on the plain-HTTP listener before forwarding anything, keeping it on the task port', () => {
    const { stack, service, template } = defaults();
    const [http] = service.loadBalancer.listeners;
    expect(rules(template)).toEqual([hiddenRule(resolved(stack, http?.listenerArn))]);
    // The forward is the default action, evaluated after every rule; the health check and the target port are untouched.
    expect(listeners(template)).toEqual([expect.objectContaining({ DefaultActions: [expect.objectContaining({ Type: 'forward' })] })]);
    expect(container(template).PortMappings).toEqual([expect.objectContaining({ ContainerPort: 8080 })]);
  });

  it('answers /metrics 404 on the HTTPS listener, and only redirects on port 80', () => {
    const { stack, service, template } = setup((s) => ({
      domainName: 'push.example.com',
      certificate: acm.Certificate.fromCertificateArn(s, 'Cert', 'arn:aws:acm:us-east-1:123456789012:certificate/abc'),
    }));
    const https = service.loadBalancer.listeners.find((l) => (l.node.defaultChild as { port?: number }).port === 443);
    expect(rules(template)).toEqual([hiddenRule(resolved(stack, https?.listenerArn))]);
  });

  /** The ALB's path-pattern matching: case-sensitive, `*` any run of characters, `?` exactly one. */
  const albMatches = (pattern: string, path: string): boolean =>
    new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`).test(path);
  const hidden = (path: string): boolean => HIDDEN_PATH_PATTERNS.some((p) => albMatches(p, path));

  it.each(['/metrics', '/%6Detrics', '/%6detrics', '/./metrics', '/x/../metrics', '/%2e/metrics', '/events/../metrics'])(
    'hides %s, which the node would answer as /metrics',
    (path) => expect(hidden(path)).toBe(true),
  );

  it.each(['/events', '/herald-client.js', '/openapi.json', '/healthz', '/publish', '/'])('forwards %s', (path) => expect(hidden(path)).toBe(false));
});

describe('SseService: scaling', () => {
  function policies(template: Template) {
    return Object.values(template.findResources('AWS::ApplicationAutoScaling::ScalingPolicy')).map(
      (p) => (p as { Properties: { TargetTrackingScalingPolicyConfiguration: Record<string, unknown> } }).Properties.TargetTrackingScalingPolicyConfiguration,
    );
  }

  it('tracks open streams per task — the metric the nodes emit — with a CPU policy beside it', () => {
    const { template } = setup({ connectionsPerTask: 4000 });
    const all = policies(template);
    expect(all).toHaveLength(2);
    const connections = all.find((p) => p.CustomizedMetricSpecification !== undefined);
    const emitted = emfRecord({ timestampMs: 0, serviceName: 'x', activeConnections: 1, deliveries: 0, slowConsumerCuts: 0 });
    expect(connections).toMatchObject({
      TargetValue: 4000,
      CustomizedMetricSpecification: {
        Namespace: EMF_NAMESPACE,
        MetricName: 'ActiveConnections',
        Dimensions: [{ Name: 'ServiceName', Value: env(template).HERALD_SERVICE_NAME }],
        Statistic: 'Average',
      },
    });
    expect(emitted._aws.CloudWatchMetrics[0].Metrics.map((m) => m.Name)).toContain('ActiveConnections');
    expect(emitted._aws.CloudWatchMetrics[0].Dimensions).toEqual([['ServiceName']]);
    expect(all.find((p) => p.PredefinedMetricSpecification !== undefined)).toMatchObject({
      PredefinedMetricSpecification: { PredefinedMetricType: 'ECSServiceAverageCPUUtilization' },
      TargetValue: 60,
    });
  });

  it('tracks 10,000 streams per task by default, below the node\'s own connection cap', () => {
    const { template } = setup({});
    const connections = policies(template).find((p) => p.CustomizedMetricSpecification !== undefined);
    expect(connections?.TargetValue).toBe(10_000);
    // A task must scale out before its nodes start refusing streams at HERALD_MAX_CONNECTIONS.
    expect(connections?.TargetValue).toBeLessThan(loadConfig({}).maxConnections);
  });

  it('scales between the min and max tasks given', () => {
    const { template } = setup({ minTasks: 3, maxTasks: 40 });
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', { MinCapacity: 3, MaxCapacity: 40 });
    template.hasResourceProperties('AWS::ECS::Service', { DesiredCount: 3 });
  });
});
