import { Duration, Size, Stack, Token } from 'aws-cdk-lib';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as route53 from 'aws-cdk-lib/aws-route53';
import * as route53Targets from 'aws-cdk-lib/aws-route53-targets';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { HeraldMetrics } from './herald-metrics';
import type { EndpointAccess } from './herald-network';
import type { HeraldTable } from './herald-table';
import type { NodeBus } from './node-bus';
import { PROBE_TIMEOUT_MS } from '../../services/adapters/aws/sns-sqs-bus';

/** Fargate sends SIGKILL this long after SIGTERM at most; the drain and the exit must fit inside. */
export const FARGATE_MAX_STOP_TIMEOUT = Duration.seconds(120);
/** The node's own ceiling on HERALD_DRAIN_MS (services/node/config.ts MAX_DRAIN_MS). */
export const MAX_DRAIN_WINDOW = Duration.seconds(110);
/** ALB idle timeout: long, so a stream is never cut for silence (the heartbeat keeps it busy anyway). */
export const MIN_IDLE_TIMEOUT = Duration.seconds(3600);
const MAX_IDLE_TIMEOUT = Duration.seconds(4000);
export const NODE_PORT = 8080;
/**
 * From a bench run of one node in aws mode on the emulators (2026-12-04):
 * 10,000 streams idle in 251 MiB RSS, a broadcast to all of them took 130–210 ms
 * of a full core, 0 lost; 15,000 took 289 MiB and 187–300 ms. A 0.5 vCPU / 1 GB
 * task keeps three quarters of its memory free at this target, and under the
 * node's own cap (HERALD_MAX_CONNECTIONS, 16,000) there is room for a drained
 * neighbour's streams while the service scales out.
 */
export const DEFAULT_CONNECTIONS_PER_TASK = 10_000;
/**
 * Answered 404 by the load balancer itself: `/metrics` stays on the task's port
 * for scrapers inside the VPC. The node reads `/%6Detrics`, `/./metrics` and
 * `/x/../metrics` as `/metrics` too (Hono decodes escapes, the URL parser drops
 * dot segments), and whether the ALB matches the path before or after decoding
 * is not documented; no public path has an escape or a dot segment, so both
 * are refused outright. Three values: the most one condition may hold.
 */
export const HIDDEN_PATH_PATTERNS = ['/metrics', '*%*', '*/.*'] as const;
/** Before the forward (the listener's default action): rules are evaluated from the lowest priority. */
const HIDDEN_PATHS_PRIORITY = 1;
/** How much longer than a node's wait for its subscription ECS ignores its failing health checks. */
const HEALTH_CHECK_GRACE_MARGIN_MS = 30_000;

export type TabPolicy = 'single' | 'multi';

export interface SseServiceProps {
  readonly vpc: ec2.IVpc;
  /** @default - the VPC's private subnets with egress */
  readonly taskSubnets?: ec2.SubnetSelection;
  /** @default false */
  readonly assignPublicIp?: boolean;
  readonly bus: NodeBus;
  readonly table: HeraldTable;
  /** The node image; its command must be the built entry (`node --enable-source-maps dist/herald-node.mjs`). */
  readonly image: ecs.ContainerImage;
  /** Receives the ALB access logs. */
  readonly accessLogBucket: s3.IBucket;
  /**
   * The name browsers use. With `certificate` or `hostedZone` the ALB serves
   * HTTPS on it and redirects HTTP.
   * @default - none: plain HTTP on the ALB's own DNS name, refused unless `allowPlainHttp`
   */
  readonly domainName?: string;
  /**
   * Serve plain HTTP on the ALB's own DNS name when no `domainName` is given:
   * browser tokens and cookies then cross the internet in clear, so only for a
   * test stack. Without it, a service with no domain is refused.
   * @default false
   */
  readonly allowPlainHttp?: boolean;
  /**
   * The certificate for `domainName`.
   * @default - a DNS-validated certificate in `hostedZone` when one is given; otherwise no HTTPS
   */
  readonly certificate?: acm.ICertificate;
  /**
   * The public zone of `domainName`: an alias record to the ALB is made in it.
   * @default - no record: point `domainName` at the ALB yourself
   */
  readonly hostedZone?: route53.IHostedZone;
  /**
   * A JWKS for RS/ES/EdDSA tokens; needs `jwtIssuer` and `jwtAudience`.
   * @default - no JWKS: a generated HS256 secret in Secrets Manager (see `jwtSecret`)
   */
  readonly jwksUrl?: string;
  /** @default - `iss` not checked (required with `jwksUrl`) */
  readonly jwtIssuer?: string;
  /** @default - `aud` not checked (required with `jwksUrl`) */
  readonly jwtAudience?: string;
  /** @default 'single' */
  readonly tabPolicy?: TabPolicy;
  /**
   * The `ping` period of every stream.
   * @default Duration.seconds(15)
   */
  readonly heartbeat?: Duration;
  /**
   * How long a stopping node spreads the closing of its streams over. Also the
   * target group's deregistration delay. At most 110 s, inside Fargate's 120 s
   * stop timeout.
   * @default Duration.seconds(90)
   */
  readonly drainWindow?: Duration;
  /**
   * ALB idle timeout, 3600–4000 s.
   * @default Duration.seconds(3600)
   */
  readonly idleTimeout?: Duration;
  /** @default 2 */
  readonly minTasks?: number;
  /** @default 10 */
  readonly maxTasks?: number;
  /**
   * Open streams per task that the service scales to hold.
   * @default DEFAULT_CONNECTIONS_PER_TASK (10,000)
   */
  readonly connectionsPerTask?: number;
  /** Fargate CPU units. @default 512 */
  readonly taskCpu?: number;
  /** @default 1024 */
  readonly taskMemoryMiB?: number;
  /**
   * The `ServiceName` dimension of the node metrics (`HERALD_SERVICE_NAME`).
   * @default - the stack name
   */
  readonly metricServiceName?: string;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * The SSE nodes: a Fargate service on Graviton behind an internet-facing ALB,
 * with the settings long-lived streams need (docs/architecture.md, "Shapes",
 * AWS), and scaling on open streams per task.
 */
export class SseService extends Construct {
  readonly service: ecs.FargateService;
  readonly loadBalancer: elbv2.ApplicationLoadBalancer;
  readonly targetGroup: elbv2.ApplicationTargetGroup;
  readonly taskRole: iam.IRole;
  readonly executionRole: iam.IRole;
  /** Where the nodes' output goes (the awslogs driver, with the execution role). */
  readonly logGroup: logs.ILogGroup;
  readonly metrics: HeraldMetrics;
  /** The HS256 secret the nodes verify tokens with, when no JWKS is used. */
  readonly jwtSecret?: secretsmanager.ISecret;
  /** Where browsers open `/events`. */
  readonly url: string;

  constructor(scope: Construct, id: string, props: SseServiceProps) {
    super(scope, id);
    const heartbeat = props.heartbeat ?? Duration.seconds(15);
    const drainWindow = props.drainWindow ?? Duration.seconds(90);
    const idleTimeout = props.idleTimeout ?? MIN_IDLE_TIMEOUT;
    const minTasks = props.minTasks ?? 2;
    const maxTasks = props.maxTasks ?? 10;
    validateTiming(heartbeat, drainWindow, idleTimeout);
    validateTasks(minTasks, maxTasks);
    this.metrics = new HeraldMetrics(props.metricServiceName ?? Stack.of(this).stackName);

    const auth = this.authSettings(props);
    this.jwtSecret = auth.secret;

    this.taskRole = new iam.Role(this, 'TaskRole', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com', {
        // Confused-deputy guard: only ECS acting for this account may assume the role.
        conditions: {
          StringEquals: { 'aws:SourceAccount': Stack.of(this).account },
          ArnLike: { 'aws:SourceArn': Stack.of(this).formatArn({ service: 'ecs', resource: '*' }) },
        },
      }),
      description: 'Herald node: its own queue, the topic, the table',
    });
    this.executionRole = new iam.Role(this, 'ExecutionRole', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: 'Herald node start-up: pull the image, write logs, read the JWT secret',
    });
    props.bus.grantNodeRuntime(this.taskRole);
    props.table.grantNodeRuntime(this.taskRole);

    const taskDefinition = new ecs.FargateTaskDefinition(this, 'Task', {
      cpu: props.taskCpu ?? 512,
      memoryLimitMiB: props.taskMemoryMiB ?? 1024,
      runtimePlatform: { cpuArchitecture: ecs.CpuArchitecture.ARM64, operatingSystemFamily: ecs.OperatingSystemFamily.LINUX },
      taskRole: this.taskRole,
      executionRole: this.executionRole,
    });
    const logGroup = new logs.LogGroup(this, 'Logs', { retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH });
    this.logGroup = logGroup;
    taskDefinition.addContainer('Node', {
      image: props.image,
      essential: true,
      readonlyRootFilesystem: true,
      // Fargate's maximum: SIGTERM, then the drain window, then unsubscribe and delete the queue.
      stopTimeout: FARGATE_MAX_STOP_TIMEOUT,
      portMappings: [{ containerPort: NODE_PORT, protocol: ecs.Protocol.TCP }],
      environment: {
        HERALD_MODE: 'aws',
        HERALD_PORT: String(NODE_PORT),
        HERALD_TOPIC_ARN: props.bus.topic.topicArn,
        HERALD_TABLE_NAME: props.table.table.tableName,
        HERALD_QUEUE_PREFIX: props.bus.queuePrefix,
        AWS_REGION: Stack.of(this).region,
        HERALD_TAB_POLICY: props.tabPolicy ?? 'single',
        HERALD_HEARTBEAT_MS: String(heartbeat.toMilliseconds()),
        HERALD_DRAIN_MS: String(drainWindow.toMilliseconds()),
        HERALD_SERVICE_NAME: this.metrics.serviceName,
        HERALD_TRUST_PROXY: 'true',
        ...auth.environment,
      },
      secrets: auth.secrets,
      logging: ecs.LogDrivers.awsLogs({
        streamPrefix: 'node',
        logGroup,
        // A slow log pipe must not stall the event loop that writes to streams.
        mode: ecs.AwsLogDriverMode.NON_BLOCKING,
        maxBufferSize: Size.mebibytes(25),
      }),
    });

    const cluster = new ecs.Cluster(this, 'Cluster', { vpc: props.vpc });
    this.service = new ecs.FargateService(this, 'Service', {
      cluster,
      taskDefinition,
      desiredCount: minTasks,
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      circuitBreaker: { enable: true, rollback: true },
      vpcSubnets: props.taskSubnets ?? { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      assignPublicIp: props.assignPublicIp ?? false,
      // A starting node listens (and passes health checks) only once its subscription
      // is confirmed; ECS must not replace it while it is still waiting for that.
      healthCheckGracePeriod: Duration.millis(PROBE_TIMEOUT_MS + HEALTH_CHECK_GRACE_MARGIN_MS),
      platformVersion: ecs.FargatePlatformVersion.LATEST,
      enableECSManagedTags: true,
      propagateTags: ecs.PropagatedTagSource.SERVICE,
    });

    this.loadBalancer = new elbv2.ApplicationLoadBalancer(this, 'LoadBalancer', {
      vpc: props.vpc,
      internetFacing: true,
      vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
      idleTimeout,
      http2Enabled: true,
      dropInvalidHeaderFields: true,
    });
    this.loadBalancer.logAccessLogs(props.accessLogBucket, 'alb');

    this.targetGroup = new elbv2.ApplicationTargetGroup(this, 'Nodes', {
      vpc: props.vpc,
      port: NODE_PORT,
      protocol: elbv2.ApplicationProtocol.HTTP,
      targetType: elbv2.TargetType.IP,
      // The ALB keeps a deregistering task's open streams for this long: the drain window.
      deregistrationDelay: drainWindow,
      // Each open stream is an outstanding request, so new streams go to the task holding the fewest.
      loadBalancingAlgorithmType: elbv2.TargetGroupLoadBalancingAlgorithmType.LEAST_OUTSTANDING_REQUESTS,
      healthCheck: {
        path: '/healthz',
        healthyHttpCodes: '200',
        interval: Duration.seconds(10),
        timeout: Duration.seconds(5),
        healthyThresholdCount: 2,
        unhealthyThresholdCount: 2,
      },
      targets: [this.service],
    });

    this.url = this.addListeners(props);
    this.addScaling(minTasks, maxTasks, props.connectionsPerTask ?? DEFAULT_CONNECTIONS_PER_TASK);
  }

  /**
   * What ECS does with the execution role as a task starts, over the network:
   * sign in to ECR and pull the image, and write the container's output. The
   * pull is allowed from this account's repositories in this region (the role
   * itself is limited to the CDK assets repository). The secret is not here:
   * Secrets Manager has no endpoint in the VPC.
   */
  startupAccess(): EndpointAccess[] {
    return [
      { actions: ['ecr:GetAuthorizationToken'], resources: ['*'] },
      {
        actions: ['ecr:BatchCheckLayerAvailability', 'ecr:GetDownloadUrlForLayer', 'ecr:BatchGetImage'],
        resources: [Stack.of(this).formatArn({ service: 'ecr', resource: 'repository', resourceName: '*' })],
      },
      { actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [this.logGroup.logGroupArn] },
    ];
  }

  /** Lets a token issuer (your sign-in service) read the HS256 secret it signs with. */
  grantReadJwtSecret(grantee: iam.IGrantable): iam.Grant {
    if (!this.jwtSecret) throw new Error('this SseService verifies tokens with a JWKS; there is no JWT secret to read');
    return this.jwtSecret.grantRead(grantee);
  }

  private authSettings(props: SseServiceProps): {
    environment: Record<string, string>;
    secrets: Record<string, ecs.Secret>;
    secret?: secretsmanager.ISecret;
  } {
    const claims: Record<string, string> = {
      ...(props.jwtIssuer === undefined ? {} : { HERALD_JWT_ISSUER: props.jwtIssuer }),
      ...(props.jwtAudience === undefined ? {} : { HERALD_JWT_AUDIENCE: props.jwtAudience }),
    };
    if (props.jwksUrl !== undefined) {
      if (props.jwtIssuer === undefined || props.jwtAudience === undefined) {
        throw new Error('jwksUrl needs jwtIssuer and jwtAudience, so tokens minted for another service are refused');
      }
      if (!Token.isUnresolved(props.jwksUrl) && !props.jwksUrl.startsWith('https://')) throw new Error('jwksUrl must be https');
      return { environment: { HERALD_JWKS_URL: props.jwksUrl, ...claims }, secrets: {} };
    }
    const secret = new secretsmanager.Secret(this, 'JwtSecret', {
      description: 'Herald HS256 secret: the nodes verify browser tokens with it; your sign-in service signs them',
      // 64 letters and digits: 64 bytes, twice the RFC 7518 §3.2 minimum for HS256.
      generateSecretString: { passwordLength: 64, excludePunctuation: true, includeSpace: false },
    });
    // ECS reads it at task start with the execution role; it never appears in the task definition.
    return { environment: claims, secrets: { HERALD_JWT_SECRET: ecs.Secret.fromSecretsManager(secret) }, secret };
  }

  private addListeners(props: SseServiceProps): string {
    if (props.domainName === undefined) {
      if (props.certificate !== undefined || props.hostedZone !== undefined) throw new Error('certificate and hostedZone need domainName');
      if (props.allowPlainHttp !== true) {
        throw new Error(
          'SseService has no domainName, so its load balancer would serve plain HTTP and browser tokens and cookies would cross the internet in clear: ' +
            'give domainName with a certificate or hostedZone, or set allowPlainHttp: true (context allowPlainHttp=true) for a test stack',
        );
      }
      const http = this.loadBalancer.addListener('Http', { port: 80, protocol: elbv2.ApplicationProtocol.HTTP, defaultTargetGroups: [this.targetGroup] });
      this.hidePaths(http);
      return `http://${this.loadBalancer.loadBalancerDnsName}`;
    }
    const certificate =
      props.certificate ??
      (props.hostedZone === undefined
        ? undefined
        : new acm.Certificate(this, 'Certificate', {
            domainName: props.domainName,
            validation: acm.CertificateValidation.fromDns(props.hostedZone),
          }));
    if (certificate === undefined) throw new Error('domainName needs a certificate or a hostedZone to make one in');
    const https = this.loadBalancer.addListener('Https', {
      port: 443,
      protocol: elbv2.ApplicationProtocol.HTTPS,
      certificates: [certificate],
      sslPolicy: elbv2.SslPolicy.RECOMMENDED_TLS,
      defaultTargetGroups: [this.targetGroup],
    });
    this.hidePaths(https);
    this.loadBalancer.addRedirect({ sourcePort: 80, sourceProtocol: elbv2.ApplicationProtocol.HTTP, targetPort: 443, targetProtocol: elbv2.ApplicationProtocol.HTTPS });
    if (props.hostedZone !== undefined) {
      new route53.ARecord(this, 'Alias', {
        zone: props.hostedZone,
        recordName: props.domainName,
        target: route53.RecordTarget.fromAlias(new route53Targets.LoadBalancerTarget(this.loadBalancer)),
      });
    }
    return `https://${props.domainName}`;
  }

  /** Answers HIDDEN_PATH_PATTERNS with the node's own 404 body before the listener forwards anything. */
  private hidePaths(listener: elbv2.ApplicationListener): void {
    listener.addAction('HiddenPaths', {
      priority: HIDDEN_PATHS_PRIORITY,
      conditions: [elbv2.ListenerCondition.pathPatterns([...HIDDEN_PATH_PATTERNS])],
      action: elbv2.ListenerAction.fixedResponse(404, {
        contentType: 'application/json',
        messageBody: JSON.stringify({ error: 'not_found', message: 'no such path' }),
      }),
    });
  }

  private addScaling(minTasks: number, maxTasks: number, connectionsPerTask: number): void {
    const scaling = this.service.autoScaleTaskCount({ minCapacity: minTasks, maxCapacity: maxTasks });
    // Streams, not CPU, are what an SSE node runs out of first.
    scaling.scaleToTrackCustomMetric('Connections', {
      metric: this.metrics.activeConnectionsPerTask(),
      targetValue: connectionsPerTask,
      scaleOutCooldown: Duration.seconds(60),
      // Scaling in moves every stream of the stopped task to the others: do it slowly.
      scaleInCooldown: Duration.minutes(10),
    });
    scaling.scaleOnCpuUtilization('Cpu', {
      targetUtilizationPercent: 60,
      scaleOutCooldown: Duration.seconds(60),
      scaleInCooldown: Duration.minutes(10),
    });
  }
}

function validateTiming(heartbeat: Duration, drainWindow: Duration, idleTimeout: Duration): void {
  const hb = heartbeat.toMilliseconds();
  if (hb < 1_000 || hb > 300_000) throw new Error(`heartbeat must be 1-300 s, got ${heartbeat.toHumanString()}`);
  const drain = drainWindow.toMilliseconds();
  if (drain % 1000 !== 0) throw new Error('drainWindow must be whole seconds (it is also the deregistration delay)');
  if (drain > MAX_DRAIN_WINDOW.toMilliseconds()) throw new Error(`drainWindow must be at most 110 s, inside the 120 s stop timeout, got ${drainWindow.toHumanString()}`);
  const idle = idleTimeout.toSeconds();
  if (idle < MIN_IDLE_TIMEOUT.toSeconds() || idle > MAX_IDLE_TIMEOUT.toSeconds()) throw new Error(`idleTimeout must be 3600-4000 s, got ${idle} s`);
  // "Well above": a stream can go two heartbeats without a byte (one late ping) and stay open.
  if (idle * 1000 <= 2 * hb) throw new Error('idleTimeout must be more than twice the heartbeat');
}

function validateTasks(minTasks: number, maxTasks: number): void {
  if (!Number.isInteger(minTasks) || minTasks < 1) throw new Error('minTasks must be a whole number of at least 1');
  // Each node's subscription carries a filter policy; SNS allows 200 per topic by default.
  if (!Number.isInteger(maxTasks) || maxTasks < minTasks || maxTasks > 200) throw new Error('maxTasks must be between minTasks and 200');
}
