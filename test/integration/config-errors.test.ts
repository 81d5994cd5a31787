/**
 * A bad setting stops the built node (dist/herald-node.mjs) at start, with exit
 * code 1 and one JSON line on stderr that names the variable (README,
 * "Configuration").
 */
import { createServer, type AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ChildNode } from '../../scripts/fleet/child-node';
import { buildEntryPoint, spawnChildNode, type BuiltEntry } from '../support/child-node';
import { TEST_SECRET } from '../support/tokens';
import { withDeadline } from '../../scripts/fleet/deadline';

let entry: BuiltEntry | undefined;
let child: ChildNode | undefined;

beforeAll(async () => {
  entry = await buildEntryPoint();
}, 90_000);

afterAll(() => entry?.dispose());

afterEach(async () => {
  await child?.stop();
  child = undefined;
});

const SHORT_SECRET = 'only-twenty-bytes-ok';
const REDIS_PASSWORD = 'redis-password-never-printed';
const REDIS = { HERALD_MODE: 'redis', HERALD_JWT_SECRET: TEST_SECRET };

describe('configuration errors at start (built entry point)', () => {
  it.each([
    ['HERALD_HEARTBEAT_MS=abc', { HERALD_JWT_SECRET: TEST_SECRET, HERALD_HEARTBEAT_MS: 'abc' }, 'HERALD_HEARTBEAT_MS'],
    ['HERALD_HEARTBEAT_MS below its minimum', { HERALD_JWT_SECRET: TEST_SECRET, HERALD_HEARTBEAT_MS: '999' }, 'HERALD_HEARTBEAT_MS'],
    ['HERALD_MODE=aws without a secret', { HERALD_MODE: 'aws' }, 'HERALD_JWT_SECRET'],
    ['HERALD_MODE=aws without its queue prefix', { HERALD_MODE: 'aws', HERALD_JWT_SECRET: TEST_SECRET }, 'HERALD_QUEUE_PREFIX'],
    ['an unknown HERALD_MODE', { HERALD_JWT_SECRET: TEST_SECRET, HERALD_MODE: 'cloud' }, 'HERALD_MODE'],
    ['an unknown HERALD_TAB_POLICY', { HERALD_JWT_SECRET: TEST_SECRET, HERALD_TAB_POLICY: 'tabs' }, 'HERALD_TAB_POLICY'],
    ['HERALD_PORT out of range', { HERALD_JWT_SECRET: TEST_SECRET, HERALD_PORT: '70000' }, 'HERALD_PORT'],
    ['a JWT secret shorter than 32 bytes', { HERALD_JWT_SECRET: SHORT_SECRET }, 'HERALD_JWT_SECRET'],
    ['HERALD_MODE=redis without a secret', { HERALD_MODE: 'redis', HERALD_REDIS_URL: 'redis://127.0.0.1:6379' }, 'HERALD_JWT_SECRET'],
    ['HERALD_MODE=redis without a Redis', REDIS, 'HERALD_REDIS_URL'],
    ['HERALD_MODE=redis with both a server and a cluster', { ...REDIS, HERALD_REDIS_URL: 'redis://r:6379', HERALD_REDIS_CLUSTER_NODES: 'redis://r:6379' }, 'HERALD_REDIS_CLUSTER_NODES'],
    ['a cluster seed with a database number', { ...REDIS, HERALD_REDIS_CLUSTER_NODES: 'redis://r1:6379,redis://r2:6379/1' }, 'HERALD_REDIS_CLUSTER_NODES'],
    ['a Redis key prefix with a brace', { ...REDIS, HERALD_REDIS_URL: 'redis://r:6379', HERALD_REDIS_PREFIX: '{herald}' }, 'HERALD_REDIS_PREFIX'],
  ])('exits 1 on %s, naming the variable in a JSON line on stderr', async (_, env, variable) => {
    child = spawnChildNode(entry!.path, { HERALD_PORT: '0', ...env });
    const exit = await withDeadline(child.exited, 10_000, 'the node to exit');
    expect(exit.code).toBe(1);

    const lines = child.stderrLines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 'error', event: 'config.invalid', variable });
    expect(String(lines[0]!.message)).toContain(variable);
    expect(child.logs.some((l) => l.event === 'http.listening')).toBe(false);
  });

  it('exits 1 when its port is taken, naming HERALD_PORT in one JSON line and printing no stack', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = taken.address() as AddressInfo;
      child = spawnChildNode(entry!.path, { HERALD_PORT: String(port), HERALD_JWT_SECRET: TEST_SECRET });
      const exit = await withDeadline(child.exited, 10_000, 'the node to exit');
      expect(exit.code).toBe(1);
      const lines = child.stderrLines.map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({ level: 'error', event: 'node.port_in_use', variable: 'HERALD_PORT' });
      expect(String(lines[0]!.message)).toContain(`127.0.0.1:${port}`);
      expect(JSON.stringify(child.logs) + child.stderrLines.join('')).not.toContain('at Server.');
    } finally {
      await new Promise<void>((resolve) => taken.close(() => resolve()));
    }
  });

  it.each([
    ['scheme', `http://:${REDIS_PASSWORD}@127.0.0.1:6379`],
    ['database', `redis://herald:${REDIS_PASSWORD}@127.0.0.1:6379/db`],
  ])('does not print the password of a HERALD_REDIS_URL refused for its %s', async (_, url) => {
    child = spawnChildNode(entry!.path, { HERALD_PORT: '0', ...REDIS, HERALD_REDIS_URL: url });
    const exit = await withDeadline(child.exited, 10_000, 'the node to exit');
    expect(exit.code).toBe(1);
    expect(child.stderrLines.join('\n')).toContain('HERALD_REDIS_URL');
    expect([...child.stderrLines, ...child.logs.map((l) => JSON.stringify(l))].join('\n')).not.toContain(REDIS_PASSWORD);
  });

  it('does not print the rejected secret', async () => {
    child = spawnChildNode(entry!.path, { HERALD_PORT: '0', HERALD_JWT_SECRET: SHORT_SECRET });
    await withDeadline(child.exited, 10_000, 'the node to exit');
    expect(child.stderrLines.join('\n')).not.toContain(SHORT_SECRET);
  });
});
