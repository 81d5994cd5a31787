import { describe, expect, it } from 'vitest';
import { EventSource, type FetchLike } from 'eventsource';
import { startTestNode, type TestNode } from '../support/start-node';
import { openStream } from '../support/sse-client';
import { Gate, PortRig } from '../support/gated-ports';
import { eventIdTimeMs, isEventId } from '../../services/protocol/event-id';
import { START_POSITION_MARGIN_MS } from '../../services/node/open-stream';
import { withDeadline } from '../../scripts/fleet/deadline';

/*
 * A stream that starts without a position gets one: its `ready` carries an id
 * (a little before its claim), which becomes the browser's lastEventId. Cut
 * before its first event, the stream's reconnect then replays what was
 * published meanwhile, instead of carrying no Last-Event-ID and losing it.
 */

async function publish(node: TestNode, userId: string, text: string): Promise<string> {
  const response = await node.publish({ to: { users: [userId] }, event: 'message', data: { text } });
  expect(response.status).toBe(202);
  return response.body.id as string;
}

describe('the start position of a stream', () => {
  it('is the id of ready on a stream opened without a position: a ULID from a little before the claim', async () => {
    const node = await startTestNode();
    const before = Date.now();
    const stream = await openStream(node.url, { token: await node.token('alice') });
    const ready = await stream.next('ready');
    expect(isEventId(ready.id)).toBe(true);
    const atMs = eventIdTimeMs(ready.id!);
    expect(atMs).toBeGreaterThanOrEqual(before - START_POSITION_MARGIN_MS - 5);
    expect(atMs).toBeLessThanOrEqual(Date.now() - START_POSITION_MARGIN_MS);
  });

  it('is left alone on a stream that resumes from an event id: its ready carries none', async () => {
    const node = await startTestNode();
    const first = await openStream(node.url, { token: await node.token('alice') });
    await first.next('ready');
    const id = await publish(node, 'alice', 'one');
    await first.waitFor((e) => e.id === id, 'the first event');
    first.close();
    const again = await openStream(node.url, { token: await node.token('alice'), lastEventId: id });
    expect((await again.next('ready')).id).toBeUndefined();
  });

  it('replaces a position the node cannot read, announced by gap unknown_position', async () => {
    const node = await startTestNode();
    const stream = await openStream(node.url, { token: await node.token('alice'), lastEventId: 'not-an-id' });
    const ready = await stream.next('ready');
    expect(isEventId(ready.id)).toBe(true);
    expect(JSON.parse((await stream.next('gap')).data)).toEqual({ lastEventId: 'not-an-id', reason: 'unknown_position' });
  });

  it('replays, on the reconnect of a stream cut before its first event, what was published while it was away', async () => {
    const node = await startTestNode();
    const stream = await openStream(node.url, { token: await node.token('alice') });
    const position = (await stream.next('ready')).id!;
    stream.close();
    const missed = await publish(node, 'alice', 'while away');

    const back = await openStream(node.url, { token: await node.token('alice'), lastEventId: position });
    await back.waitFor((e) => e.id === missed, 'the event published while away, replayed');
    expect(back.notifications().map((e) => e.id)).toEqual([missed]);
  });

  it('makes a bare EventSource cut before its first event reconnect with it, and get what it missed', async () => {
    const rig = new PortRig();
    const node = await startTestNode({ ports: rig.wrap });
    const token = await node.token('alice');
    const sent: Array<string | undefined> = [];
    const fetchWithToken: FetchLike = (url, init) => {
      sent.push(init.headers['Last-Event-ID']);
      return fetch(url, { ...init, headers: { ...init.headers, Authorization: `Bearer ${token}` } });
    };
    const source = new EventSource(new URL('/events', node.url), { fetch: fetchWithToken });
    try {
      const messages: string[] = [];
      source.addEventListener('message', (event) => messages.push(event.lastEventId));
      await withDeadline(new Promise((resolve) => source.addEventListener('ready', resolve, { once: true })), 3000, 'ready');

      // The node drops the connection; the reconnect's claim is held until something was published meanwhile.
      const reclaim = new Gate('owners.claim of the reconnect');
      rig.once('before', 'owners.claim', reclaim.pass);
      node.server.closeAllConnections();
      await reclaim.reached();
      const missed = await publish(node, 'alice', 'while away');
      reclaim.open();

      await withDeadline(
        (async () => {
          while (!messages.includes(missed)) await new Promise((resolve) => source.addEventListener('message', resolve, { once: true }));
        })(),
        5000,
        'the missed event on the reconnected EventSource',
      );
      expect(sent).toHaveLength(2);
      expect(sent[0]).toBeUndefined();
      expect(isEventId(sent[1])).toBe(true);
    } finally {
      source.close();
    }
  });
});
