import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as logs from 'aws-cdk-lib/aws-logs';
import { describe, expect, it } from 'vitest';
import { HeraldFunction, type HeraldFunctionProps, projectPath } from '../../lib/constructs/herald-function';
import { bareStack, entryOrFixture, grantsOf, once, REGION, resolved, tempDir } from './infra-kit';

const FIXTURE_ENTRY = projectPath('test/infra/fixtures/lambda-handler.ts');

type Extra = Partial<Pick<HeraldFunctionProps, 'memorySize' | 'logRetention' | 'environment'>>;

function build(stack: Stack, extra: Extra = {}, entry = FIXTURE_ENTRY) {
  return new HeraldFunction(stack, 'Fn', {
    entry,
    description: 'Herald test function',
    environment: { HERALD_SOMETHING: 'value' },
    timeout: Duration.seconds(45),
    ...extra,
  });
}

function setup(extra: Extra = {}) {
  const stack = bareStack();
  const fn = build(stack, extra);
  return { stack, fn, template: Template.fromStack(stack) };
}

/** The default function, synthesized once for the tests that only read it. */
const defaults = once(() => setup());

interface Resource {
  Properties: Record<string, unknown>;
  DependsOn?: string[];
  DeletionPolicy?: string;
  UpdateReplacePolicy?: string;
}

function only(template: Template, type: string): [string, Resource] {
  const found = Object.entries(template.findResources(type)) as [string, Resource][];
  expect(found, type).toHaveLength(1);
  return found[0]!;
}

describe('HeraldFunction', () => {
  it('runs on Node 24, ARM64, with the handler, timeout, description and 256 MB it is given by default', () => {
    const { template } = defaults();
    const [, fn] = only(template, 'AWS::Lambda::Function');
    expect(fn.Properties).toMatchObject({
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
      Handler: 'index.handler',
      MemorySize: 256,
      Timeout: 45,
      Description: 'Herald test function',
    });
    expect(fn.Properties.FunctionName).toBeUndefined();
    expect(setup({ memorySize: 1024 }).template.findResources('AWS::Lambda::Function')).toSatisfy((fns: Record<string, Resource>) =>
      Object.values(fns).every((f) => f.Properties.MemorySize === 1024),
    );
  });

  it('turns source maps on and passes the environment it is given', () => {
    const [, fn] = only(defaults().template, 'AWS::Lambda::Function');
    expect(fn.Properties.Environment).toEqual({ Variables: { NODE_OPTIONS: '--enable-source-maps', HERALD_SOMETHING: 'value' } });
  });

  it('logs to its own log group, kept a month by default, retained with the stack and with no physical name', () => {
    const { template } = defaults();
    const [logGroupId, logGroup] = only(template, 'AWS::Logs::LogGroup');
    const [, fn] = only(template, 'AWS::Lambda::Function');
    expect(fn.Properties.LoggingConfig).toEqual({ LogGroup: { Ref: logGroupId } });
    expect(logGroup.Properties).toEqual({ RetentionInDays: 30 });
    expect(logGroup.DeletionPolicy).toBe('Retain');
    expect(logGroup.UpdateReplacePolicy).toBe('Retain');
    // The retention is the group's own property, not a LogRetention custom resource (another Lambda, another role).
    expect(template.findResources('Custom::LogRetention')).toEqual({});
  });

  it('keeps its logs for the retention given', () => {
    const [, logGroup] = only(setup({ logRetention: logs.RetentionDays.ONE_WEEK }).template, 'AWS::Logs::LogGroup');
    expect(logGroup.Properties.RetentionInDays).toBe(7);
  });

  it('has its own role, assumable by Lambda only, that may write to its own log group and nothing else', () => {
    const { stack, fn, template } = defaults();
    const [logGroupId] = only(template, 'AWS::Logs::LogGroup');
    const [roleId, role] = only(template, 'AWS::IAM::Role');
    const [, lambda] = only(template, 'AWS::Lambda::Function');
    expect(lambda.Properties.Role).toEqual({ 'Fn::GetAtt': [roleId, 'Arn'] });
    expect(resolved(stack, fn.role.roleArn)).toEqual({ 'Fn::GetAtt': [roleId, 'Arn'] });
    expect(role.Properties.AssumeRolePolicyDocument).toEqual({
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' }],
    });
    expect(role.Properties.Description).toBe('Herald test function');
    // No AWSLambdaBasicExecutionRole (logs on every group in the account), no logs:CreateLogGroup.
    expect(role.Properties.ManagedPolicyArns).toBeUndefined();
    expect(grantsOf(template, stack, fn.role)).toEqual([
      { actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resource: { 'Fn::GetAtt': [logGroupId, 'Arn'] } },
    ]);
  });

  it('is created only after its role may write its logs', () => {
    const { template } = defaults();
    const [roleId] = only(template, 'AWS::IAM::Role');
    const [policyId] = only(template, 'AWS::IAM::Policy');
    const [, fn] = only(template, 'AWS::Lambda::Function');
    expect(fn.DependsOn).toEqual(expect.arrayContaining([roleId, policyId]));
  });

  it('bundles locally with esbuild into one minified ESM file, the AWS SDK included, with a source map without sources', async () => {
    // GIVEN bundling on (no `aws:cdk:bundling-stacks` override), no Docker, and an entry that uses the SDK
    const outdir = tempDir('bundle');
    const stack = new Stack(new App({ outdir }), 'Test', { env: { region: REGION } });
    const entry = entryOrFixture('services/janitor/lambda.ts');
    build(stack, {}, entry);
    // WHEN
    Template.fromStack(stack);
    // THEN one index.mjs with a require() for the CommonJS dependencies
    const assets = readdirSync(outdir).filter((name) => name.startsWith('asset.') && existsSync(join(outdir, name, 'index.mjs')));
    expect(assets).toHaveLength(1);
    const folder = join(outdir, assets[0] ?? '');
    expect(readdirSync(folder).sort()).toEqual(['index.mjs', 'index.mjs.map']);
    const bundle = join(folder, 'index.mjs');
    const code = readFileSync(bundle, 'utf8');
    const banner = "import { createRequire as __heraldCreateRequire } from 'node:module'; const require = __heraldCreateRequire(import.meta.url);";
    expect(code.startsWith(banner), 'the bundle starts with the require() banner').toBe(true);
    expect(code.split('\n').length, 'minified: a few long lines').toBeLessThan(code.length / 1000);
    // The source map points at the sources and does not carry them.
    const map = JSON.parse(readFileSync(`${bundle}.map`, 'utf8')) as { sources: string[]; sourcesContent?: unknown };
    expect(map.sourcesContent).toBeUndefined();
    expect(map.sources.some((s) => s.endsWith(entry === FIXTURE_ENTRY ? 'test/infra/fixtures/lambda-handler.ts' : 'services/janitor/lambda.ts'))).toBe(true);
    if (entry !== FIXTURE_ENTRY) {
      // The SDK the tests ran against is in the bundle, not left to the runtime's copy.
      for (const client of ['client-dynamodb', 'client-sns', 'client-sqs']) {
        expect(map.sources.some((s) => s.includes(`node_modules/@aws-sdk/${client}/`)), `@aws-sdk/${client} bundled`).toBe(true);
      }
    }
    // It loads from a folder with no node_modules above it: nothing is left external.
    const loaded = (await import(pathToFileURL(bundle).href)) as { handler?: unknown };
    expect(typeof loaded.handler).toBe('function');
  });
});
