/**
 * Starting redis-mode nodes as an operator does: two `npm start` at the same
 * moment from one checkout, a Redis that needs a password (never printed), a
 * Redis Cluster behind a password, and a Redis that is not there at all.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeCheckout } from '../support/checkout';
import { ChildNode } from '../../scripts/fleet/child-node';
import { buildEntryPoint, spawnChildNode, type BuiltEntry } from '../support/child-node';
import { connectUser } from '../support/sse-client';
import { withDeadline } from '../../scripts/fleet/deadline';
import { startRedisFleet, type RedisFleet } from '../../scripts/fleet/redis-fleet';
import { startRedisCluster, startRedisServer, type RedisServer } from '../../scripts/fleet/redis-server';
import { TEST_PUBLISH_TOKEN, TEST_SECRET } from '../support/tokens';

const PASSWORD = 'redis-pass-7f3a9c1e';

let entry: BuiltEntry;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  entry = await buildEntryPoint();
});

afterEach(async () => {
  // In reverse: nodes before the Redis they use. By pid, also when the test failed.
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

afterAll(() => entry.dispose());

async function server(options: { password?: string } = {}): Promise<RedisServer> {
  const started = await startRedisServer(options);
  cleanups.push(() => started.stop());
  return started;
}

async function fleetOn(redis: { url: string } | { clusterNodes: readonly string[] }, nodes: number): Promise<RedisFleet> {
  const fleet = await startRedisFleet({ entry: entry.path, redis, nodes, env: { HERALD_DRAIN_MS: '0' } });
  cleanups.push(() => fleet.stop());
  return fleet;
}

function redisNode(env: Record<string, string>): ChildNode {
  const child = spawnChildNode(entry.path, {
    HERALD_MODE: 'redis',
    HERALD_HOST: '127.0.0.1',
    HERALD_PORT: '0',
    HERALD_JWT_SECRET: TEST_SECRET,
    HERALD_PUBLISH_TOKEN: TEST_PUBLISH_TOKEN,
    ...env,
  });
  cleanups.push(() => child.stop());
  return child;
}

/** Everything a process wrote, to look for what it must never print. */
const output = (child: ChildNode): string => [...child.logs.map((l) => JSON.stringify(l)), ...child.stderrLines].join('\n');

describe('starting nodes in redis mode', () => {
  it('runs two `npm start` begun at the same moment from one checkout: both build, both listen, each with its own node id', async () => {
    const redis = await server();
    // A checkout of its own: its dist/ is what the two builds race on.
    const made = makeCheckout();
    const checkout = made.dir;
    cleanups.push(() => made.dispose());

    const starts = [1, 2].map(() => {
      const child = new ChildNode(
        spawn(process.execPath, [join(checkout, 'scripts/start.mjs')], {
          cwd: checkout,
          // Its own process group: start.mjs runs the node as a child, and both go when the group is killed.
          detached: true,
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { PATH: process.env.PATH ?? '', HERALD_MODE: 'redis', HERALD_REDIS_URL: redis.url, HERALD_PORT: '0', HERALD_JWT_SECRET: TEST_SECRET, HERALD_DRAIN_MS: '0' },
        }),
      );
      cleanups.push(async () => {
        if (child.exit) return;
        process.kill(-child.pid, 'SIGKILL');
        await withDeadline(child.exited, 5_000, `npm start (pid ${child.pid}) to exit`);
      });
      return child;
    });

    const urls = await Promise.all(starts.map((s) => s.url(60_000)));
    const ids = starts.map((s) => s.logs.find((l) => l.event === 'http.listening')?.nodeId);
    expect(new Set(ids).size).toBe(2);
    for (const url of urls) expect((await fetch(new URL('/healthz', url))).status).toBe(200);
    const legal = readFileSync(join(checkout, 'dist/herald-node.mjs.LEGAL.txt'), 'utf8');
    expect(legal.split('Licences of the packages bundled into herald-node.mjs').length).toBe(2);
    expect(legal).toMatch(/^redis@\S+ \(MIT\)/m);

    // start.mjs hands SIGTERM to the node, which drains and exits 0.
    for (const s of starts) s.signal('SIGTERM');
    const exits = await Promise.all(starts.map((s) => withDeadline(s.exited, 10_000, 'npm start to exit after SIGTERM')));
    expect(exits.map((e) => e.code)).toEqual([0, 0]);
  }, 90_000);

  it('connects with the user and password of HERALD_REDIS_URL and never prints the password', async () => {
    const redis = await server({ password: PASSWORD });
    const fleet = await fleetOn({ url: `redis://default:${PASSWORD}@127.0.0.1:${redis.port}` }, 2);
    const [a, b] = fleet.nodes as [RedisFleet['nodes'][number], RedisFleet['nodes'][number]];
    const bob = await connectUser(b.url, await fleet.token('bob'), 'bob on b');
    cleanups.push(() => bob.stream.close());

    const answer = await a.publish({ to: { users: ['bob'] }, event: 'message', data: {} });

    expect(answer.body).toMatchObject({ online: 1 });
    await bob.stream.waitFor((e) => e.id === answer.body.id, 'the message', { timeoutMs: 5_000 });
    for (const node of fleet.nodes) expect(output(node.process)).not.toContain(PASSWORD);
  });

  it('exits 1 when its password is refused, naming the fault and not the password', async () => {
    const redis = await server({ password: PASSWORD });
    const wrong = 'not-the-password-9d2e';
    const child = redisNode({ HERALD_REDIS_URL: `redis://:${wrong}@127.0.0.1:${redis.port}` });

    const exit = await withDeadline(child.exited, 15_000, 'the node to exit');

    expect(exit.code).toBe(1);
    expect(child.logs.some((l) => l.event === 'http.listening')).toBe(false);
    expect(child.logs.find((l) => l.event === 'node.start_failed')).toBeDefined();
    // Why, beyond "did not answer in time": the server's own refusal.
    const failed = child.logs.find((l) => l.event === 'redis.connect_failed');
    expect(JSON.stringify(failed?.clientError)).toContain('WRONGPASS');
    expect(output(child)).not.toContain(wrong);
  });

  it('exits 1 when no Redis answers at its URL, without listening', async () => {
    // A server started and stopped: its port is closed.
    const gone = await startRedisServer();
    await gone.stop();
    const child = redisNode({ HERALD_REDIS_URL: gone.url });

    const exit = await withDeadline(child.exited, 15_000, 'the node to exit');

    expect(exit.code).toBe(1);
    expect(child.logs.some((l) => l.event === 'http.listening')).toBe(false);
    expect(child.logs.find((l) => l.event === 'node.start_failed')).toMatchObject({ level: 'error' });
  });

  it('runs a fleet on a Redis Cluster with a password: cross-node delivery and replay through keys on every shard', async () => {
    const cluster = await startRedisCluster(3, { password: PASSWORD });
    cleanups.push(() => cluster.stop());
    // One seed: the other masters are found through it, and reached with its password.
    expect(cluster.urls[0]).toContain(`:${PASSWORD}@`);
    const fleet = await fleetOn({ clusterNodes: cluster.urls.slice(0, 1) }, 2);
    const [a, b] = fleet.nodes as [RedisFleet['nodes'][number], RedisFleet['nodes'][number]];
    // Users spread over the shards: a node that could reach only the seed would fail some of them.
    const users = Array.from({ length: 12 }, (_, i) => `user-${i}`);
    const tabs = await Promise.all(users.map(async (u) => (await connectUser(b.url, await fleet.token(u), `${u} on b`)).stream));
    cleanups.push(() => tabs.forEach((t) => t.close()));

    const answer = await a.publish({ to: { users }, event: 'message', data: { n: 1 } });
    expect(answer.status).toBe(202);
    expect(answer.body).toMatchObject({ online: users.length, offline: [] });
    await Promise.all(tabs.map((t) => t.waitFor((e) => e.id === answer.body.id, 'the message', { timeoutMs: 5_000 })));

    tabs[0]!.close();
    const missed = await a.publish({ to: { users: [users[0]!] }, event: 'message', data: { n: 2 } });
    const back = await connectUser(a.url, await fleet.token(users[0]!), `${users[0]!} back on a`, { lastEventId: String(answer.body.id) });
    cleanups.push(() => back.stream.close());
    await back.stream.waitFor((e) => e.id === missed.body.id, 'the replayed message', { timeoutMs: 5_000 });
    expect(back.stream.names()).not.toContain('gap');
    for (const node of fleet.nodes) expect(output(node.process)).not.toContain(PASSWORD);
  }, 90_000);
});
