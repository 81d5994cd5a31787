/**
 * The drain of the built node (dist/herald-node.mjs) as a real process: what a
 * Fargate task does between SIGTERM and its exit, and what Ctrl-C (SIGINT) on
 * `npm start` does alike.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ChildNode } from '../../scripts/fleet/child-node';
import { buildEntryPoint, spawnChildNode, type BuiltEntry } from '../support/child-node';
import { openRecordedStream, type Recorded, type RecordedStream } from '../support/stream-recorder';
import { openStream } from '../support/sse-client';
import { TEST_SECRET, signToken } from '../support/tokens';
import { eventually, withDeadline } from '../../scripts/fleet/deadline';

const DRAIN_MS = 1500;
const RETRY_MS = 2000;
const STREAMS = 6;

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

type RecordedEvent = Extract<Recorded, { kind: 'event' }>;

function closingOf(stream: RecordedStream): { closing: RecordedEvent; before: Recorded | undefined; after: Recorded | undefined } {
  const index = stream.items.findIndex((i) => i.kind === 'event' && i.event === 'closing');
  expect(index, `closing on ${stream.label}`).toBeGreaterThanOrEqual(0);
  return { closing: stream.items[index] as RecordedEvent, before: stream.items[index - 1], after: stream.items[index + 1] };
}

async function healthStatus(url: string): Promise<number> {
  const response = await fetch(new URL('/healthz', url));
  await response.text();
  return response.status;
}

describe('drain on SIGTERM or SIGINT (built entry point)', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)('on %s: fails health, refuses new streams, closes each stream with closing draining and a retry spread over the window, and exits 0', async (signal) => {
    child = spawnChildNode(entry!.path, {
      HERALD_PORT: '0',
      HERALD_JWT_SECRET: TEST_SECRET,
      HERALD_DRAIN_MS: String(DRAIN_MS),
      HERALD_RETRY_MS: String(RETRY_MS),
    });
    const url = await child.url();
    expect(await healthStatus(url)).toBe(200);

    const streams = await Promise.all(
      Array.from({ length: STREAMS }, async (_, i) => openRecordedStream(url, await signToken(`user-${i}`), `stream ${i}`)),
    );
    await Promise.all(streams.map((s) => s.until((items) => items.some((i) => i.kind === 'event' && i.event === 'ready'), 'ready')));

    const signalledAtMs = Date.now();
    child.signal(signal);

    await eventually(async () => (await healthStatus(url)) === 503, 1000, `/healthz to turn 503 after ${signal}`);
    const late = await openStream(url, { token: await signToken('latecomer'), label: 'latecomer' });
    expect(late.status).toBe(503);
    expect(JSON.parse(late.body)).toMatchObject({ error: 'draining' });
    expect(Number(late.headers['retry-after'])).toBeGreaterThanOrEqual(1);

    await withDeadline(Promise.all(streams.map((s) => s.closed(DRAIN_MS + 1000))), DRAIN_MS + 1500, 'every stream to be closed by the drain');
    const closes = streams.map((stream) => {
      const { closing, before, after } = closingOf(stream);
      expect(JSON.parse(closing.data)).toEqual({ reason: 'draining' });
      // A fresh `retry:` comes with the closing event, jittered over 0..2×HERALD_RETRY_MS so reconnects trickle.
      expect(before?.kind, `retry before closing on ${stream.label}`).toBe('retry');
      if (before?.kind === 'retry') {
        expect(before.ms).toBeGreaterThanOrEqual(0);
        expect(before.ms).toBeLessThanOrEqual(2 * RETRY_MS);
      }
      // Closing is the last thing on the stream.
      expect(after?.kind).toBe('end');
      return closing.atMs - signalledAtMs;
    });
    for (const atMs of closes) expect(atMs).toBeLessThanOrEqual(DRAIN_MS + 500);
    // Spread over the window, not all at once: six uniform instants over 1500 ms fall within
    // 100 ms of each other with a probability of about 1e-5.
    expect(Math.max(...closes) - Math.min(...closes)).toBeGreaterThanOrEqual(100);

    const exit = await withDeadline(child.exited, DRAIN_MS + 3000, 'the node to exit after the drain');
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(exit.atMs - signalledAtMs).toBeLessThanOrEqual(DRAIN_MS + 2000);
    expect(child.logs.find((l) => l.event === 'node.signal')).toMatchObject({ signal, drainMs: DRAIN_MS });
    expect(child.logs.find((l) => l.event === 'node.draining')).toMatchObject({ connections: STREAMS, windowMs: DRAIN_MS });
    expect(child.logs.filter((l) => l.event === 'connection.closed' && l.reason === 'draining')).toHaveLength(STREAMS);
    expect(child.stderrLines).toEqual([]);
  });

  it('exits 0 at once on SIGTERM when no stream is open', async () => {
    child = spawnChildNode(entry!.path, { HERALD_PORT: '0', HERALD_JWT_SECRET: TEST_SECRET, HERALD_DRAIN_MS: String(DRAIN_MS) });
    const url = await child.url();
    expect(await healthStatus(url)).toBe(200);
    const signalledAtMs = Date.now();
    child.signal('SIGTERM');
    const exit = await withDeadline(child.exited, DRAIN_MS + 3000, 'the node to exit');
    expect(exit.code).toBe(0);
    // Nothing to spread: the window is not waited out.
    expect(exit.atMs - signalledAtMs).toBeLessThan(DRAIN_MS);
  });

  it('exits 1 at once on a second signal during the drain', async () => {
    child = spawnChildNode(entry!.path, { HERALD_PORT: '0', HERALD_JWT_SECRET: TEST_SECRET, HERALD_DRAIN_MS: '60000' });
    const url = await child.url();
    const stream = await openRecordedStream(url, await signToken('alice'), 'alice');
    await stream.until((items) => items.some((i) => i.kind === 'event' && i.event === 'ready'), 'ready');
    child.signal('SIGTERM');
    await eventually(async () => (await healthStatus(url)) === 503, 1000, '/healthz to turn 503 after SIGTERM');
    child.signal('SIGTERM');
    const exit = await withDeadline(child.exited, 3000, 'the node to exit on the second signal');
    expect(exit.code).toBe(1);
    expect(child.logs.some((l) => l.event === 'node.forced_exit')).toBe(true);
  });
});
