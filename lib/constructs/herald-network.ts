import * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

/** A literal range, so the endpoint rule names it (not a token cdk-nag cannot read). */
export const VPC_CIDR = '10.0.0.0/16';

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
      // Gateway endpoints cost nothing: DynamoDB for every owner/history call, S3 for ECR image layers.
      gatewayEndpoints: {
        DynamoDb: { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB },
        S3: { service: ec2.GatewayVpcEndpointAwsService.S3 },
      },
    });
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
      const endpoints: Record<string, ec2.InterfaceVpcEndpointAwsService> = {
        Sqs: ec2.InterfaceVpcEndpointAwsService.SQS,
        Sns: ec2.InterfaceVpcEndpointAwsService.SNS,
        Logs: ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
        EcrApi: ec2.InterfaceVpcEndpointAwsService.ECR,
        EcrDocker: ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
      };
      for (const [name, service] of Object.entries(endpoints)) {
        vpc.addInterfaceEndpoint(name, {
          service,
          subnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
          privateDnsEnabled: true,
          securityGroups: [endpointSecurityGroup],
          open: false,
        });
      }
    }
    this.vpc = vpc;
    this.taskSubnets = { subnetType: publicTasks ? ec2.SubnetType.PUBLIC : ec2.SubnetType.PRIVATE_WITH_EGRESS };
    this.assignPublicIp = publicTasks;
  }
}
