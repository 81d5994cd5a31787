/**
 * The VPC endpoints of the whole stack let through only what Herald's tasks
 * do: each endpoint's policy names the node's role (or the execution role, for
 * the image pull and the logs) and the same actions on the same resources as
 * that role's IAM grants, so the two cannot drift apart.
 */
import { Template } from 'aws-cdk-lib/assertions';
import type * as iam from 'aws-cdk-lib/aws-iam';
import { describe, expect, it } from 'vitest';
import { buildHeraldApp } from '../../bin/herald';
import { entryOrFixture, once, REGION, statementsOf, tempDir, type Statement } from './infra-kit';

function build(settings: Record<string, unknown>) {
  const { stack } = buildHeraldApp({
    env: {},
    outdir: tempDir('app'),
    context: { region: REGION, allowPlainHttp: true, 'aws:cdk:bundling-stacks': [], '@aws-cdk/core:failSynthOnValidationErrors': false, ...settings },
    overrides: { publisherEntry: entryOrFixture('services/publisher/lambda.ts'), janitorEntry: entryOrFixture('services/janitor/lambda.ts') },
  });
  return { stack, template: Template.fromStack(stack) };
}

const privateTasks = once(() => build({}));
const publicTasks = once(() => build({ publicTasks: true }));

interface EndpointStatement extends Statement {
  readonly Principal: unknown;
}

interface Endpoint {
  /** `sqs`, `ecr.dkr`, `dynamodb`, … */
  readonly service: string;
  readonly statements: EndpointStatement[] | undefined;
}

/** A Fn::Join of strings and pseudo parameters, as one string (`<AWS::Region>` for a Ref). */
function flat(value: unknown): string {
  if (typeof value === 'string') return value;
  const join = (value as { 'Fn::Join'?: [string, unknown[]] })['Fn::Join'];
  if (join) return join[1].map(flat).join(join[0]);
  const ref = (value as { Ref?: string }).Ref;
  return ref === undefined ? JSON.stringify(value) : `<${ref}>`;
}

function endpoints(template: Template): Endpoint[] {
  return Object.values(template.findResources('AWS::EC2::VPCEndpoint')).map((resource) => {
    const { ServiceName, PolicyDocument } = (resource as { Properties: { ServiceName: unknown; PolicyDocument?: { Statement: EndpointStatement[] } } }).Properties;
    return { service: flat(ServiceName).replace(/^com\.amazonaws\.(<AWS::Region>|[a-z0-9-]+)\./, ''), statements: PolicyDocument?.Statement };
  });
}

const list = (value: string | string[]): string[] => (Array.isArray(value) ? value : [value]);

/** `action → resource` pairs an endpoint lets `role` through with. */
function throughEndpoint(stack: ReturnType<typeof build>['stack'], endpoint: Endpoint, role: iam.IRole): string[] {
  const arn = JSON.stringify(stack.resolve(role.roleArn));
  return (endpoint.statements ?? [])
    .filter((s) => JSON.stringify((s.Condition as { ArnEquals?: Record<string, unknown> } | undefined)?.ArnEquals?.['aws:PrincipalArn']) === arn)
    .flatMap((s) => list(s.Action).map((action) => `${action} → ${JSON.stringify(s.Resource)}`))
    .sort();
}

/** `action → resource` pairs the role's IAM policies grant on actions of `prefix`. */
function granted(template: Template, stack: ReturnType<typeof build>['stack'], role: iam.IRole, prefix: string): string[] {
  return statementsOf(template, stack, role)
    .flatMap((s) => list(s.Action).map((action) => ({ action, resource: s.Resource })))
    .filter(({ action }) => action.startsWith(`${prefix}:`))
    .map(({ action, resource }) => `${action} → ${JSON.stringify(Array.isArray(resource) && resource.length === 1 ? resource[0] : resource)}`)
    .sort();
}

describe('the VPC endpoint policies', () => {
  it('replace the default (any principal, any resource) on every endpoint', () => {
    const { template } = privateTasks();
    const all = endpoints(template);
    expect(all.map((e) => e.service).sort()).toEqual(['dynamodb', 'ecr.api', 'ecr.dkr', 'logs', 's3', 'sns', 'sqs']);
    for (const endpoint of all) {
      expect(endpoint.statements, endpoint.service).toBeDefined();
      for (const statement of endpoint.statements ?? []) expect(statement.Effect, endpoint.service).toBe('Allow');
    }
  });

  it.each(['sqs', 'sns', 'dynamodb'])('let the node role through %s with exactly what IAM grants it there, and no one else', (service) => {
    const { stack, template } = privateTasks();
    const endpoint = endpoints(template).find((e) => e.service === service)!;
    const taskRole = stack.service.taskRole;
    const through = throughEndpoint(stack, endpoint, taskRole);
    expect(through.length).toBeGreaterThan(0);
    expect(through).toEqual(granted(template, stack, taskRole, service));
    // Every statement names the node role: nobody else's credentials get through.
    expect(through).toHaveLength(endpoint.statements!.flatMap((s) => list(s.Action)).length);
  });

  it('let the execution role write its log group through the logs endpoint, and pull from this account’s ECR repositories only', () => {
    const { stack, template } = privateTasks();
    const executionRole = stack.service.executionRole;
    const all = endpoints(template);
    const logs = all.find((e) => e.service === 'logs')!;
    expect(throughEndpoint(stack, logs, executionRole)).toEqual(granted(template, stack, executionRole, 'logs'));
    expect(logs.statements).toHaveLength(1);
    const repositories = JSON.stringify({ 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:ecr:${REGION}:`, { Ref: 'AWS::AccountId' }, ':repository/*']] });
    for (const service of ['ecr.api', 'ecr.dkr']) {
      const ecr = all.find((e) => e.service === service)!;
      expect(throughEndpoint(stack, ecr, executionRole), service).toEqual(
        [
          'ecr:GetAuthorizationToken → "*"',
          `ecr:BatchCheckLayerAvailability → ${repositories}`,
          `ecr:GetDownloadUrlForLayer → ${repositories}`,
          `ecr:BatchGetImage → ${repositories}`,
        ].sort(),
      );
      expect(ecr.statements, service).toHaveLength(2);
      // The same actions as the role's IAM grants, which name the one assets repository.
      expect(granted(template, stack, executionRole, 'ecr').map((g) => g.split(' → ')[0]).sort()).toEqual(
        ['ecr:BatchCheckLayerAvailability', 'ecr:BatchGetImage', 'ecr:GetAuthorizationToken', 'ecr:GetDownloadUrlForLayer'],
      );
    }
  });

  it('let image layers through S3 from ECR’s layer bucket in this region only', () => {
    const { template } = privateTasks();
    const s3 = endpoints(template).find((e) => e.service === 's3')!;
    expect(s3.statements).toEqual([
      {
        Effect: 'Allow',
        Principal: { AWS: '*' },
        Action: 's3:GetObject',
        Resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:s3:::prod-${REGION}-starport-layer-bucket/*`]] },
      },
    ]);
  });

  it('limit the gateway endpoints of public tasks too, which reach DynamoDB and S3 through them', () => {
    const { stack, template } = publicTasks();
    const all = endpoints(template);
    expect(all.map((e) => e.service).sort()).toEqual(['dynamodb', 's3']);
    const dynamodb = all.find((e) => e.service === 'dynamodb')!;
    expect(throughEndpoint(stack, dynamodb, stack.service.taskRole)).toEqual(granted(template, stack, stack.service.taskRole, 'dynamodb'));
    expect(all.find((e) => e.service === 's3')?.statements).toHaveLength(1);
  });
});
