/**
 * Ctrl-C on `npm start` (SIGINT) drains the built node exactly as SIGTERM does
 * (drain.test.ts), so a developer's clients get `closing` and reconnect, and
 * the process exits 0.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildEntryPoint, spawnChildNode, type BuiltEntry, type ChildNode } from '../support/child-node';
import { openRecordedStream } from '../support/stream-recorder';
import { openStream } from '../support/sse-client';
import { TEST_SECRET, signToken } from '../support/tokens';
import { eventually, withDeadline } from '../support/deadline';

const DRAIN_MS = 1000;

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

async function healthStatus(url: string): Promise<number> {
  const response = await fetch(new URL('/healthz', url));
  await response.text();
  return response.status;
}

describe('drain on SIGINT (built entry point)', () => {
  it('drains on SIGINT like on SIGTERM: health fails, new streams are refused, each stream gets closing draining, and it exits 0', async () => {
    child = spawnChildNode(entry!.path, { HERALD_PORT: '0', HERALD_JWT_SECRET: TEST_SECRET, HERALD_DRAIN_MS: String(DRAIN_MS) });
    const url = await child.url();
    const streams = await Promise.all(['alice', 'bob'].map(async (user) => openRecordedStream(url, await signToken(user), user)));
    await Promise.all(streams.map((s) => s.until((items) => items.some((i) => i.kind === 'event' && i.event === 'ready'), 'ready')));

    child.signal('SIGINT');

    await eventually(async () => (await healthStatus(url)) === 503, 1000, '/healthz to turn 503 after SIGINT');
    const late = await openStream(url, { token: await signToken('latecomer'), label: 'latecomer' });
    expect(late.status).toBe(503);
    expect(JSON.parse(late.body)).toMatchObject({ error: 'draining' });

    await withDeadline(Promise.all(streams.map((s) => s.closed(DRAIN_MS + 1000))), DRAIN_MS + 1500, 'every stream to be closed by the drain');
    for (const stream of streams) {
      const last = stream.items.filter((i) => i.kind === 'event').at(-1);
      // Closed by the drain with its last word, not cut by the process dying.
      expect(last?.event, `last event on ${stream.label}`).toBe('closing');
      expect(JSON.parse(last?.data ?? 'null')).toEqual({ reason: 'draining' });
    }

    const exit = await withDeadline(child.exited, DRAIN_MS + 3000, 'the node to exit after the drain');
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(child.logs.find((l) => l.event === 'node.signal')).toMatchObject({ signal: 'SIGINT', drainMs: DRAIN_MS });
    expect(child.logs.find((l) => l.event === 'node.draining')).toMatchObject({ connections: 2 });
    expect(child.stderrLines).toEqual([]);
  });
});
