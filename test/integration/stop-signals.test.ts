/**
 * Stopping `npm start` as people and process managers do, through the real
 * npm command: one Ctrl-C in a terminal (SIGINT to the whole foreground
 * process group, which npm also forwards to its child), a SIGTERM or SIGINT
 * to npm's pid alone, and a second Ctrl-C during the drain. One stop request
 * must drain (the open stream gets `closing`); only a second press skips it.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeCheckout, processTree, type Checkout } from '../support/checkout';
import type { ChildNode } from '../../scripts/fleet/child-node';
import { withDeadline } from '../../scripts/fleet/deadline';
import { openStream, type SseStream } from '../support/sse-client';
import { TEST_SECRET, signToken } from '../support/tokens';

let checkout: Checkout;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(() => {
  checkout = makeCheckout();
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

afterAll(() => checkout.dispose());

interface Started {
  readonly npm: ChildNode;
  readonly url: string;
  readonly stream: SseStream;
}

/**
 * `npm start` with one stream open on it, and `others` more (other users).
 * The drain closes each stream at a random instant of its window and stops
 * once the last is closed: with one stream that can be within the first
 * second even of a 60 s window.
 */
async function npmStartWithStream(drainMs: number, others = 0): Promise<Started> {
  const npm = checkout.npm(['start'], { HERALD_PORT: '0', HERALD_HOST: '127.0.0.1', HERALD_JWT_SECRET: TEST_SECRET, HERALD_DRAIN_MS: String(drainMs) });
  cleanups.push(() => {
    if (!npm.exit) process.kill(-npm.pid, 'SIGKILL');
  });
  const url = await npm.url(60_000);
  // If the test fails midway: npm, start.mjs and the node (in a process group of its own), by pid.
  cleanups.push(processTree(npm));
  const stream = await openStream(url, { token: await signToken('alice'), label: 'alice' });
  cleanups.push(() => stream.close());
  expect(stream.status).toBe(200);
  await stream.next('ready');
  for (let i = 0; i < others; i++) {
    const other = await openStream(url, { token: await signToken(`other-${i}`), label: `other-${i}` });
    cleanups.push(() => other.close());
    await other.next('ready');
  }
  return { npm, url, stream };
}

async function answers(url: string): Promise<boolean> {
  return fetch(new URL('/healthz', url), { signal: AbortSignal.timeout(1_000) }).then(
    () => true,
    () => false,
  );
}

const events = (npm: ChildNode): unknown[] => npm.logs.map((l) => l.event).filter((e) => e !== undefined);

async function expectDrained(started: Started): Promise<void> {
  const closing = await started.stream.next('closing', { timeoutMs: 10_000 });
  expect(JSON.parse(closing.data)).toEqual({ reason: 'draining' });
  const exit = await withDeadline(started.npm.exited, 15_000, 'npm start to exit after the drain');
  expect(exit.code).toBe(0);
  expect(events(started.npm)).toContain('node.stopped');
  expect(events(started.npm)).not.toContain('node.forced_exit');
  // Nothing is left serving: the node went with npm.
  expect(await answers(started.url)).toBe(false);
}

describe('stopping npm start', () => {
  it('drains on one Ctrl-C (SIGINT to the process group, which npm forwards as well)', async () => {
    const started = await npmStartWithStream(3_000);
    process.kill(-started.npm.pid, 'SIGINT');
    await expectDrained(started);
    expect(started.npm.logs.filter((l) => l.event === 'node.signal')).toHaveLength(1);
  }, 90_000);

  it.each(['SIGTERM', 'SIGINT'] as const)('drains on a %s sent to npm’s pid alone, as a process manager sends it', async (signal) => {
    const started = await npmStartWithStream(3_000);
    process.kill(started.npm.pid, signal);
    await expectDrained(started);
  }, 90_000);

  it('exits at once on a second Ctrl-C during the drain', async () => {
    // 20 streams over 60 s: the drain is still under way at the second press (one stream's could be over by then).
    const started = await npmStartWithStream(60_000, 19);
    process.kill(-started.npm.pid, 'SIGINT');
    await started.npm.waitFor((l) => l.event === 'node.draining', 10_000);
    // A person's second press, not the copies of the first.
    await new Promise((resolve) => setTimeout(resolve, 800));
    expect(events(started.npm)).not.toContain('node.stopped');
    const pressedAt = Date.now();
    process.kill(-started.npm.pid, 'SIGINT');
    const exit = await withDeadline(started.npm.exited, 10_000, 'npm start to exit after the second Ctrl-C');
    expect(exit.atMs - pressedAt).toBeLessThan(5_000);
    expect(exit.code).not.toBe(0);
    expect(events(started.npm)).toContain('node.forced_exit');
    expect(await answers(started.url)).toBe(false);
  }, 90_000);
});
