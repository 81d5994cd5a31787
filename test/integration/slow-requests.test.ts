/**
 * Slow and greedy clients against a real node over sockets: a request body
 * trickled a byte at a time (and headers that never end) is cut at the
 * request deadline, while an open stream outlives it; past the socket cap new
 * sockets are closed unanswered, and the node still serves the ones it holds.
 */
import { connect, type Socket } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { connectUser } from '../support/sse-client';
import { withDeadline } from '../../scripts/fleet/deadline';
import { startTestNode, type TestNode } from '../support/start-node';

const DEADLINE_MS = 1_000;

/** A raw socket to the node; resolves once connected. Destroyed when the test ends. */
async function socketTo(node: TestNode): Promise<Socket> {
  const { port } = new URL(node.url);
  const socket = connect({ host: '127.0.0.1', port: Number(port) });
  onTestFinished(() => void socket.destroy());
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return socket;
}

/** Sockets the node's server holds now. */
function openSockets(node: TestNode): Promise<number> {
  return new Promise((resolve, reject) => node.server.getConnections((error, count) => (error ? reject(error) : resolve(count))));
}

/** What the server sent until it closed the socket, and when it closed it (ms after `since`). */
function untilClosed(socket: Socket, since: number): Promise<{ text: string; afterMs: number }> {
  let text = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (text += chunk));
  return new Promise((resolve) => socket.once('close', () => resolve({ text, afterMs: Date.now() - since })));
}

describe('the request deadline (HERALD_REQUEST_TIMEOUT_MS)', () => {
  it('closes a request whose body trickles in a byte at a time, even after answering it', async () => {
    const node = await startTestNode({ env: { HERALD_REQUEST_TIMEOUT_MS: String(DEADLINE_MS) } });
    const socket = await socketTo(node);
    const started = Date.now();
    socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000000\r\n\r\n');
    const trickle = setInterval(() => socket.writable && socket.write('x'), 100);
    onTestFinished(() => clearInterval(trickle));
    const closed = await withDeadline(untilClosed(socket, started), 10_000, 'the node to close the trickling request');
    // /healthz answers without reading the body; the socket is held until the body ends, so it is the deadline that frees it.
    expect(closed.text).toMatch(/^HTTP\/1\.1 200 /);
    // Cut at the deadline (checked every second), never left open.
    expect(closed.afterMs).toBeGreaterThanOrEqual(DEADLINE_MS);
    expect(closed.afterMs).toBeLessThan(DEADLINE_MS + 3_000);
  });

  it('closes a connection whose headers never end', async () => {
    const node = await startTestNode({ env: { HERALD_REQUEST_TIMEOUT_MS: String(DEADLINE_MS) } });
    const socket = await socketTo(node);
    const started = Date.now();
    socket.write('POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    const trickle = setInterval(() => socket.writable && socket.write('X-A: b\r\n'), 100);
    onTestFinished(() => clearInterval(trickle));
    const closed = await withDeadline(untilClosed(socket, started), 10_000, 'the node to close the endless headers');
    expect(closed.text).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('leaves an open stream alone past the deadline: it still gets events', async () => {
    const node = await startTestNode({ env: { HERALD_REQUEST_TIMEOUT_MS: String(DEADLINE_MS) } });
    const alice = await connectUser(node.url, await node.token('alice'), 'alice');
    onTestFinished(() => alice.stream.close());
    await new Promise((resolve) => setTimeout(resolve, DEADLINE_MS * 3));
    expect((await node.publish({ to: { users: ['alice'] }, event: 'message', data: { n: 1 } })).status).toBe(202);
    expect(JSON.parse((await alice.stream.next('message')).data)).toEqual({ n: 1 });
  });
});

describe('the socket cap (HERALD_MAX_SOCKETS)', () => {
  it('closes sockets past the cap unanswered, counts them, and keeps serving the ones it holds', async () => {
    const node = await startTestNode({ env: { HERALD_MAX_CONNECTIONS: '2', HERALD_MAX_SOCKETS: '3' } });
    const held = await Promise.all([socketTo(node), socketTo(node), socketTo(node)]);
    // Connected on this side is not yet accepted on the server's: wait until it holds all three.
    await expect.poll(() => openSockets(node)).toBe(3);
    const extra = await socketTo(node);
    const closed = await withDeadline(untilClosed(extra, Date.now()), 5_000, 'the node to close the socket past the cap');
    expect(closed.text).toBe('');
    expect(node.logs.some((l) => l.event === 'http.sockets_dropped' && l.maxSockets === 3)).toBe(true);

    // One of the held sockets is still served.
    const first = held[0];
    const answer = untilClosed(first, Date.now());
    first.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    expect((await withDeadline(answer, 5_000, 'the /healthz answer on a held socket')).text).toMatch(/^HTTP\/1\.1 200 /);
    for (const socket of held) socket.destroy();
    // Below the cap again, so the /metrics request below gets a socket.
    await expect.poll(() => openSockets(node)).toBe(0);
    expect(await node.metric('herald_sockets_dropped_total')).toBe(1);
  });
});
