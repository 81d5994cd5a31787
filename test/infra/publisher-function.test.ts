import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { describe, expect, it, vi } from 'vitest';
import { projectPath } from '../../lib/constructs/herald-function';
import { HeraldTable } from '../../lib/constructs/herald-table';
import { NodeBus } from '../../lib/constructs/node-bus';
import { PublisherFunction } from '../../lib/constructs/publisher-function';
import { bareStack, entryOrFixture, grantsOf, REGION, resolved, tempDir } from './infra-kit';

function build(stack: Stack, entry = entryOrFixture('services/publisher/lambda.ts')) {
  const bus = new NodeBus(stack, 'Bus', { queuePrefix: 'herald-test' });
  const table = new HeraldTable(stack, 'Table');
  const publisher = new PublisherFunction(stack, 'Publisher', { bus, table, entry, environment: { HERALD_MAX_DATA_BYTES: '32768' } });
  return { bus, table, publisher };
}

function setup() {
  const stack = bareStack();
  return { stack, ...build(stack), template: () => Template.fromStack(stack) };
}

describe('PublisherFunction', () => {
  it('runs on Node 24, ARM64, with the topic and table it publishes to', () => {
    const { stack, bus, table, template } = setup();
    const [fn] = Object.values(template().findResources('AWS::Lambda::Function')) as { Properties: Record<string, unknown> }[];
    expect(fn?.Properties).toMatchObject({ Runtime: 'nodejs24.x', Architectures: ['arm64'], Handler: 'index.handler', Timeout: 30 });
    expect((fn?.Properties.Environment as { Variables: Record<string, unknown> }).Variables).toEqual({
      NODE_OPTIONS: '--enable-source-maps',
      HERALD_MAX_DATA_BYTES: '32768',
      HERALD_TOPIC_ARN: resolved(stack, bus.topic.topicArn),
      HERALD_TABLE_NAME: resolved(stack, table.table.tableName),
    });
    expect(fn?.Properties.FunctionName).toBeUndefined();
  });

  it('may write its own log group, publish to the topic with its key and use the table, and nothing else', () => {
    const { stack, bus, table, publisher, template } = setup();
    const t = template();
    const [logGroupId] = Object.keys(t.findResources('AWS::Logs::LogGroup'));
    expect(grantsOf(t, stack, publisher.role)).toEqual([
      { actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resource: { 'Fn::GetAtt': [logGroupId, 'Arn'] } },
      { actions: ['sns:Publish'], resource: resolved(stack, bus.topic.topicArn) },
      { actions: ['kms:GenerateDataKey', 'kms:Decrypt'], resource: resolved(stack, bus.key.keyArn) },
      {
        actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:Query', 'dynamodb:BatchGetItem', 'dynamodb:BatchWriteItem'],
        resource: [resolved(stack, table.table.tableArn)],
      },
    ]);
    t.hasResourceProperties('AWS::IAM::Role', { AssumeRolePolicyDocument: { Statement: [{ Principal: { Service: 'lambda.amazonaws.com' } }] } });
    for (const role of Object.values(t.findResources('AWS::IAM::Role'))) {
      expect((role as { Properties: Record<string, unknown> }).Properties.ManagedPolicyArns).toBeUndefined();
    }
  });

  it('grantPublish lets chat code invoke this function and nothing else', () => {
    const { stack, publisher, template } = setup();
    const chat = new iam.Role(stack, 'ChatService', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') });
    publisher.grantPublish(chat);
    const fnArn = resolved(stack, publisher.function.functionArn);
    expect(grantsOf(template(), stack, chat)).toEqual([{ actions: ['lambda:InvokeFunction'], resource: [fnArn, { 'Fn::Join': ['', [fnArn, ':*']] }] }]);
  });

  it('bundles locally with esbuild into one ESM file that loads and answers', async () => {
    // GIVEN bundling on (no `aws:cdk:bundling-stacks` override), no Docker
    const outdir = tempDir('bundle');
    const stack = new Stack(new App({ outdir }), 'Test', { env: { region: REGION } });
    const entry = entryOrFixture('services/publisher/lambda.ts');
    build(stack, entry);
    // WHEN
    Template.fromStack(stack);
    // THEN one ESM file with a require() for the CommonJS dependencies, and its source map
    const assets = readdirSync(outdir).filter((name) => name.startsWith('asset.') && existsSync(join(outdir, name, 'index.mjs')));
    expect(assets).toHaveLength(1);
    const bundle = join(outdir, assets[0] ?? '', 'index.mjs');
    const banner = "import { createRequire as __heraldCreateRequire } from 'node:module'; const require = __heraldCreateRequire(import.meta.url);";
    expect(readFileSync(bundle, 'utf8').startsWith(banner), 'the bundle starts with the require() banner').toBe(true);
    expect(existsSync(`${bundle}.map`)).toBe(true);
    const { handler } = (await import(pathToFileURL(bundle).href)) as { handler: (event: unknown) => Promise<unknown> };
    if (entry === projectPath('services/publisher/lambda.ts')) {
      // The real publisher, with none of its settings in this process: it loads, then refuses, naming the variable,
      // and logs one error line to stdout (as in CloudWatch), captured here so a passing run prints nothing.
      const lines: string[] = [];
      const stdout = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => lines.push(String(chunk)) > 0);
      try {
        await expect(handler({})).rejects.toThrow(/HERALD_TOPIC_ARN/);
      } finally {
        stdout.mockRestore();
      }
      expect(lines.map((line) => JSON.parse(line) as unknown)).toEqual([expect.objectContaining({ level: 'error', event: 'config.invalid', variable: 'HERALD_TOPIC_ARN' })]);
    } else {
      await expect(handler({})).resolves.toEqual({});
    }
  });
});
