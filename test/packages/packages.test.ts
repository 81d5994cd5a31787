/**
 * The npm packages as another repository gets them: the tarballs that
 * `npm run pack` built (test/packages/global-setup.ts) are installed with npm
 * into a project in a temporary directory, outside this repository, and used
 * from there — type-checked under `strict` with `moduleResolution` node16 and
 * bundler, run by Node against a real node, and loaded by real Chromium.
 * Nothing here imports the sources of the packages: only what the tarballs hold.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, newCheckedContext } from '../browser/support/chromium';
import { openStream } from '../support/sse-client';
import { startTestNode } from '../support/start-node';
import { TEST_PUBLISH_TOKEN } from '../support/tokens';

const root = new URL('../../', import.meta.url).pathname;
const tarballs = join(root, 'dist', 'packages');

interface Manifest {
  readonly name: string;
  readonly version: string;
  readonly license: string;
  readonly type?: string;
  readonly types?: string;
  readonly sideEffects?: boolean;
  readonly exports?: Record<string, unknown>;
  readonly dependencies?: Record<string, string>;
  readonly devDependencies?: Record<string, string>;
}

const readJson = (file: string): Manifest => JSON.parse(readFileSync(file, 'utf8')) as Manifest;
const rootPackage = readJson(join(root, 'package.json'));

interface Finished {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Children still running: each is stopped by its own pid if the tests end first. */
const running = new Set<ChildProcess>();

/**
 * Runs a command to its end (killed by pid after `timeoutMs`), with npm's own
 * variables removed from the environment: under `npm test` they would point
 * the temporary project's npm at this repository.
 */
function runChild(command: string, args: readonly string[], options: { cwd: string; env?: Record<string, string>; timeoutMs: number }): Promise<Finished> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.toLowerCase().startsWith('npm_')));
  const child = spawn(command, args, { cwd: options.cwd, env: { ...env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const timer = setTimeout(() => stop(child), options.timeoutMs);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      running.delete(child);
      resolve({ code, stdout, stderr: signal ? `${stderr}\n(stopped by ${signal} after ${options.timeoutMs} ms)` : stderr });
    });
  });
}

function stop(child: ChildProcess): void {
  if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
}

function expectSuccess(run: Finished, what: string): void {
  expect(run.code, `${what}\n--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}`).toBe(0);
}

/** The ```ts blocks of a README, each its own module (they reuse names). */
function typescriptBlocks(readme: string): string[] {
  return [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1]!);
}

/**
 * Consumers of the packages. Each `@ts-expect-error` fails the check if its
 * line compiles: an import that resolved to nothing (`any`) would let every
 * one of them through.
 */
const CLIENT_CONSUMER = `import { createHeraldClient, type ConnectionStatus, type HeraldClient, type HeraldClientOptions } from '@herald/client';

interface Events {
  message: { fromUserId: string; text: string };
  'job.progress': { percent: number };
}

const options: HeraldClientOptions = { url: '/events', share: true, onStatus: (status: ConnectionStatus) => void status };
const client: HeraldClient<Events> = createHeraldClient<Events>(options);
const off: () => void = client.on('message', (data, meta) => {
  const text: string = data.text;
  const id: string = meta.id;
  void [text, id];
});
off();
// @ts-expect-error an event the map does not name
client.on('nope', () => undefined);
client.on('job.progress', (data) => {
  // @ts-expect-error percent is a number
  const wrong: string = data.percent;
  void wrong;
});
export const status: ConnectionStatus = client.status;
`;

const PUBLISHER_CONSUMER = `import {
  createHttpPublisher,
  createPublisher,
  HeraldError,
  isHeraldError,
  type ErrorCode,
  type HttpPublisherOptions,
  type Publisher,
  type PublishResult,
} from '@herald/publisher';

const httpOptions: HttpPublisherOptions = { url: 'http://127.0.0.1:8080', token: 'a-publisher-token-of-length', retry: { attempts: 2, firstDelayMs: 10, maxDelayMs: 100 } };
const viaHttp: Publisher = createHttpPublisher(httpOptions);
const viaAws: Publisher = createPublisher({ topicArn: 'arn:aws:sns:us-east-1:000000000000:herald', tableName: 'herald' });
// @ts-expect-error the token is required
createHttpPublisher({ url: 'http://127.0.0.1:8080' });

export async function publishBoth(): Promise<PublishResult[]> {
  const one: PublishResult = await viaHttp.publish({ to: { users: ['alice'] }, event: 'message', data: { text: 'hi' } });
  const recipients: number | 'all' = one.recipients;
  const online: number | null = one.online;
  const offline: readonly string[] = one.offline;
  const duplicate: boolean = one.duplicate;
  // @ts-expect-error an id is a string
  const notANumber: number = one.id;
  void [recipients, online, offline, duplicate, notANumber];
  try {
    return await viaAws.publishBatch([{ to: { all: true }, event: 'maintenance', data: null }]);
  } catch (error) {
    if (error instanceof HeraldError || isHeraldError(error)) {
      const code: ErrorCode = error.code;
      const index: number | undefined = error.details.index;
      const retryAfterMs: number | undefined = error.details.retryAfterMs;
      void [code, index, retryAfterMs];
    }
    throw error;
  } finally {
    await Promise.all([viaHttp.close(), viaAws.close()]);
  }
}
`;

/** Publishes through createHttpPublisher from the installed tarball, as a service would; prints what it got. */
const PUBLISH_SCRIPT = `import { createHttpPublisher, createPublisher, HeraldError } from '@herald/publisher';

const herald = createHttpPublisher({ url: process.env.HERALD_URL, token: process.env.HERALD_PUBLISH_TOKEN });
const user = process.env.HERALD_USER;
const refused = await herald.publish({ to: { users: [user] }, event: 'ready', data: {} }).then(() => undefined, (error) => error);
const result = await herald.publish({ to: { users: [user, 'nobody'] }, event: 'message', data: { text: process.env.HERALD_TEXT } });
const batch = await herald.publishBatch([
  { to: { users: [user] }, event: 'job.progress', data: { percent: 50 } },
  { to: { all: true }, event: 'maintenance', data: { at: '22:00' } },
]);
await herald.close();
// The AWS publisher loads too (its SDK clients are made, never called): its dependencies are all installed.
await createPublisher({ topicArn: 'arn:aws:sns:us-east-1:000000000000:herald', tableName: 'herald' }).close();
console.log(JSON.stringify({
  result,
  batch,
  refused: { isHeraldError: refused instanceof HeraldError, code: refused?.code, field: refused?.details?.field },
}));
`;

interface Published {
  readonly result: { id: string; recipients: number; online: number; offline: string[]; duplicate: boolean };
  readonly batch: Array<{ id: string; recipients: number | 'all'; online: number | null }>;
  readonly refused: { isHeraldError: boolean; code: string; field: string };
}

let project = '';

beforeAll(async () => {
  const files = readdirSync(tarballs).filter((file) => file.endsWith('.tgz'));
  const tarball = (name: string): string => {
    const file = files.find((f) => f === `herald-${name}-${rootPackage.version}.tgz`);
    if (file === undefined) throw new Error(`no ${name} tarball in ${tarballs} (found ${files.join(', ') || 'none'}): did scripts/pack.mjs run?`);
    return join(tarballs, file);
  };
  project = mkdtempSync(join(tmpdir(), 'herald-packages-'));
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'herald-consumer', private: true, type: 'module' }, null, 2));
  // The AWS SDK comes from npm's cache (filled by this repository's `npm ci`), the registry only for what the cache lacks.
  const typesNode = `@types/node@${rootPackage.devDependencies?.['@types/node'] ?? '20'}`;
  const install = await runChild('npm', ['install', tarball('client'), tarball('publisher'), typesNode, '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], {
    cwd: project,
    timeoutMs: 240_000,
  });
  expectSuccess(install, 'npm install of the tarballs');
  writeFileSync(join(project, 'publish.mjs'), PUBLISH_SCRIPT);
});

afterAll(() => {
  for (const child of running) stop(child);
  if (project !== '') rmSync(project, { recursive: true, force: true });
});

describe('the packages, installed from their tarballs into a project outside the repository', () => {
  it('are ESM packages with types, the exports map, the licence and only their run-time dependencies', () => {
    const client = readJson(join(project, 'node_modules/@herald/client/package.json'));
    const publisher = readJson(join(project, 'node_modules/@herald/publisher/package.json'));
    for (const manifest of [client, publisher]) {
      expect(manifest).toMatchObject({ version: rootPackage.version, license: 'Apache-2.0', type: 'module', types: './dist/index.d.ts' });
      expect(manifest.exports?.['.']).toEqual({ types: './dist/index.d.ts', import: './dist/index.js', default: './dist/index.js' });
      const dir = join(project, 'node_modules', manifest.name);
      expect(readFileSync(join(dir, 'LICENSE'), 'utf8')).toBe(readFileSync(join(root, 'LICENSE'), 'utf8'));
      expect(readFileSync(join(dir, 'README.md'), 'utf8')).toMatch(/## Example/);
    }
    expect(client.dependencies).toBeUndefined();
    expect(client.sideEffects).toBe(false);
    const aws = ['@aws-sdk/client-dynamodb', '@aws-sdk/client-sns'];
    expect(publisher.dependencies).toEqual(Object.fromEntries(aws.map((name) => [name, rootPackage.dependencies?.[name]])));
    // A publisher never reads a queue: the SQS client is no dependency, so npm did not install it.
    expect(existsSync(join(project, 'node_modules/@aws-sdk/client-sqs'))).toBe(false);
    // The browser bundle imports nothing.
    expect(readFileSync(join(project, 'node_modules/@herald/client/dist/index.js'), 'utf8')).not.toMatch(/^\s*import\s/m);
  });

  describe.each(['node16', 'bundler'] as const)('type-checked under strict with moduleResolution %s', (resolution) => {
    it('accepts consumers of both packages and the examples of both READMEs, with no declaration errors', async () => {
      const dir = join(project, `check-${resolution}`);
      mkdirSync(dir, { recursive: true });
      const write = (file: string, text: string): string => {
        writeFileSync(join(dir, file), text);
        return file;
      };
      const readmeFiles = (name: string): string[] =>
        typescriptBlocks(readFileSync(join(project, 'node_modules/@herald', name, 'README.md'), 'utf8')).map((block, i) => write(`readme-${name}-${i + 1}.ts`, block));
      const clientFiles = [write('client-consumer.ts', CLIENT_CONSUMER), ...readmeFiles('client')];
      const publisherFiles = [write('publisher-consumer.ts', PUBLISHER_CONSUMER), ...readmeFiles('publisher')];
      expect(clientFiles.length + publisherFiles.length).toBeGreaterThanOrEqual(5);
      const common = {
        strict: true,
        target: 'es2022',
        module: resolution === 'node16' ? 'node16' : 'preserve',
        moduleResolution: resolution,
        // Checks the packages' declarations too (and the AWS SDK's they import): an error in ours fails here.
        skipLibCheck: false,
        noEmit: true,
        noUnusedLocals: true,
        exactOptionalPropertyTypes: true,
        noUncheckedIndexedAccess: true,
      };
      // A browser app: the DOM and no Node types, so a Node type leaking into the client's declarations fails.
      write('tsconfig.browser.json', JSON.stringify({ compilerOptions: { ...common, lib: ['es2022', 'dom'], types: [] }, files: clientFiles }, null, 2));
      // A Node service that also builds its front end: both packages at once.
      write('tsconfig.node.json', JSON.stringify({ compilerOptions: { ...common, lib: ['es2022', 'dom'], types: ['node'] }, files: [...clientFiles, ...publisherFiles] }, null, 2));
      for (const config of ['tsconfig.browser.json', 'tsconfig.node.json']) {
        // The check directory sits inside the project, whose package.json says "type": "module".
        const check = await runChild(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(dir, config)], { cwd: project, timeoutMs: 120_000 });
        expectSuccess(check, `tsc --noEmit -p ${config} under moduleResolution ${resolution}`);
      }
    });
  });

  it('publishes from a Node script through createHttpPublisher to a node, and an SSE client receives it', async () => {
    const node = await startTestNode();
    const stream = await openStream(node.url, { token: await node.token('alice'), label: 'alice' });
    expect(stream.status).toBe(200);
    await stream.next('ready');

    const run = await runChild(process.execPath, ['publish.mjs'], {
      cwd: project,
      env: { HERALD_URL: node.url, HERALD_PUBLISH_TOKEN: TEST_PUBLISH_TOKEN, HERALD_USER: 'alice', HERALD_TEXT: 'from the tarball 👋', AWS_REGION: 'us-east-1' },
      timeoutMs: 30_000,
    });
    expectSuccess(run, 'node publish.mjs');
    const published = JSON.parse(run.stdout) as Published;

    expect(published.refused).toEqual({ isHeraldError: true, code: 'event_name_reserved', field: 'event' });
    expect(published.result).toEqual({ id: published.result.id, recipients: 2, online: 1, offline: ['nobody'], duplicate: false });
    expect(published.batch.map((r) => [r.recipients, r.online])).toEqual([[1, 1], ['all', null]]);
    const received = await stream.waitFor((e) => e.id === published.result.id, 'the event published from the tarball');
    expect(received.event).toBe('message');
    expect(JSON.parse(received.data)).toEqual({ text: 'from the tarball 👋' });
    await stream.waitFor((e) => e.id === published.batch[1]!.id, 'the broadcast');
    expect(stream.notifications().map((e) => e.id)).toEqual([published.result.id, ...published.batch.map((r) => r.id)]);
    stream.close();
  });

  describe('in Chromium', () => {
    let browser: Browser;
    beforeAll(async () => {
      browser = await launchChromium();
    });
    afterAll(async () => {
      await browser.close();
    });

    it('loads @herald/client from the tarball with an import map and receives an event', async () => {
      const node = await startTestNode();
      const pkg = join(project, 'node_modules/@herald/client');
      const entry = (readJson(join(pkg, 'package.json')).exports?.['.'] as { import: string }).import;
      const moduleText = readFileSync(join(pkg, entry), 'utf8');
      const page = `<!doctype html><meta charset="utf-8"><title>@herald/client from its tarball</title>
<script type="importmap">{ "imports": { "@herald/client": "/app/herald-client.js" } }</script>
<script type="module">
  import { createHeraldClient } from '@herald/client';
  window.received = [];
  window.herald = createHeraldClient({ url: '/events' });
  window.herald.on('message', (data, meta) => window.received.push({ id: meta.id, event: meta.event, data }));
</script>`;
      const context = await newCheckedContext(browser);
      // The page and the module are answered from the node's origin, so the stream is same-origin and carries the cookie.
      const origin = new URL(node.url).origin;
      await context.route(
        (url) => url.origin === origin && url.pathname.startsWith('/app/'),
        (route) => {
          const path = new URL(route.request().url()).pathname;
          if (path === '/app/') return route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: page });
          if (path === '/app/herald-client.js') return route.fulfill({ status: 200, contentType: 'text/javascript; charset=utf-8', body: moduleText });
          return route.fulfill({ status: 404, body: '' });
        },
      );
      await context.addCookies([{ name: 'herald_token', value: await node.token('carol'), url: origin, httpOnly: true, sameSite: 'Strict' }]);
      const tab = await context.newPage();
      await tab.goto(`${origin}/app/`);
      await tab.waitForFunction(() => (window as unknown as { herald?: { status: string } }).herald?.status === 'open', null, { timeout: 10_000 });

      const run = await runChild(process.execPath, ['publish.mjs'], {
        cwd: project,
        env: { HERALD_URL: node.url, HERALD_PUBLISH_TOKEN: TEST_PUBLISH_TOKEN, HERALD_USER: 'carol', HERALD_TEXT: 'to the browser', AWS_REGION: 'us-east-1' },
        timeoutMs: 30_000,
      });
      expectSuccess(run, 'node publish.mjs');
      const { result } = JSON.parse(run.stdout) as Published;

      await tab.waitForFunction(
        (id) => (window as unknown as { received: Array<{ id: string }> }).received.some((e) => e.id === id),
        result.id,
        { timeout: 10_000 },
      );
      const received = await tab.evaluate(() => (window as unknown as { received: unknown[] }).received);
      expect(received).toEqual([{ id: result.id, event: 'message', data: { text: 'to the browser' } }]);
      await context.close();
    });
  });
});
