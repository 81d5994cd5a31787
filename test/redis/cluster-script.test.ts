/**
 * `npm run cluster -- --redis` as a user runs it, through the real npm
 * command in a checkout of its own: a redis-server on a free port, three
 * nodes in redis mode behind the proxy, the demo beside it, and one Ctrl-C
 * (or one signal to npm's pid) that drains the nodes and stops everything,
 * Redis included.
 */
import { readFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeCheckout, processTree, type Checkout } from '../support/checkout';
import type { ChildNode } from '../../scripts/fleet/child-node';
import { connectUser, type ReadyStream } from '../support/sse-client';
import { withDeadline } from '../../scripts/fleet/deadline';
import { signToken } from '../support/tokens';

let checkout: Checkout;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(() => {
  checkout = makeCheckout();
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

afterAll(() => checkout.dispose());

const NODES = 3;

/**
 * The kernel's ephemeral ports (the ports a bind to 0 or an outgoing
 * connection gets): a range picked there may be taken by another test's
 * client socket in the seconds before the cluster binds it.
 */
function ephemeralPorts(): { low: number; high: number } {
  const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
  return { low: low ?? 32_768, high: high ?? 60_999 };
}

/**
 * A port P with P … P+NODES all free a moment ago (the proxy's and the
 * nodes'), below the ephemeral range, where only an explicit bind can take it.
 */
async function freePortRange(): Promise<number> {
  const listen = (port: number): Promise<ReturnType<typeof createServer> | undefined> =>
    new Promise((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(undefined));
      server.listen(port, '127.0.0.1', () => resolve(server));
    });
  const { low } = ephemeralPorts();
  const floor = Math.min(10_000, low - 1_000);
  for (let attempt = 0; attempt < 100; attempt++) {
    const base = floor + Math.floor(Math.random() * (low - floor - NODES - 1));
    const servers = await Promise.all(Array.from({ length: NODES + 1 }, (_, i) => listen(base + i)));
    await Promise.all(servers.map((s) => new Promise((resolve) => (s ? s.close(resolve) : resolve(undefined)))));
    if (servers.every((s) => s !== undefined)) return base;
  }
  throw new Error(`no ${NODES + 1} consecutive free ports below ${low}`);
}

const stdout = (npm: ChildNode): string => npm.logs.map((l) => (typeof l.raw === 'string' ? l.raw : JSON.stringify(l))).join('\n');

interface Running {
  readonly npm: ChildNode;
  readonly proxy: string;
  readonly nodeUrls: readonly string[];
  readonly redisPid: number;
  readonly user: ReadyStream;
}

async function runCluster(): Promise<Running> {
  const port = await freePortRange();
  const npm = checkout.npm(['run', 'cluster', '--', '--redis', '--port', String(port), '--quiet'], {});
  cleanups.push(() => {
    if (!npm.exit) process.kill(-npm.pid, 'SIGKILL');
  });
  await npm.waitFor((l) => typeof l.raw === 'string' && l.raw.includes('Ctrl-C stops everything'), 90_000, 'the cluster banner');
  cleanups.push(processTree(npm));
  const saved = JSON.parse(readFileSync(join(checkout.dir, '.herald/cluster.json'), 'utf8')) as { url: string; jwtSecret: string; publishToken: string; nodes: Array<{ url: string }> };
  const redisPid = Number(/redis-server pid (\d+)/.exec(stdout(npm))?.[1]);
  expect(redisPid).toBeGreaterThan(0);
  const secret = Buffer.from(saved.jwtSecret, 'base64url').toString('utf8');
  const user = await connectUser(saved.url, await signToken('alice', { secret }), 'alice through the proxy');
  cleanups.push(() => user.stream.close());

  // Published through the proxy (so usually on another node than the stream), delivered through Redis.
  const answer = await fetch(new URL('/publish', saved.url), {
    method: 'POST',
    headers: { Authorization: `Bearer ${saved.publishToken}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ to: { users: ['alice'] }, event: 'message', data: { text: 'hi' } }),
  });
  expect(answer.status).toBe(202);
  expect(JSON.parse((await user.stream.next('message')).data)).toEqual({ text: 'hi' });
  return { npm, proxy: saved.url, nodeUrls: saved.nodes.map((n) => n.url), redisPid, user };
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function expectStoppedAfterDrain(running: Running): Promise<void> {
  const closing = await running.user.stream.next('closing', { timeoutMs: 10_000 });
  expect(JSON.parse(closing.data)).toEqual({ reason: 'draining' });
  const exit = await withDeadline(running.npm.exited, 20_000, 'npm run cluster to exit');
  expect(exit.code).toBe(0);
  const output = stdout(running.npm);
  expect(output).toMatch(/draining the nodes/);
  expect(output).not.toMatch(/again: killing the nodes/);
  for (const url of [running.proxy, ...running.nodeUrls]) {
    expect(await fetch(new URL('/healthz', url), { signal: AbortSignal.timeout(1_000) }).then(() => 'answered', () => 'refused')).toBe('refused');
  }
  expect(alive(running.redisPid)).toBe(false);
  expect(existsSync(join(checkout.dir, '.herald/cluster.json'))).toBe(false);
}

describe('npm run cluster -- --redis', () => {
  it('delivers across the nodes and from the demo page, and one Ctrl-C drains them and stops everything', async () => {
    const running = await runCluster();
    // The demo's send publishes with POST /publish through the proxy (scripts/fleet/cluster-demo.ts).
    const login = await fetch(new URL('/dev/login', running.proxy), { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ user: 'bob' }) });
    expect(login.status).toBe(200);
    const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
    const sent = await fetch(new URL('/dev/send', running.proxy), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Cookie: cookie },
      body: JSON.stringify({ kind: 'message', to: 'alice', text: 'from the demo' }),
    });
    expect(sent.status).toBe(202);
    const fromDemo = await running.user.stream.waitFor((e) => e.event === 'message' && e.data.includes('from the demo'), 'the demo message');
    expect(JSON.parse(fromDemo.data)).toEqual({ fromUserId: 'bob', text: 'from the demo' });

    process.kill(-running.npm.pid, 'SIGINT');
    await expectStoppedAfterDrain(running);
  }, 120_000);

  it('drains and stops on a SIGTERM sent to npm’s pid alone', async () => {
    const running = await runCluster();
    process.kill(running.npm.pid, 'SIGTERM');
    await expectStoppedAfterDrain(running);
  }, 120_000);
});
