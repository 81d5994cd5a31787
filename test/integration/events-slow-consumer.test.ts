import { connect as connectTcp, type Socket } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { hardQueueLimit } from '../../services/node/herald-node';
import { DEFAULT_MAX_DATA_BYTES } from '../../services/protocol/limits';
import { startTestNode, type TestNode } from '../support/start-node';
import { connect, dataOfBytes } from '../support/publish-kit';
import { eventually, withDeadline } from '../../scripts/fleet/deadline';

/** HERALD_MAX_QUEUED_BYTES in these tests. */
const CAP = 65_536;
/** The hard limit that goes with it: 8× the cap, raised to hold one full batch of maximum-size events. */
const HARD_LIMIT = hardQueueLimit(CAP, DEFAULT_MAX_DATA_BYTES);
/** A short heartbeat, so pings (which the stall checks watch) come often; the node ticks every 100 ms. */
const FAST_TICKS = { HERALD_HEARTBEAT_MS: '1000' };

interface StalledClient {
  readonly socket: Socket;
  /** The node's end of the connection: its `writableLength` is the backlog the node holds for this client. */
  readonly accepted: Socket;
}

/**
 * Sends `GET /events` on a raw TCP socket and never reads: the client has
 * stalled. The kernel's buffers fill first (a few MB on loopback), then the
 * node's own.
 */
async function stalledClient(node: TestNode, token: string, extraHeaders = ''): Promise<StalledClient> {
  const { hostname, port } = new URL(node.url);
  const accepted: Socket[] = [];
  const onConnection = (s: Socket): void => void accepted.push(s);
  node.server.on('connection', onConnection);
  const socket = connectTcp({ host: hostname, port: Number(port) });
  onTestFinished(() => void socket.destroy());
  try {
    await withDeadline(new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject)), 5000, 'the raw socket to connect');
    await eventually(() => accepted.some((s) => s.remotePort === socket.localPort), 5000, 'the node to accept the raw socket');
  } finally {
    node.server.off('connection', onConnection);
  }
  socket.pause();
  socket.write(`GET /events HTTP/1.1\r\nHost: ${hostname}:${port}\r\nAccept: text/event-stream\r\nAuthorization: Bearer ${token}\r\n${extraHeaders}\r\n`);
  return { socket, accepted: accepted.find((s) => s.remotePort === socket.localPort)! };
}

const BIG = { text: 'x'.repeat(60_000) };

/** One ~60 KB live-only event (nothing kept in history) to `userId`. */
async function publishBig(node: TestNode, userId: string): Promise<void> {
  const response = await node.publish({ to: { users: [userId] }, event: 'bulk', data: BIG, ttl: 0 });
  expect(response.status).toBe(202);
}

async function slowConsumerCuts(node: TestNode): Promise<number> {
  return node.metric('herald_connections_closed_total{reason="slow_consumer"}');
}

describe('a client that stops reading', () => {
  it('is cut as slow_consumer once its backlog stays above HERALD_MAX_QUEUED_BYTES for HERALD_STALL_TIMEOUT_MS, while others are not slowed', async () => {
    const node = await startTestNode({ env: { HERALD_MAX_QUEUED_BYTES: String(CAP), HERALD_STALL_TIMEOUT_MS: '300', ...FAST_TICKS } });
    const reader = await connect(node, 'bob', { label: 'bob (reading)' });
    const slow = await stalledClient(node, await node.token('slow'));
    await eventually(async () => (await node.metric('herald_connections')) === 2, 5000, 'the stalled stream to open');

    // One event per request until the kernel's buffers are full and the node holds more than the cap,
    // then only enough to keep it there: the backlog stays far below the hard limit, so only the
    // stall timeout can cut this stream.
    let sent = 0;
    let peak = 0;
    const topUp = async (): Promise<void> => {
      if (slow.accepted.destroyed || slow.accepted.writableLength > CAP) return;
      expect(sent, 'events sent to the stalled client').toBeLessThan(2000);
      await publishBig(node, 'slow');
      sent++;
      peak = Math.max(peak, slow.accepted.writableLength);
    };
    await eventually(async () => {
      await topUp();
      return slow.accepted.writableLength > CAP;
    }, 10_000, 'the node to hold more than HERALD_MAX_QUEUED_BYTES for the stalled client');

    // Meanwhile another user's events are not held up behind the stalled one.
    const sentinel = await node.publish({ to: { users: ['bob'] }, event: 'message', data: { after: sent } });
    await reader.waitFor((e) => e.id === sentinel.body.id, 'the sentinel on the reading stream', { timeoutMs: 2000 });

    await eventually(async () => {
      await topUp();
      return slow.accepted.destroyed;
    }, 10_000, 'the node to cut the stalled stream');
    // Never near the hard limit, so the cut came from the ticker's stall check, not from a write.
    expect(peak).toBeLessThan(2 * CAP);
    expect(node.logs.filter((l) => l.event === 'connection.stalled')).toEqual([expect.objectContaining({ stallTimeoutMs: 300 })]);
    expect(await slowConsumerCuts(node)).toBe(1);
    expect(await node.metric('herald_connections')).toBe(1);
    expect(reader.ended).toBe(false);

    // The stalled socket was closed by the node: once it reads again, it reaches the end.
    const closed = new Promise<void>((resolve) => slow.socket.once('close', () => resolve()));
    slow.socket.resume();
    await withDeadline(closed, 5000, 'the stalled socket to close');
  });

  it('is cut at once when its backlog would pass 8× HERALD_MAX_QUEUED_BYTES, long before the stall timeout', async () => {
    const node = await startTestNode({ env: { HERALD_MAX_QUEUED_BYTES: String(CAP), HERALD_STALL_TIMEOUT_MS: '600000' } });
    const reader = await connect(node, 'bob', { label: 'bob (reading)' });
    const slow = await stalledClient(node, await node.token('slow'));
    await eventually(async () => (await node.metric('herald_connections')) === 2, 5000, 'the stalled stream to open');

    let sent = 0;
    let peak = 0;
    await eventually(async () => {
      if (slow.accepted.destroyed) return true;
      peak = Math.max(peak, slow.accepted.writableLength);
      expect(sent, 'events sent to the stalled client').toBeLessThan(2000);
      await publishBig(node, 'slow');
      sent++;
      return slow.accepted.destroyed;
    }, 15_000, 'the node to cut the stalled stream');

    // The stream held up to the hard limit (far past the cap, well within the 10-minute timeout),
    // and was cut by the write that would have taken it further.
    expect(peak).toBeGreaterThan(HARD_LIMIT - 2 * 61_000);
    expect(peak).toBeLessThanOrEqual(HARD_LIMIT);
    expect(await slowConsumerCuts(node)).toBe(1);
    expect(await node.metric('herald_drops_total{reason="slow_consumer"}')).toBe(1);
    expect(node.logs.some((l) => l.event === 'connection.stalled')).toBe(false);
    expect(await node.metric('herald_connections')).toBe(1);

    const sentinel = await node.publish({ to: { users: ['bob'] }, event: 'message', data: { after: sent } });
    await reader.waitFor((e) => e.id === sentinel.body.id, 'the sentinel on the reading stream', { timeoutMs: 2000 });
  });

  it('cuts a stalled client without cutting a reading client of the same flood', async () => {
    const node = await startTestNode({
      env: { HERALD_MAX_QUEUED_BYTES: String(CAP), HERALD_STALL_TIMEOUT_MS: '300', HERALD_TAB_POLICY: 'multi', ...FAST_TICKS },
    });
    // Both streams belong to one user: the same events go to the reading tab and to the stalled one.
    const reader = await connect(node, 'carol', { label: 'carol (reading)' });
    const slow = await stalledClient(node, await node.token('carol'));
    await eventually(async () => (await node.metric('herald_connections')) === 2, 5000, 'the stalled stream to open');

    let sent = 0;
    await eventually(async () => {
      if (slow.accepted.destroyed) return true;
      expect(sent, 'events sent before the node cut the stalled client').toBeLessThan(2000);
      await publishBig(node, 'carol');
      sent++;
      return false;
    }, 15_000, 'the node to cut the stalled tab');
    const sentinel = await node.publish({ to: { users: ['carol'] }, event: 'message', data: {} });
    await reader.waitFor((e) => e.id === sentinel.body.id, 'the sentinel on the reading tab', { timeoutMs: 5000 });

    // The reading tab got every event of the flood, in full.
    const bulk = reader.events.filter((e) => e.event === 'bulk');
    expect(bulk).toHaveLength(sent);
    expect(bulk.every((e) => e.data === JSON.stringify(BIG))).toBe(true);
    expect(await slowConsumerCuts(node)).toBe(1);
  });

  it('is cut as slow_consumer when it stops reading during its replay, and the node forgets it', async () => {
    // 150 events of 60 KB: more than the kernel's buffers and the cap together, so the paced replay has to wait.
    const node = await startTestNode({
      env: { HERALD_MAX_QUEUED_BYTES: String(CAP), HERALD_STALL_TIMEOUT_MS: '300', HERALD_HISTORY_SIZE: '150', ...FAST_TICKS },
    });
    const position = await node.publish({ to: { users: ['slow'] }, event: 'message', data: {} });
    for (let n = 0; n < 150; n++) {
      const response = await node.publish({ to: { users: ['slow'] }, event: 'bulk', data: BIG });
      expect(response.status).toBe(202);
    }

    const slow = await stalledClient(node, await node.token('slow'), `Last-Event-ID: ${String(position.body.id)}\r\n`);
    await eventually(() => slow.accepted.destroyed, 10_000, 'the node to cut the stalled replay');
    expect(slow.accepted.writableLength).toBeLessThanOrEqual(HARD_LIMIT);
    expect(await slowConsumerCuts(node)).toBe(1);
    expect(node.logs.some((l) => l.event === 'connection.stalled')).toBe(true);
    await eventually(async () => (await node.metric('herald_connections')) === 0, 5000, 'the node to forget the stream');
  });

  it('does not cut a reading client for one full batch of 100 maximum-size events under the default limits', async () => {
    const node = await startTestNode();
    const reader = await connect(node, 'dave', { label: 'dave (reading)' });
    // 100 × 64 KiB ≈ 6.5 MB reaches the node's deliver loop within one tick, far past the 1 MiB cap
    // before the client could read any of it, yet within the hard limit of 8 MiB.
    const data = dataOfBytes(64 * 1024);
    const batch = await node.publish({ notifications: Array.from({ length: 100 }, () => ({ to: { users: ['dave'] }, event: 'bulk', data })) });
    expect(batch.status).toBe(202);
    const ids = (batch.body.results as Array<{ id: string }>).map((r) => r.id);

    const sentinel = await node.publish({ to: { users: ['dave'] }, event: 'message', data: {} });
    await reader.waitFor((e) => e.id === sentinel.body.id, 'the sentinel after the batch', { timeoutMs: 10_000 });
    const bulk = reader.events.filter((e) => e.event === 'bulk');
    expect(bulk.map((e) => e.id)).toEqual(ids);
    expect(bulk.every((e) => e.data === JSON.stringify(data))).toBe(true);
    expect(await slowConsumerCuts(node)).toBe(0);
    expect(reader.ended).toBe(false);
  });
});
