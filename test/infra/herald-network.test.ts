import { Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { describe, expect, it } from 'vitest';
import { HeraldNetwork, VPC_CIDR } from '../../lib/constructs/herald-network';
import { LogBucket } from '../../lib/constructs/log-bucket';
import { bareStack } from './infra-kit';

function setup(publicTasks?: boolean) {
  const stack = bareStack();
  const logs = new LogBucket(stack, 'Logs');
  const network = new HeraldNetwork(stack, 'Network', { flowLogBucket: logs.bucket, ...(publicTasks === undefined ? {} : { publicTasks }) });
  return { stack, network, logs, template: Template.fromStack(stack) };
}

/** A Fn::Join of strings and pseudo parameters, as one string (`<AWS::Region>` for a Ref). */
function flat(value: unknown): string {
  if (typeof value === 'string') return value;
  const join = (value as { 'Fn::Join'?: [string, unknown[]] })['Fn::Join'];
  if (join) return join[1].map(flat).join(join[0]);
  const ref = (value as { Ref?: string }).Ref;
  return ref === undefined ? JSON.stringify(value) : `<${ref}>`;
}

/** Endpoint service names, e.g. `sqs`, `ecr.dkr`, from `com.amazonaws.<region>.<name>`. */
function endpointServices(template: Template, type: 'Interface' | 'Gateway'): string[] {
  return Object.values(template.findResources('AWS::EC2::VPCEndpoint'))
    .map((e) => (e as { Properties: { VpcEndpointType: string; ServiceName: unknown } }).Properties)
    .filter((p) => p.VpcEndpointType === type)
    .map((p) => flat(p.ServiceName).replace(/^com\.amazonaws\.(<AWS::Region>|[a-z0-9-]+)\./, ''))
    .sort();
}

describe('HeraldNetwork', () => {
  it('puts tasks in private subnets over two AZs, with one NAT gateway', () => {
    const { network, template } = setup();
    template.resourceCountIs('AWS::EC2::Subnet', 4);
    template.resourceCountIs('AWS::EC2::NatGateway', 1);
    expect(network.taskSubnets).toEqual({ subnetType: 'Private' });
    expect(network.assignPublicIp).toBe(false);
    template.hasResourceProperties('AWS::EC2::VPC', { CidrBlock: VPC_CIDR });
  });

  it('reaches SQS, SNS, DynamoDB, CloudWatch Logs and ECR through VPC endpoints, so notification traffic skips the NAT', () => {
    const { template } = setup();
    expect(endpointServices(template, 'Interface')).toEqual(['ecr.api', 'ecr.dkr', 'logs', 'sns', 'sqs']);
    expect(endpointServices(template, 'Gateway')).toEqual(['dynamodb', 's3']);
  });

  it('opens the interface endpoints to HTTPS from the VPC only', () => {
    const { template } = setup();
    template.hasResourceProperties('AWS::EC2::SecurityGroup', {
      GroupDescription: 'Herald VPC endpoints: HTTPS from the VPC',
      SecurityGroupIngress: [{ CidrIp: VPC_CIDR, FromPort: 443, ToPort: 443, IpProtocol: 'tcp', Description: 'HTTPS from the VPC' }],
    });
  });

  it('in the cheapest setup has public subnets only, no NAT gateway and no interface endpoint', () => {
    const { network, template } = setup(true);
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
    template.resourceCountIs('AWS::EC2::Subnet', 2);
    expect(endpointServices(template, 'Interface')).toEqual([]);
    expect(endpointServices(template, 'Gateway')).toEqual(['dynamodb', 's3']);
    expect(network.taskSubnets).toEqual({ subnetType: 'Public' });
    expect(network.assignPublicIp).toBe(true);
  });

  it('lets a role through only the endpoints of its actions, on their resources, and leaves out services it has no endpoint for', () => {
    const stack = bareStack();
    const logs = new LogBucket(stack, 'Logs');
    const network = new HeraldNetwork(stack, 'Network', { flowLogBucket: logs.bucket });
    const role = new iam.Role(stack, 'Node', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') });
    network.allowThroughEndpoints(role, [
      { actions: ['sqs:ReceiveMessage', 'kms:Decrypt'], resources: ['arn:aws:sqs:us-east-1:123456789012:q_*'] },
      { actions: ['ecr:BatchGetImage'], resources: ['arn:aws:ecr:us-east-1:123456789012:repository/r'] },
    ]);
    const policies = Object.fromEntries(
      Object.values(Template.fromStack(stack).findResources('AWS::EC2::VPCEndpoint')).map((e) => {
        const p = (e as { Properties: { ServiceName: unknown; PolicyDocument?: { Statement: unknown[] } } }).Properties;
        return [flat(p.ServiceName).replace(/^com\.amazonaws\.(<AWS::Region>|[a-z0-9-]+)\./, ''), p.PolicyDocument?.Statement];
      }),
    );
    const through = (action: string, resource: string) => [
      { Effect: 'Allow', Principal: { AWS: '*' }, Action: action, Resource: resource, Condition: { ArnEquals: { 'aws:PrincipalArn': stack.resolve(role.roleArn) as unknown } } },
    ];
    expect(policies.sqs).toEqual(through('sqs:ReceiveMessage', 'arn:aws:sqs:us-east-1:123456789012:q_*'));
    expect(policies['ecr.api']).toEqual(through('ecr:BatchGetImage', 'arn:aws:ecr:us-east-1:123456789012:repository/r'));
    expect(policies['ecr.dkr']).toEqual(policies['ecr.api']);
    // Nothing allowed through yet: these keep the default policy until the stack allows its roles.
    expect(policies.sns).toBeUndefined();
    expect(JSON.stringify(policies)).not.toContain('kms:');
    expect(policies.s3).toEqual([
      { Effect: 'Allow', Principal: { AWS: '*' }, Action: 's3:GetObject', Resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':s3:::prod-us-east-1-starport-layer-bucket/*']] } },
    ]);
  });

  it('writes rejected-traffic flow logs to the log bucket', () => {
    const { stack, logs, template } = setup();
    const [flowLog] = Object.values(template.findResources('AWS::EC2::FlowLog')) as { Properties: Record<string, unknown> }[];
    expect(flowLog?.Properties).toMatchObject({ LogDestinationType: 's3', TrafficType: 'REJECT' });
    expect(flowLog?.Properties.LogDestination).toEqual({ 'Fn::Join': ['', [stack.resolve(logs.bucket.bucketArn), '/vpc-flow-logs/']] });
  });
});
