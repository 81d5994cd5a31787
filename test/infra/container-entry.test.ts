/**
 * The container's entry point, proven by running it (there is no Docker
 * engine here): the build context is the one the CDK stages from .dockerignore,
 * the bundle is built in it as the Dockerfile's build stage does, the bundle,
 * its source map and its licences alone are copied to an empty folder as the
 * runtime stage does, and the Dockerfile's own CMD and ENV start it in aws
 * mode against fauxqs and dynalite.
 */
import { spawn, execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { App, Stack, Validations } from 'aws-cdk-lib';
import * as ecrAssets from 'aws-cdk-lib/aws-ecr-assets';
import { ListQueuesCommand } from '@aws-sdk/client-sqs';
import { nodeQueueName } from '../../services/adapters/aws/bus-naming';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectPath } from '../../lib/constructs/herald-function';
import { NODE_IMAGE_ASSET } from '../../lib/herald-stack';
import { startEmulators, unique, type Emulators } from '../aws/emulators';
import { ChildNode } from '../../scripts/fleet/child-node';
import { eventually, withDeadline } from '../../scripts/fleet/deadline';
import { REGION } from './infra-kit';

interface Dockerfile {
  readonly cmd: string[];
  readonly env: Record<string, string>;
  readonly runtimeCopies: string[];
}

/** The final stage's CMD (exec form), ENV and the files it copies from the build stage. */
function readDockerfile(): Dockerfile {
  const text = readFileSync(projectPath('Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const stages = text.split(/^FROM /m);
  const runtime = stages[stages.length - 1] ?? '';
  const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(runtime)?.[1] ?? '[]') as string[];
  const env: Record<string, string> = {};
  for (const line of runtime.match(/^ENV .*$/gm) ?? []) {
    for (const [, name, value] of line.slice(4).matchAll(/([A-Z_]+)=(\S+)/g)) env[name ?? ''] = value ?? '';
  }
  const runtimeCopies = (runtime.match(/^COPY --from=build .*$/gm) ?? []).flatMap((line) => line.split(/\s+/).slice(2, -1));
  return { cmd, env, runtimeCopies };
}

/** Stages the image's build context into `outdir` exactly as `cdk deploy` would (the asset staging honours .dockerignore). */
function stageBuildContext(outdir: string): string {
  const app = new App({ outdir });
  const stack = new Stack(app, 'Image', { env: { region: REGION } });
  new ecrAssets.DockerImageAsset(stack, 'Node', NODE_IMAGE_ASSET);
  // Only the staged asset is read; the template is empty by design, which synth validation would report.
  Validations.of(stack).acknowledge({ id: 'CloudFormation-Validate::F0001', reason: 'this stack only stages the image build context and deploys nothing' });
  app.synth();
  const [context] = readdirSync(outdir).filter((name) => name.startsWith('asset.') && existsSync(join(outdir, name, 'Dockerfile')));
  if (context === undefined) throw new Error('no staged Docker context');
  return join(outdir, context);
}

describe('the container entry point', () => {
  let emulators: Emulators;
  const dockerfile = readDockerfile();
  const scratch = mkdtempSync(join(tmpdir(), 'herald-container-'));
  const appDir = join(scratch, 'app');

  beforeAll(async () => {
    emulators = await startEmulators();
    // The build stage: the context the CDK uploads, the dependencies `npm ci` would install, then its RUN.
    const context = stageBuildContext(join(scratch, 'cdk.out'));
    symlinkSync(projectPath('node_modules'), join(context, 'node_modules'), 'dir');
    await promisify(execFile)(process.execPath, ['scripts/build.mjs'], { cwd: context, timeout: 60_000 });
    // The runtime stage: only what its COPY --from=build takes, in a folder with no node_modules.
    mkdirSync(join(appDir, 'dist'), { recursive: true });
    for (const file of dockerfile.runtimeCopies) copyFileSync(join(context, file.replace('/src/', '')), join(appDir, 'dist', file.split('/').pop() ?? ''));
  });
  afterAll(async () => {
    await emulators.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('is the command `npm start` runs, with the bundle, its source map and its licences as the only files the runtime stage takes', () => {
    expect(dockerfile.cmd).toEqual(['node', '--enable-source-maps', 'dist/herald-node.mjs']);
    expect(readFileSync(projectPath('scripts/start.mjs'), 'utf8')).toContain("['--enable-source-maps', `${root}dist/herald-node.mjs`]");
    expect(dockerfile.runtimeCopies).toEqual(['/src/dist/herald-node.mjs', '/src/dist/herald-node.mjs.map', '/src/dist/herald-node.mjs.LEGAL.txt']);
    expect(dockerfile.env).toMatchObject({ HERALD_MODE: 'aws', HERALD_PORT: '8080', NODE_ENV: 'production' });
  });

  it('builds from the staged Docker context alone into one file the runtime stage runs without node_modules', () => {
    expect(readdirSync(appDir)).toEqual(['dist']);
    expect(readdirSync(join(appDir, 'dist')).sort()).toEqual(['herald-node.mjs', 'herald-node.mjs.LEGAL.txt', 'herald-node.mjs.map']);
  });

  it('ships the licence of every production dependency beside the bundle, in the file the bundle names', () => {
    const bundle = readFileSync(join(appDir, 'dist', 'herald-node.mjs'), 'utf8');
    expect(bundle).toContain('For license information please see herald-node.mjs.LEGAL.txt');
    const legal = readFileSync(join(appDir, 'dist', 'herald-node.mjs.LEGAL.txt'), 'utf8');
    const { dependencies } = JSON.parse(readFileSync(projectPath('package.json'), 'utf8')) as { dependencies: Record<string, string> };
    // Each is bundled in full, so each must be named with its version, the licence it declares and that licence's text.
    for (const [name, version] of Object.entries(dependencies)) expect(legal, name).toMatch(new RegExp(`^${name}@${version} \\((MIT|ISC|Apache-2\\.0)\\)`, 'm'));
    expect(legal).toContain('Permission is hereby granted, free of charge');
    expect(legal).toContain('Apache License');
  });

  it('starts in aws mode against the emulators, makes its queue, serves /healthz and cleans up on SIGTERM', async () => {
    // GIVEN a table and a topic of its own on the emulators
    const table = unique('ce-table');
    const prefix = unique('ce');
    await emulators.createTable(table);
    const topicArn = await emulators.createTopic(unique('ce-topic'));
    const [command, ...args] = dockerfile.cmd;
    // WHEN the Dockerfile's CMD runs with its ENV and what ECS would add (names, secret, region)
    const child = new ChildNode(
      spawn(command === 'node' ? process.execPath : (command ?? ''), args, {
        cwd: appDir,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          PATH: process.env.PATH,
          ...dockerfile.env,
          ...emulators.env(),
          HERALD_TOPIC_ARN: topicArn,
          HERALD_TABLE_NAME: table,
          HERALD_QUEUE_PREFIX: prefix,
          HERALD_JWT_SECRET: 'container-entry-test-secret-0123456789abcdef',
          HERALD_SERVICE_NAME: 'container-test',
          HERALD_DRAIN_MS: '1000',
          // Port 0 and loopback for the test; in the task it listens on 0.0.0.0:8080.
          HERALD_PORT: '0',
          HERALD_HOST: '127.0.0.1',
        },
      }),
    );
    try {
      const url = await child.url(20_000);
      // THEN
      const health = await withDeadline(fetch(`${url}/healthz`), 5_000, 'GET /healthz');
      expect(health.status).toBe(200);
      expect(((await health.json()) as { status: string }).status).toBe('ok');
      const listening = child.logs.find((l) => l.event === 'http.listening');
      const queueName = nodeQueueName(prefix, String(listening?.nodeId));
      const queues = async () => (await emulators.sqs.send(new ListQueuesCommand({ QueueNamePrefix: prefix }))).QueueUrls ?? [];
      await eventually(async () => (await queues()).some((q) => q.endsWith(`/${queueName}`)), 10_000, `the node's queue ${queueName}`);
      // WHEN ECS stops the task
      child.signal('SIGTERM');
      const exit = await withDeadline(child.exited, 20_000, 'the node to exit after SIGTERM');
      // THEN it drained, removed its queue and exited cleanly
      expect(exit.code, child.stderrLines.join('\n')).toBe(0);
      expect(await queues()).toEqual([]);
    } finally {
      await child.stop();
    }
  });
});
