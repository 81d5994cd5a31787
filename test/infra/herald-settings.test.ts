import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import { describe, expect, it } from 'vitest';
import { readHeraldSettings, SettingError, type Env } from '../../bin/herald-settings';

function read(context: Record<string, unknown> = {}, env: Env = {}) {
  return readHeraldSettings((key) => context[key], { CDK_DEFAULT_REGION: 'eu-west-1', ...env });
}

function refusal(context: Record<string, unknown>, env: Env = {}): SettingError {
  try {
    read(context, env);
  } catch (error) {
    if (error instanceof SettingError) return error;
    throw error;
  }
  throw new Error('no SettingError');
}

describe('readHeraldSettings', () => {
  it('needs only the plain-HTTP opt-in for a first try: stack Herald, region from the CLI, generated secret, plain HTTP', () => {
    const { stackName, region, props } = read({ allowPlainHttp: true });
    expect(stackName).toBe('Herald');
    expect(region).toBe('eu-west-1');
    expect(props).toEqual({ allowPlainHttp: true, taskCpu: 512, taskMemoryMiB: 1024 });
  });

  it('refuses a stack without a domain, which would serve plain HTTP, unless allowPlainHttp says so', () => {
    for (const [context, env] of [[{}, {}], [{ allowPlainHttp: false }, {}], [{ allowPlainHttp: 'false' }, { HERALD_ALLOW_PLAIN_HTTP: 'true' }]] as const) {
      const error = refusal(context, env);
      expect(error.key).toBe('domainName');
      expect(error.message).toMatch(/plain HTTP/);
      expect(error.message).toContain('allowPlainHttp=true (HERALD_ALLOW_PLAIN_HTTP=true)');
    }
    expect(read({}, { HERALD_ALLOW_PLAIN_HTTP: 'true' }).props.allowPlainHttp).toBe(true);
    expect(refusal({ allowPlainHttp: 'yes' }).key).toBe('allowPlainHttp');
    // A domain needs no opt-in.
    expect(read({ domainName: 'push.example.com', certificateArn: 'arn:aws:acm:eu-west-1:123456789012:certificate/abc' }).props).not.toHaveProperty('allowPlainHttp');
  });

  it('reads every setting from context, with context winning over the environment', () => {
    const { stackName, props } = read(
      {
        stackName: 'PushProd',
        domainName: 'push.example.com',
        hostedZoneId: 'Z0123456789ABC',
        hostedZoneName: 'example.com',
        jwksUrl: 'https://id.example.com/.well-known/jwks.json',
        jwtIssuer: 'https://id.example.com/',
        jwtAudience: 'herald',
        tabPolicy: 'multi',
        heartbeatMs: 20000,
        drainMs: '60000',
        minTasks: 3,
        maxTasks: '30',
        connectionsPerTask: 8000,
        taskCpu: 1024,
        taskMemoryMiB: 3072,
        publicTasks: true,
        queuePrefix: 'push-prod',
        tableRemovalPolicy: 'destroy',
        alarmTopicArn: 'arn:aws:sns:eu-west-1:123456789012:pager',
      },
      { HERALD_TAB_POLICY: 'single', HERALD_STACK_NAME: 'Ignored' },
    );
    expect(stackName).toBe('PushProd');
    expect(props).toEqual({
      domainName: 'push.example.com',
      hostedZoneId: 'Z0123456789ABC',
      hostedZoneName: 'example.com',
      jwksUrl: 'https://id.example.com/.well-known/jwks.json',
      jwtIssuer: 'https://id.example.com/',
      jwtAudience: 'herald',
      tabPolicy: 'multi',
      heartbeat: Duration.millis(20000),
      drainWindow: Duration.millis(60000),
      minTasks: 3,
      maxTasks: 30,
      connectionsPerTask: 8000,
      taskCpu: 1024,
      taskMemoryMiB: 3072,
      publicTasks: true,
      queuePrefix: 'push-prod',
      tableRemovalPolicy: RemovalPolicy.DESTROY,
      alarmTopicArn: 'arn:aws:sns:eu-west-1:123456789012:pager',
    });
  });

  it('reads the environment when the context is silent', () => {
    const { region, props } = read({}, { HERALD_REGION: 'ap-southeast-2', HERALD_CERTIFICATE_ARN: 'arn:aws:acm:ap-southeast-2:123456789012:certificate/abc-1', HERALD_DOMAIN_NAME: 'push.example.com' });
    expect(region).toBe('ap-southeast-2');
    expect(props).toMatchObject({ domainName: 'push.example.com', certificateArn: 'arn:aws:acm:ap-southeast-2:123456789012:certificate/abc-1' });
  });

  it('names the context key and the variable of a bad value', () => {
    const error = refusal({ drainMs: 'soon' });
    expect(error.key).toBe('drainMs');
    expect(error.variable).toBe('HERALD_DRAIN_MS');
    expect(error.message).toBe('drainMs (HERALD_DRAIN_MS): expected a whole number, got "soon"');
  });

  it.each([
    [{ drainMs: 111000 }, 'drainMs', /between 0 and 110000/],
    [{ drainMs: 1500 }, 'drainMs', /whole seconds/],
    [{ heartbeatMs: 500 }, 'heartbeatMs', /between 1000 and 300000/],
    [{ maxTasks: 201 }, 'maxTasks', /between 1 and 200/],
    [{ minTasks: 5, maxTasks: 4 }, 'maxTasks', /at least minTasks/],
    [{ taskCpu: 768 }, 'taskCpu', /256, 512, 1024, 2048 or 4096/],
    [{ taskCpu: 256, taskMemoryMiB: 4096 }, 'taskMemoryMiB', /512-2048 MiB/],
    [{ taskCpu: 1024, taskMemoryMiB: 2500 }, 'taskMemoryMiB', /steps of 1024/],
    [{ tabPolicy: 'all' }, 'tabPolicy', /single, multi/],
    [{ publicTasks: 'yes' }, 'publicTasks', /true or false/],
    [{ queuePrefix: 'a.b' }, 'queuePrefix', /1-39 characters/],
    [{ queuePrefix: 'a_b' }, 'queuePrefix', /no "_"/],
    [{ stackName: 'A'.repeat(40) }, 'queuePrefix', /longer than 39/],
    [{ certificateArn: 'arn:aws:acm:us-east-1:123456789012:certificate/x' }, 'certificateArn', /needs domainName/],
    [{ domainName: 'push.example.com' }, 'domainName', /needs certificateArn, or hostedZoneId/],
    [{ domainName: 'Push.Example.com' }, 'domainName', /lower-case DNS name/],
    [{ domainName: 'push.other.org', hostedZoneId: 'Z1', hostedZoneName: 'example.com' }, 'domainName', /not in the zone/],
    [{ hostedZoneId: 'Z1', domainName: 'push.example.com' }, 'hostedZoneId', /needs domainName and hostedZoneName/],
    [{ jwksUrl: 'http://id.example.com/jwks' }, 'jwksUrl', /https URL/],
    [{ jwksUrl: 'https://id.example.com/jwks', jwtIssuer: 'x' }, 'jwksUrl', /jwtIssuer and jwtAudience/],
    [{ alarmTopicArn: 'pager' }, 'alarmTopicArn', /SNS topic ARN/],
    [{ tableRemovalPolicy: 'snapshot' }, 'tableRemovalPolicy', /retain, destroy/],
  ] as [Record<string, unknown>, string, RegExp][])('refuses %j', (context, key, message) => {
    const error = refusal(context);
    expect(error.key).toBe(key);
    expect(error.message).toMatch(message);
  });

  it('reads the roles of publisher-library services, comma-separated, and refuses anything but role ARNs', () => {
    const arns = 'arn:aws:iam::123456789012:role/billing, arn:aws:iam::123456789012:role/path/jobs';
    expect(read({ allowPlainHttp: true, busPublisherRoleArns: arns }).props.busPublisherRoleArns).toEqual([
      'arn:aws:iam::123456789012:role/billing',
      'arn:aws:iam::123456789012:role/path/jobs',
    ]);
    const error = refusal({ allowPlainHttp: true }, { HERALD_BUS_PUBLISHER_ROLE_ARNS: 'arn:aws:iam::123456789012:user/alice' });
    expect(error.message).toBe('busPublisherRoleArns (HERALD_BUS_PUBLISHER_ROLE_ARNS): must be comma-separated IAM role ARNs, got "arn:aws:iam::123456789012:user/alice"');
  });

  it('needs a region: the access-log bucket policy names the region\'s log delivery', () => {
    expect(() => readHeraldSettings(() => undefined, {})).toThrow(/region \(HERALD_REGION\): is required/);
  });

  it('accepts values at their limits', () => {
    expect(read({ drainMs: 110000, heartbeatMs: 300000, minTasks: 200, maxTasks: 200, queuePrefix: 'q'.repeat(39), allowPlainHttp: true }).props).toMatchObject({
      drainWindow: Duration.millis(110000),
      heartbeat: Duration.millis(300000),
      maxTasks: 200,
    });
    expect(read({ drainMs: 0, allowPlainHttp: true }).props.drainWindow?.toMilliseconds()).toBe(0);
  });
});
