import { CfnOutput, Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as ecrAssets from 'aws-cdk-lib/aws-ecr-assets';
import * as route53 from 'aws-cdk-lib/aws-route53';
import * as sns from 'aws-cdk-lib/aws-sns';
import type { Construct } from 'constructs';
import { PROJECT_ROOT } from './constructs/herald-function';
import { HeraldNetwork } from './constructs/herald-network';
import { HeraldTable } from './constructs/herald-table';
import { IngestTopic } from './constructs/ingest-topic';
import { JanitorFunction } from './constructs/janitor-function';
import { LogBucket } from './constructs/log-bucket';
import { NodeBus } from './constructs/node-bus';
import { Operations } from './constructs/operations';
import { PublisherFunction } from './constructs/publisher-function';
import { DEFAULT_CONNECTIONS_PER_TASK, SseService, type TabPolicy } from './constructs/sse-service';

/**
 * Everything a deployment chooses. Values that come from outside the app (a
 * certificate, a zone, a topic) are given by ARN or id here, at the app's
 * edge, and turned into construct interfaces inside the stack.
 */
export interface HeraldStackProps extends StackProps {
  /**
   * The name browsers use, e.g. `push.example.com`. Needs `certificateArn` or
   * `hostedZoneId` (then a certificate is made and validated in that zone).
   * @default - none: refused unless `allowPlainHttp` (then plain HTTP on the load balancer's DNS name)
   */
  readonly domainName?: string;
  /**
   * Without `domainName`, serve plain HTTP on the load balancer's DNS name:
   * browser tokens and cookies then cross the internet in clear. For a test stack only.
   * @default false - a stack without `domainName` is refused
   */
  readonly allowPlainHttp?: boolean;
  /**
   * An ACM certificate for `domainName`, in the stack's region.
   * @default - one is made when `hostedZoneId` is given
   */
  readonly certificateArn?: string;
  /**
   * The Route 53 public zone of `domainName` (with `hostedZoneName`): an alias
   * record to the load balancer is made there.
   * @default - no record: point `domainName` at the load balancer yourself
   */
  readonly hostedZoneId?: string;
  /** @default - required with `hostedZoneId` */
  readonly hostedZoneName?: string;
  /**
   * JWKS of your identity provider, for RS/ES/EdDSA tokens. Needs `jwtIssuer` and `jwtAudience`.
   * @default - no JWKS: a random HS256 secret is generated in Secrets Manager (output `JwtSecretArn`)
   */
  readonly jwksUrl?: string;
  /** @default - `iss` not checked (required with `jwksUrl`) */
  readonly jwtIssuer?: string;
  /** @default - `aud` not checked (required with `jwksUrl`) */
  readonly jwtAudience?: string;
  /** @default 'single' - a new tab replaces the user's older one */
  readonly tabPolicy?: TabPolicy;
  /** @default Duration.seconds(15) */
  readonly heartbeat?: Duration;
  /**
   * How long a stopping node spreads its stream closes over; also the
   * deregistration delay. Whole seconds, at most 110.
   * @default Duration.seconds(90)
   */
  readonly drainWindow?: Duration;
  /** @default 2 */
  readonly minTasks?: number;
  /** @default 10 (at most 200: one SNS filter policy per node) */
  readonly maxTasks?: number;
  /** @default 10000 open streams per task (DEFAULT_CONNECTIONS_PER_TASK) */
  readonly connectionsPerTask?: number;
  /** Fargate CPU units: 256, 512, 1024, 2048 or 4096. @default 512 */
  readonly taskCpu?: number;
  /** @default 1024 */
  readonly taskMemoryMiB?: number;
  /**
   * Tasks in public subnets, no NAT gateway, no interface endpoints: the cheapest setup.
   * @default false - private subnets with VPC endpoints and one NAT gateway
   */
  readonly publicTasks?: boolean;
  /**
   * Node queues are named `<queuePrefix>_<nodeId>`: 1-39 of A-Z a-z 0-9 - (no `_`). Unique per deployment in the account and region.
   * @default - the stack name
   */
  readonly queuePrefix?: string;
  /** @default RemovalPolicy.RETAIN */
  readonly tableRemovalPolicy?: RemovalPolicy;
  /**
   * An SNS topic notified when an alarm fires or clears.
   * @default - no alarm actions
   */
  readonly alarmTopicArn?: string;
  /**
   * Roles of services that publish with the publisher library, which publishes
   * on the node bus itself. The bus topic refuses every other principal but the
   * nodes and the publisher Lambda; each of these roles also needs `sns:Publish`
   * on `TopicArn` and the key use on `TopicKeyArn` in its own policy.
   * @default - none: services publish through the ingest topic or the publisher Lambda
   */
  readonly busPublisherRoleArns?: readonly string[];
  /**
   * The node container image. From ECR, it must be in this account and region:
   * the ECR endpoints of private tasks let nothing else through.
   * @default - built from the repository's Dockerfile at deploy time (linux/arm64)
   */
  readonly image?: ecs.ContainerImage;
  /** @default - services/publisher/lambda.ts */
  readonly publisherEntry?: string;
  /** @default - services/janitor/lambda.ts */
  readonly janitorEntry?: string;
}

/** How the node image is built: the repository's Dockerfile, for Graviton; the context is what .dockerignore lets through. */
export const NODE_IMAGE_ASSET = { directory: PROJECT_ROOT, file: 'Dockerfile', platform: ecrAssets.Platform.LINUX_ARM64 } as const;

export function nodeImageFromRepository(): ecs.ContainerImage {
  const { directory, ...options } = NODE_IMAGE_ASSET;
  return ecs.ContainerImage.fromAsset(directory, options);
}

/** Herald on AWS: composes the constructs under lib/constructs, and says what to connect to. */
export class HeraldStack extends Stack {
  readonly logBucket: LogBucket;
  readonly bus: NodeBus;
  readonly table: HeraldTable;
  readonly service: SseService;
  readonly publisher: PublisherFunction;
  /** Where services publish by SNS; `ingest.grantPublish(role)` lets one. */
  readonly ingest: IngestTopic;
  readonly janitor: JanitorFunction;
  readonly operations: Operations;

  constructor(scope: Construct, id: string, props: HeraldStackProps = {}) {
    super(scope, id, props);
    this.logBucket = new LogBucket(this, 'LogBucket');
    const network = new HeraldNetwork(this, 'Network', { publicTasks: props.publicTasks ?? false, flowLogBucket: this.logBucket.bucket });
    this.bus = new NodeBus(this, 'Bus', { queuePrefix: props.queuePrefix ?? this.stackName });
    this.table = new HeraldTable(this, 'Table', { removalPolicy: props.tableRemovalPolicy ?? RemovalPolicy.RETAIN });

    const hostedZone =
      props.hostedZoneId === undefined
        ? undefined
        : route53.HostedZone.fromHostedZoneAttributes(this, 'Zone', { hostedZoneId: props.hostedZoneId, zoneName: props.hostedZoneName ?? '' });
    this.service = new SseService(this, 'Nodes', {
      vpc: network.vpc,
      taskSubnets: network.taskSubnets,
      assignPublicIp: network.assignPublicIp,
      bus: this.bus,
      table: this.table,
      image: props.image ?? nodeImageFromRepository(),
      accessLogBucket: this.logBucket.bucket,
      ...(props.domainName === undefined ? {} : { domainName: props.domainName }),
      ...(props.allowPlainHttp === undefined ? {} : { allowPlainHttp: props.allowPlainHttp }),
      ...(props.certificateArn === undefined ? {} : { certificate: acm.Certificate.fromCertificateArn(this, 'Certificate', props.certificateArn) }),
      ...(hostedZone === undefined ? {} : { hostedZone }),
      ...(props.jwksUrl === undefined ? {} : { jwksUrl: props.jwksUrl }),
      ...(props.jwtIssuer === undefined ? {} : { jwtIssuer: props.jwtIssuer }),
      ...(props.jwtAudience === undefined ? {} : { jwtAudience: props.jwtAudience }),
      tabPolicy: props.tabPolicy ?? 'single',
      heartbeat: props.heartbeat ?? Duration.seconds(15),
      drainWindow: props.drainWindow ?? Duration.seconds(90),
      minTasks: props.minTasks ?? 2,
      maxTasks: props.maxTasks ?? 10,
      connectionsPerTask: props.connectionsPerTask ?? DEFAULT_CONNECTIONS_PER_TASK,
      taskCpu: props.taskCpu ?? 512,
      taskMemoryMiB: props.taskMemoryMiB ?? 1024,
    });
    // The tasks are the only callers inside the VPC: the Lambdas run outside it.
    network.allowThroughEndpoints(this.service.taskRole, [...this.bus.nodeRuntimeAccess(), ...this.table.nodeRuntimeAccess()]);
    network.allowThroughEndpoints(this.service.executionRole, this.service.startupAccess());
    this.publisher = new PublisherFunction(this, 'Publisher', {
      bus: this.bus,
      table: this.table,
      ...(props.publisherEntry === undefined ? {} : { entry: props.publisherEntry }),
    });
    this.ingest = new IngestTopic(this, 'Ingest', { key: this.bus.key, publisher: this.publisher.function });
    this.bus.allowPublishers(props.busPublisherRoleArns ?? []);
    this.janitor = new JanitorFunction(this, 'Janitor', {
      bus: this.bus,
      table: this.table,
      ...(props.janitorEntry === undefined ? {} : { entry: props.janitorEntry }),
    });
    this.operations = new Operations(this, 'Operations', {
      service: this.service,
      bus: this.bus,
      publisher: this.publisher.function,
      janitor: this.janitor.function,
      ingestDeadLetters: this.ingest.deadLetters,
      ...(props.alarmTopicArn === undefined ? {} : { alarmTopic: sns.Topic.fromTopicArn(this, 'AlarmTopic', props.alarmTopicArn) }),
    });
    this.addOutputs();
  }

  private addOutputs(): void {
    const output = (id: string, value: string, description: string): CfnOutput => new CfnOutput(this, id, { value, description });
    output('Url', this.service.url, 'Open browser streams at <Url>/events');
    output('IngestTopicArn', this.ingest.topic.topicArn, 'Services publish POST /publish bodies here (sns:Publish, and the key use on TopicKeyArn)');
    output('TopicArn', this.bus.topic.topicArn, 'The node bus: only the nodes, the publisher Lambda and busPublisherRoleArns may publish on it');
    output('TopicKeyArn', this.bus.key.keyArn, 'Publishers to either topic also need kms:GenerateDataKey and kms:Decrypt on this key');
    output('PublisherFunctionName', this.publisher.function.functionName, 'Invoke it from chat and job code to publish');
    output('PublisherFunctionArn', this.publisher.function.functionArn, 'Grant lambda:InvokeFunction on it to your publishers');
    output('TableName', this.table.table.tableName, 'History, tab owners and node heartbeats');
    output('QueuePrefix', this.bus.queuePrefix, 'Node queues are <QueuePrefix>_<task id>');
    output(
      'DashboardUrl',
      `https://console.aws.amazon.com/cloudwatch/home?region=${this.region}#dashboards:name=${this.operations.dashboard.dashboardName}`,
      'Streams, deliveries and latency',
    );
    if (this.service.jwtSecret) {
      output('JwtSecretArn', this.service.jwtSecret.secretArn, 'The HS256 secret your sign-in service signs browser tokens with');
    }
  }
}
