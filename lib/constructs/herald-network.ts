import { Aws, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

/** A literal range, so the endpoint rule names it (not a token cdk-nag cannot read). */
export const VPC_CIDR = '10.0.0.0/16';

/** Actions on resources, as a role is granted them: what an endpoint policy lets that role do through the endpoint. */
export interface EndpointAccess {
  readonly actions: readonly string[];
  readonly resources: readonly string[];
}

export interface HeraldNetworkProps {
  /**
   * Run the tasks in public subnets with public IPs, with no NAT gateway and no
   * interface endpoints: the cheapest setup, for a first try or a small
   * install. The tasks still accept traffic only from the load balancer.
   * @default false - tasks in private subnets, AWS services reached through VPC endpoints
   */
  readonly publicTasks?: boolean;
  /** Receives the VPC flow logs (rejected traffic only). */
  readonly flowLogBucket: s3.IBucket;
}

/**
 * The VPC over two availability zones. With private tasks, the services a node
 * talks to for every notification (SQS, SNS, DynamoDB) and those a task needs
 * to start (ECR, CloudWatch Logs) are reached through VPC endpoints, so that
 * traffic never pays the NAT gateway's per-GB charge. The one NAT gateway is
 * left for the rest: fetching a JWKS, Secrets Manager at task start.
 */
export class HeraldNetwork extends Construct {
  readonly vpc: ec2.IVpc;
  /** Where the Fargate tasks run. */
  readonly taskSubnets: ec2.SubnetSelection;
  /** Public tasks need a public IP to reach ECR and the AWS APIs without NAT. */
  readonly assignPublicIp: boolean;
  /**
   * The endpoints by the IAM prefix of the actions that go through them. An
   * endpoint keeps the default policy (any principal, any account's queues,
   * topics and tables) until something is allowed through it; from then on its
   * policy allows only that. The stack allows its roles through every one.
   */
  private readonly endpoints = new Map<string, ec2.VpcEndpoint[]>();

  constructor(scope: Construct, id: string, props: HeraldNetworkProps) {
    super(scope, id);
    const publicTasks = props.publicTasks ?? false;
    const vpc = new ec2.Vpc(this, 'Vpc', {
      ipAddresses: ec2.IpAddresses.cidr(VPC_CIDR),
      maxAzs: 2,
      natGateways: publicTasks ? 0 : 1,
      subnetConfiguration: [
        { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
        ...(publicTasks ? [] : [{ name: 'tasks', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 20 }]),
      ],
    });
    // Gateway endpoints cost nothing: DynamoDB for every owner/history call, S3 for ECR image layers.
    this.endpoints.set('dynamodb', [vpc.addGatewayEndpoint('DynamoDb', { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB })]);
    const layers = vpc.addGatewayEndpoint('S3', { service: ec2.GatewayVpcEndpointAwsService.S3 });
    // ECR keeps image layers in its own bucket and hands out URLs it signed itself, so the
    // principal is ECR's, not the task's: the bucket is the limit (ECR user guide, "Amazon ECR interface VPC endpoints").
    layers.addToPolicy(
      new iam.PolicyStatement({
        principals: [new iam.AnyPrincipal()],
        actions: ['s3:GetObject'],
        resources: [`arn:${Aws.PARTITION}:s3:::prod-${Stack.of(this).region}-starport-layer-bucket/*`],
      }),
    );
    vpc.addFlowLog('FlowLog', {
      destination: ec2.FlowLogDestination.toS3(props.flowLogBucket, 'vpc-flow-logs/'),
      trafficType: ec2.FlowLogTrafficType.REJECT,
    });
    if (!publicTasks) {
      // One group for all endpoints: HTTPS from inside the VPC, nothing else.
      const endpointSecurityGroup = new ec2.SecurityGroup(this, 'EndpointSecurityGroup', {
        vpc,
        description: 'Herald VPC endpoints: HTTPS from the VPC',
        allowAllOutbound: false,
      });
      endpointSecurityGroup.addIngressRule(ec2.Peer.ipv4(VPC_CIDR), ec2.Port.tcp(443), 'HTTPS from the VPC');
      // Both ECR endpoints authorize the pull with the same `ecr:` actions (the registry API of ecr.dkr included).
      const endpoints: [string, ec2.InterfaceVpcEndpointAwsService, string][] = [
        ['Sqs', ec2.InterfaceVpcEndpointAwsService.SQS, 'sqs'],
        ['Sns', ec2.InterfaceVpcEndpointAwsService.SNS, 'sns'],
        ['Logs', ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS, 'logs'],
        ['EcrApi', ec2.InterfaceVpcEndpointAwsService.ECR, 'ecr'],
        ['EcrDocker', ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER, 'ecr'],
      ];
      for (const [name, service, prefix] of endpoints) {
        const endpoint = vpc.addInterfaceEndpoint(name, {
          service,
          subnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
          privateDnsEnabled: true,
          securityGroups: [endpointSecurityGroup],
          open: false,
        });
        this.endpoints.set(prefix, [...(this.endpoints.get(prefix) ?? []), endpoint]);
      }
    }
    this.vpc = vpc;
    this.taskSubnets = { subnetType: publicTasks ? ec2.SubnetType.PUBLIC : ec2.SubnetType.PRIVATE_WITH_EGRESS };
    this.assignPublicIp = publicTasks;
  }

  /**
   * Lets `role`, and no other principal, do `access` through the endpoints its
   * actions go through. Actions of a service with no endpoint here (KMS,
   * Secrets Manager) are left out: they leave through the NAT gateway or,
   * for KMS, are made by SNS itself.
   */
  allowThroughEndpoints(role: iam.IRole, access: readonly EndpointAccess[]): void {
    for (const { actions, resources } of access) {
      const byPrefix = new Map<string, string[]>();
      for (const action of actions) {
        const prefix = action.slice(0, action.indexOf(':'));
        byPrefix.set(prefix, [...(byPrefix.get(prefix) ?? []), action]);
      }
      for (const [prefix, prefixed] of byPrefix) {
        for (const endpoint of this.endpoints.get(prefix) ?? []) {
          endpoint.addToPolicy(
            new iam.PolicyStatement({
              // aws:PrincipalArn is the role's own ARN for every session of the role.
              principals: [new iam.AnyPrincipal()],
              actions: prefixed,
              resources: [...resources],
              conditions: { ArnEquals: { 'aws:PrincipalArn': role.roleArn } },
            }),
          );
        }
      }
    }
  }
}
