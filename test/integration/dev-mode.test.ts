/**
 * `npm start` with no secret configured: the built node (dist/herald-node.mjs)
 * starts in dev mode, makes random secrets for the process, writes them to
 * .herald/dev.json (readable only by its owner) and says so loudly in its log,
 * never printing them; `npm run token` (scripts/token.ts) reads that file and
 * signs tokens the node accepts (README "Run it locally").
 *
 * HERALD_MODE=aws without a secret is refused at start: config-errors.test.ts.
 */
import { execFile, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ChildNode } from '../../scripts/fleet/child-node';
import { buildEntryPoint, type BuiltEntry } from '../support/child-node';
import { openStream } from '../support/sse-client';
import { startTestNode } from '../support/start-node';
import { TEST_PUBLISH_TOKEN, TEST_SECRET, signToken } from '../support/tokens';
import { eventually } from '../../scripts/fleet/deadline';

const root = new URL('../../', import.meta.url).pathname;
/** What `npm run token` runs (`tsx scripts/token.ts`), without npm in between. */
const TSX_CLI = join(root, 'node_modules/tsx/dist/cli.mjs');
const TOKEN_SCRIPT = join(root, 'scripts/token.ts');

interface DevFile {
  readonly url: string;
  readonly jwtSecret: string;
  readonly publishToken: string;
}

let entry: BuiltEntry | undefined;
const children: ChildNode[] = [];
const dirs: string[] = [];

beforeAll(async () => {
  entry = await buildEntryPoint();
}, 90_000);

afterAll(() => entry?.dispose());

afterEach(async () => {
  for (const child of children.splice(0)) await child.stop();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A fresh directory to run `npm start` in, as a checkout would be. */
function workDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'herald-dev-'));
  dirs.push(dir);
  return dir;
}

/** The built node in `cwd` with no HERALD_JWT_SECRET (nor anything else from this machine's environment). */
function startDevNode(cwd: string): ChildNode {
  const child = new ChildNode(spawn(process.execPath, [entry!.path], { cwd, env: { PATH: process.env.PATH ?? '', HERALD_PORT: '0' }, stdio: ['ignore', 'pipe', 'pipe'] }));
  children.push(child);
  return child;
}

/** Waits for the node to listen and announce dev mode; returns its URL and the dev-mode log line. */
async function devModeStarted(child: ChildNode): Promise<{ url: string; line: Record<string, unknown> }> {
  const url = await child.url();
  await eventually(() => child.logs.some((l) => l.event === 'node.dev_mode') || child.exit !== undefined, 5000, 'the node.dev_mode log line');
  const line = child.logs.find((l) => l.event === 'node.dev_mode');
  expect(line, `node.dev_mode in ${JSON.stringify(child.logs)} ${child.stderrLines.join('\n')}`).toBeDefined();
  return { url, line: line! };
}

function readDevFile(cwd: string): DevFile {
  return JSON.parse(readFileSync(join(cwd, '.herald', 'dev.json'), 'utf8')) as DevFile;
}

function permissions(path: string): number {
  return statSync(path).mode & 0o777;
}

/** `npm run token -- <args>` run from `cwd`, as in the README; resolves with what it prints. */
async function npmRunToken(cwd: string, ...args: string[]): Promise<string> {
  return npmRunTokenIn(cwd, {}, ...args);
}

/** The same, with these variables set in the shell it runs from. */
async function npmRunTokenIn(cwd: string, env: Record<string, string>, ...args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, [TSX_CLI, TOKEN_SCRIPT, ...args], { cwd, env: { PATH: process.env.PATH ?? '', ...env }, timeout: 20_000 });
  return stdout.trim();
}

/** How a command that had to fail failed: its exit code and what it printed on stderr. */
async function failure(run: Promise<unknown>): Promise<{ code: number; stderr: string }> {
  const error = await run.then(
    () => undefined,
    (e: unknown) => e as { code: number; stderr: string },
  );
  if (error === undefined) throw new Error('the command succeeded');
  return error;
}

/** Everything the node wrote, stdout and stderr. */
function allOutput(child: ChildNode): string {
  return JSON.stringify(child.logs) + '\n' + child.stderrLines.join('\n');
}

/** The secrets in every spelling a log line might use. */
function spellings(dev: DevFile): string[] {
  const bytes = Buffer.from(dev.jwtSecret, 'base64url');
  return [dev.jwtSecret, bytes.toString('base64'), bytes.toString('hex'), dev.publishToken];
}

describe('dev mode (npm start with no secret, built entry point)', () => {
  it('starts with random secrets written to .herald/dev.json (0600, in a 0700 directory) and a loud warn line naming the one step to get a token, never logging them', async () => {
    const cwd = workDir();
    const child = startDevNode(cwd);
    const { url, line } = await devModeStarted(child);

    expect(line.level).toBe('warn');
    expect(line.url).toBe(url);
    expect(String(line.message)).toMatch(/DEV MODE/);
    expect(String(line.message)).toContain('npm run token -- alice');

    expect(permissions(join(cwd, '.herald'))).toBe(0o700);
    expect(permissions(join(cwd, '.herald', 'dev.json'))).toBe(0o600);
    const dev = readDevFile(cwd);
    expect(dev.url).toBe(url);
    expect(Buffer.from(dev.jwtSecret, 'base64url')).toHaveLength(32);
    expect(dev.publishToken.length).toBeGreaterThanOrEqual(16);

    const output = allOutput(child);
    for (const secret of spellings(dev)) expect(output).not.toContain(secret);
    expect(child.stderrLines).toEqual([]);
  });

  it('accepts a token from `npm run token -- alice` and publishes with `npm run token -- --publisher`, both read from .herald/dev.json', async () => {
    const cwd = workDir();
    const child = startDevNode(cwd);
    const { url } = await devModeStarted(child);
    const [token, publisher] = await Promise.all([npmRunToken(cwd, 'alice'), npmRunToken(cwd, '--publisher')]);
    expect(token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(publisher).toBe(readDevFile(cwd).publishToken);

    const stream = await openStream(url, { token, label: 'alice' });
    expect(stream.status).toBe(200);
    await stream.next('ready');
    const published = await fetch(new URL('/publish', url), {
      method: 'POST',
      headers: { Authorization: `Bearer ${publisher}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ to: { users: ['alice'] }, event: 'message', data: { text: 'Hello 👋' } }),
    });
    expect(published.status).toBe(202);
    expect(await published.json()).toMatchObject({ recipients: 1, online: 1 });
    expect(JSON.parse((await stream.next('message')).data)).toEqual({ text: 'Hello 👋' });
    stream.close();

    // The secret is the process's own: a token signed with any other is refused.
    const foreign = await openStream(url, { token: await signToken('alice', { secret: TEST_SECRET }), label: 'foreign' });
    expect(foreign.status).toBe(401);

    // Serving a stream and a publish logged nothing secret either.
    for (const secret of spellings(readDevFile(cwd))) expect(allOutput(child)).not.toContain(secret);
  });

  it('makes new secrets on every start: after a restart in the same directory the old token is refused and a fresh one works', async () => {
    const cwd = workDir();
    const first = startDevNode(cwd);
    await devModeStarted(first);
    const before = readDevFile(cwd);
    const oldToken = await npmRunToken(cwd, 'alice');
    await first.stop();

    const second = startDevNode(cwd);
    const { url } = await devModeStarted(second);
    const after = readDevFile(cwd);
    expect(after.jwtSecret).not.toBe(before.jwtSecret);
    expect(after.publishToken).not.toBe(before.publishToken);
    expect(after.url).toBe(url);
    expect(permissions(join(cwd, '.herald', 'dev.json'))).toBe(0o600);

    const stale = await openStream(url, { token: oldToken, label: 'old token' });
    expect(stale.status).toBe(401);
    const fresh = await openStream(url, { token: await npmRunToken(cwd, 'alice'), label: 'new token' });
    expect(fresh.status).toBe(200);
    fresh.close();
  });

  it('keeps the secrets readable only by their owner even when .herald/dev.json was left readable by others', async () => {
    const cwd = workDir();
    mkdirSync(join(cwd, '.herald'));
    chmodSync(join(cwd, '.herald'), 0o755);
    writeFileSync(join(cwd, '.herald', 'dev.json'), '{}');
    chmodSync(join(cwd, '.herald', 'dev.json'), 0o644);

    const child = startDevNode(cwd);
    await devModeStarted(child);
    expect(readDevFile(cwd).jwtSecret).toBeTruthy();
    expect(permissions(join(cwd, '.herald', 'dev.json'))).toBe(0o600);
    expect(permissions(join(cwd, '.herald'))).toBe(0o700);
  });
});

describe('npm run token beside a configured secret, or after its server is gone', () => {
  it('refuses to sign from .herald/dev.json while HERALD_JWT_SECRET is set, naming --env, which signs what a node with that secret accepts', async () => {
    const cwd = workDir();
    const node = await startTestNode({ env: { HERALD_JWT_ISSUER: 'https://id.example.com' } });
    const shell = { HERALD_JWT_SECRET: TEST_SECRET, HERALD_PUBLISH_TOKEN: TEST_PUBLISH_TOKEN, HERALD_JWT_ISSUER: 'https://id.example.com' };

    const refused = await failure(npmRunTokenIn(cwd, shell, 'alice'));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/HERALD_JWT_SECRET is set.*npm run -s token -- --env <user>/);

    const token = await npmRunTokenIn(cwd, shell, '--env', 'alice');
    expect(await npmRunTokenIn(cwd, shell, '--env', '--publisher')).toBe(TEST_PUBLISH_TOKEN);
    const stream = await openStream(node.url, { token, label: 'alice' });
    expect(stream.status).toBe(200);
    await stream.next('ready');
    stream.close();
  });

  it('refuses a .herald/dev.json whose server no longer answers, instead of signing tokens nothing accepts', async () => {
    const cwd = workDir();
    const child = startDevNode(cwd);
    const { url } = await devModeStarted(child);
    await child.stop();

    const refused = await failure(npmRunToken(cwd, 'alice'));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`no longer answers at ${url}`);
  });
});
