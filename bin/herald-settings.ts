/**
 * Deployment settings from CDK context (`-c key=value`, cdk.json) or the
 * environment, validated before any construct is made. Context wins over the
 * environment. A bad value throws a SettingError naming both spellings.
 */
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import type { HeraldStackProps } from '../lib/herald-stack';
import { QUEUE_PREFIX_PATTERN } from '../services/adapters/aws/bus-naming';

export type Lookup = (key: string) => unknown;
export type Env = Readonly<Record<string, string | undefined>>;

export class SettingError extends Error {
  override readonly name = 'SettingError';
  constructor(
    readonly key: string,
    readonly variable: string,
    message: string,
  ) {
    super(`${key} (${variable}): ${message}`);
  }
}

/** Every setting: its context key and its environment variable. */
export const SETTINGS = {
  stackName: 'HERALD_STACK_NAME',
  region: 'HERALD_REGION',
  domainName: 'HERALD_DOMAIN_NAME',
  allowPlainHttp: 'HERALD_ALLOW_PLAIN_HTTP',
  certificateArn: 'HERALD_CERTIFICATE_ARN',
  hostedZoneId: 'HERALD_HOSTED_ZONE_ID',
  hostedZoneName: 'HERALD_HOSTED_ZONE_NAME',
  jwksUrl: 'HERALD_JWKS_URL',
  jwtIssuer: 'HERALD_JWT_ISSUER',
  jwtAudience: 'HERALD_JWT_AUDIENCE',
  tabPolicy: 'HERALD_TAB_POLICY',
  heartbeatMs: 'HERALD_HEARTBEAT_MS',
  drainMs: 'HERALD_DRAIN_MS',
  minTasks: 'HERALD_MIN_TASKS',
  maxTasks: 'HERALD_MAX_TASKS',
  connectionsPerTask: 'HERALD_CONNECTIONS_PER_TASK',
  taskCpu: 'HERALD_TASK_CPU',
  taskMemoryMiB: 'HERALD_TASK_MEMORY_MIB',
  publicTasks: 'HERALD_PUBLIC_TASKS',
  queuePrefix: 'HERALD_QUEUE_PREFIX',
  tableRemovalPolicy: 'HERALD_TABLE_REMOVAL_POLICY',
  alarmTopicArn: 'HERALD_ALARM_TOPIC_ARN',
  busPublisherRoleArns: 'HERALD_BUS_PUBLISHER_ROLE_ARNS',
} as const;
type Key = keyof typeof SETTINGS;

export interface HeraldSettings {
  readonly stackName: string;
  /** The ALB's access-log bucket policy names the region's log-delivery principal, so a region is required. */
  readonly region: string;
  readonly props: HeraldStackProps;
}

/** Fargate's CPU units and the memory (MiB) each allows. */
const FARGATE_MEMORY: Readonly<Record<number, readonly [number, number, number]>> = {
  256: [512, 2048, 512],
  512: [1024, 4096, 1024],
  1024: [2048, 8192, 1024],
  2048: [4096, 16384, 1024],
  4096: [8192, 30720, 1024],
};

const HOSTNAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;

class Reader {
  constructor(
    private readonly lookup: Lookup,
    private readonly env: Env,
  ) {}

  fail(key: Key, message: string): never {
    throw new SettingError(key, SETTINGS[key], message);
  }

  raw(key: Key): string | undefined {
    const fromContext = this.lookup(key);
    let value: string | undefined;
    if (fromContext === undefined || fromContext === null) value = this.env[SETTINGS[key]];
    else if (typeof fromContext === 'string' || typeof fromContext === 'number' || typeof fromContext === 'boolean') value = String(fromContext);
    else this.fail(key, 'must be a string, a number or a boolean');
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  }

  matching(key: Key, pattern: RegExp, what: string): string | undefined {
    const value = this.raw(key);
    if (value !== undefined && !pattern.test(value)) this.fail(key, `must be ${what}, got "${value}"`);
    return value;
  }

  int(key: Key, min: number, max: number): number | undefined {
    const value = this.raw(key);
    if (value === undefined) return undefined;
    if (!/^\d+$/.test(value)) this.fail(key, `expected a whole number, got "${value}"`);
    const n = Number(value);
    if (n < min || n > max) this.fail(key, `must be between ${min} and ${max}, got ${n}`);
    return n;
  }

  bool(key: Key): boolean | undefined {
    const value = this.raw(key);
    if (value === undefined) return undefined;
    if (value === 'true' || value === '1') return true;
    if (value === 'false' || value === '0') return false;
    return this.fail(key, `must be true or false, got "${value}"`);
  }

  /** Comma-separated values, each matching `pattern`. */
  list(key: Key, pattern: RegExp, what: string): string[] | undefined {
    const value = this.raw(key);
    if (value === undefined) return undefined;
    const items = value.split(',').map((item) => item.trim());
    const bad = items.find((item) => !pattern.test(item));
    if (bad !== undefined) this.fail(key, `must be ${what}, got "${bad}"`);
    return items;
  }

  oneOf<T extends string>(key: Key, allowed: readonly T[]): T | undefined {
    const value = this.raw(key);
    if (value !== undefined && !(allowed as readonly string[]).includes(value)) this.fail(key, `must be one of ${allowed.join(', ')}, got "${value}"`);
    return value as T | undefined;
  }
}

/** Drops the keys whose value is undefined, so optional props stay absent. */
function defined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

export function readHeraldSettings(lookup: Lookup, env: Env): HeraldSettings {
  const read = new Reader(lookup, env);
  const stackName = read.matching('stackName', /^[A-Za-z][A-Za-z0-9-]{0,127}$/, 'a CloudFormation stack name') ?? 'Herald';
  const region =
    read.matching('region', /^[a-z]{2}(-[a-z]+)+-\d$/, 'an AWS region such as eu-west-1') ??
    env.CDK_DEFAULT_REGION ??
    read.fail('region', 'is required (or AWS_REGION, or a default region in your AWS profile): the stack is built for one region');

  const domainName = read.matching('domainName', HOSTNAME, 'a lower-case DNS name such as push.example.com');
  const certificateArn = read.matching('certificateArn', /^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate\/[A-Za-z0-9-]+$/, 'an ACM certificate ARN');
  const hostedZoneId = read.matching('hostedZoneId', /^Z[A-Z0-9]{1,31}$/, 'a Route 53 hosted zone id');
  const hostedZoneName = read.matching('hostedZoneName', HOSTNAME, 'the zone name, e.g. example.com');
  if (certificateArn !== undefined && domainName === undefined) read.fail('certificateArn', 'needs domainName: the certificate must match the name browsers use');
  if (hostedZoneId !== undefined && (domainName === undefined || hostedZoneName === undefined)) read.fail('hostedZoneId', 'needs domainName and hostedZoneName');
  if (hostedZoneName !== undefined && hostedZoneId === undefined) read.fail('hostedZoneName', 'needs hostedZoneId');
  if (domainName !== undefined && certificateArn === undefined && hostedZoneId === undefined) {
    read.fail('domainName', 'needs certificateArn, or hostedZoneId and hostedZoneName to make a certificate in');
  }
  if (domainName !== undefined && hostedZoneName !== undefined && domainName !== hostedZoneName && !domainName.endsWith(`.${hostedZoneName}`)) {
    read.fail('domainName', `is not in the zone ${hostedZoneName}`);
  }

  const jwksUrl = read.matching('jwksUrl', /^https:\/\/[^\s]+$/, 'an https URL');
  const jwtIssuer = read.raw('jwtIssuer');
  const jwtAudience = read.raw('jwtAudience');
  if (jwksUrl !== undefined && (jwtIssuer === undefined || jwtAudience === undefined)) {
    read.fail('jwksUrl', 'needs jwtIssuer and jwtAudience, so tokens minted for another service are refused');
  }

  const heartbeatMs = read.int('heartbeatMs', 1_000, 300_000);
  const drainMs = read.int('drainMs', 0, 110_000);
  if (drainMs !== undefined && drainMs % 1000 !== 0) read.fail('drainMs', 'must be whole seconds: it is also the deregistration delay');

  const minTasks = read.int('minTasks', 1, 200);
  const maxTasks = read.int('maxTasks', 1, 200);
  if ((maxTasks ?? 10) < (minTasks ?? 2)) read.fail('maxTasks', `must be at least minTasks (${minTasks ?? 2})`);

  const taskCpu = read.int('taskCpu', 256, 4096);
  const cpu = taskCpu ?? 512;
  const memory = FARGATE_MEMORY[cpu] ?? read.fail('taskCpu', 'must be 256, 512, 1024, 2048 or 4096');
  const taskMemoryMiB = read.int('taskMemoryMiB', 512, 30_720);
  const mem = taskMemoryMiB ?? Math.max(1024, memory[0]);
  if (mem < memory[0] || mem > memory[1] || (mem - memory[0]) % memory[2] !== 0) {
    read.fail('taskMemoryMiB', `with ${cpu} CPU units, Fargate allows ${memory[0]}-${memory[1]} MiB in steps of ${memory[2]}`);
  }

  const queuePrefix = read.matching('queuePrefix', QUEUE_PREFIX_PATTERN, '1-39 characters of A-Z a-z 0-9 - (no "_": queues are <prefix>_<task id>)');
  if (queuePrefix === undefined && stackName.length > 39) read.fail('queuePrefix', `is required when the stack name is longer than 39 characters`);

  const removal = read.oneOf('tableRemovalPolicy', ['retain', 'destroy'] as const);
  const allowPlainHttp = read.bool('allowPlainHttp');
  const props: HeraldStackProps = defined({
    domainName,
    allowPlainHttp,
    certificateArn,
    hostedZoneId,
    hostedZoneName,
    jwksUrl,
    jwtIssuer,
    jwtAudience,
    tabPolicy: read.oneOf('tabPolicy', ['single', 'multi'] as const),
    heartbeat: heartbeatMs === undefined ? undefined : Duration.millis(heartbeatMs),
    drainWindow: drainMs === undefined ? undefined : Duration.millis(drainMs),
    minTasks,
    maxTasks,
    connectionsPerTask: read.int('connectionsPerTask', 100, 100_000),
    taskCpu: cpu,
    taskMemoryMiB: mem,
    publicTasks: read.bool('publicTasks'),
    queuePrefix,
    tableRemovalPolicy: removal === undefined ? undefined : removal === 'destroy' ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN,
    alarmTopicArn: read.matching('alarmTopicArn', /^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$/, 'an SNS topic ARN'),
    busPublisherRoleArns: read.list('busPublisherRoleArns', /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/, 'comma-separated IAM role ARNs'),
  });
  // Last, so that a bad value elsewhere is named first.
  if (domainName === undefined && allowPlainHttp !== true) {
    read.fail(
      'domainName',
      'is required: without it the load balancer serves plain HTTP and browser tokens and cookies cross the internet in clear. ' +
        `Give domainName with certificateArn or hostedZoneId and hostedZoneName, or set allowPlainHttp=true (${SETTINGS.allowPlainHttp}=true) for a test stack`,
    );
  }
  return { stackName, region, props };
}
