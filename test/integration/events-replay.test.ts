import { describe, expect, it } from 'vitest';
import { hardQueueLimit } from '../../services/node/herald-node';
import { DEFAULT_MAX_DATA_BYTES } from '../../services/protocol/limits';
import { eventIdFloor, newEventId } from '../../services/protocol/event-id';
import { startTestNode, type TestNode } from '../support/start-node';
import { openStream, type SseStream } from '../support/sse-client';
import { eventually } from '../../scripts/fleet/deadline';

/** Publishes one event and returns its id. */
async function publish(node: TestNode, envelope: Record<string, unknown>): Promise<string> {
  const response = await node.publish({ event: 'message', data: {}, ...envelope });
  expect(response.status).toBe(202);
  return response.body.id as string;
}

/** Publishes `count` numbered events to `userId`, in order; returns their ids. */
async function publishSeries(node: TestNode, userId: string, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let n = 1; n <= count; n++) ids.push(await publish(node, { to: { users: [userId] }, data: { n } }));
  return ids;
}

/** Publishes a live sentinel and waits for it: everything the node sent before it has arrived. */
async function sentinel(node: TestNode, stream: SseStream, userId: string): Promise<string> {
  const id = await publish(node, { to: { users: [userId] }, event: 'sentinel' });
  await stream.waitFor((e) => e.id === id, `sentinel ${id}`);
  return id;
}

/** The ids of notifications on the stream (control events such as ready, gap and ping carry none). */
const ids = (stream: SseStream): Array<string | undefined> => stream.notifications().map((e) => e.id);

describe('GET /events replay after Last-Event-ID', () => {
  it('replays exactly the events after the Last-Event-ID header, in order, then goes live', async () => {
    const node = await startTestNode();
    const [first, second, third] = await publishSeries(node, 'alice', 3);

    const stream = await openStream(node.url, { token: await node.token('alice'), lastEventId: first });
    expect(stream.status).toBe(200);
    await stream.next('ready');
    const live = await sentinel(node, stream, 'alice');

    expect(ids(stream)).toEqual([second, third, live]);
    expect(stream.names().slice(0, 3)).toEqual(['ready', 'message', 'message']);
    expect(stream.notifications().slice(0, 2).map((e) => JSON.parse(e.data) as unknown)).toEqual([{ n: 2 }, { n: 3 }]);
  });

  it('replays from the lastEventId query parameter the same way, for a fresh EventSource', async () => {
    const node = await startTestNode();
    const [first, second, third] = await publishSeries(node, 'alice', 3);

    const stream = await openStream(node.url, { token: await node.token('alice'), query: { lastEventId: first! } });
    await stream.next('ready');
    const live = await sentinel(node, stream, 'alice');

    expect(ids(stream)).toEqual([second, third, live]);
  });

  it('prefers the Last-Event-ID header over the query parameter, as an EventSource reconnect sends both', async () => {
    const node = await startTestNode();
    const [first, second, third] = await publishSeries(node, 'alice', 3);

    const stream = await openStream(node.url, { token: await node.token('alice'), lastEventId: second, query: { lastEventId: first! } });
    await stream.next('ready');
    const live = await sentinel(node, stream, 'alice');

    expect(ids(stream)).toEqual([third, live]);
  });

  it('replays nothing without a position: a fresh stream starts live', async () => {
    const node = await startTestNode();
    await publishSeries(node, 'alice', 2);

    const stream = await openStream(node.url, { token: await node.token('alice') });
    await stream.next('ready');
    const live = await sentinel(node, stream, 'alice');

    expect(ids(stream)).toEqual([live]);
    expect(stream.names()).not.toContain('gap');
  });

  it.each([
    ['a malformed header', { lastEventId: 'not-an-event-id' }],
    ['a lowercased id in the query', { query: { lastEventId: '01arz3ndektsv4rrffq69g5fav' } }],
  ])('answers %s with gap unknown_position and replays nothing', async (_, position) => {
    const node = await startTestNode();
    await publishSeries(node, 'alice', 2);

    const stream = await openStream(node.url, { token: await node.token('alice'), ...position });
    await stream.next('ready');
    const gap = await stream.next('gap');
    const live = await sentinel(node, stream, 'alice');

    const sent = 'lastEventId' in position ? position.lastEventId : position.query.lastEventId;
    expect(JSON.parse(gap.data)).toEqual({ lastEventId: sent, reason: 'unknown_position' });
    expect(gap.id).toBeUndefined();
    expect(stream.names().slice(0, 2)).toEqual(['ready', 'gap']);
    expect(ids(stream)).toEqual([live]);
  });

  it('answers gap history_trimmed, then the kept events, when the history no longer reaches the position', async () => {
    const node = await startTestNode({ env: { HERALD_HISTORY_SIZE: '2' } });
    const [first, , , fourth, fifth] = await publishSeries(node, 'alice', 5);

    const stream = await openStream(node.url, { token: await node.token('alice'), lastEventId: first });
    await stream.next('ready');
    const live = await sentinel(node, stream, 'alice');

    expect(stream.names().slice(0, 4)).toEqual(['ready', 'gap', 'message', 'message']);
    expect(JSON.parse((await stream.next('gap')).data)).toEqual({ lastEventId: first, reason: 'history_trimmed' });
    expect(ids(stream)).toEqual([fourth, fifth, live]);
  });

  it('reports no gap when only the position itself was evicted (HERALD_HISTORY_SIZE boundary)', async () => {
    const node = await startTestNode({ env: { HERALD_HISTORY_SIZE: '2' } });
    const [first, second, third] = await publishSeries(node, 'alice', 3);

    const stream = await openStream(node.url, { token: await node.token('alice'), lastEventId: first });
    await stream.next('ready');
    const live = await sentinel(node, stream, 'alice');

    expect(stream.names()).not.toContain('gap');
    expect(ids(stream)).toEqual([second, third, live]);
  });

  it('answers gap history_trimmed for a position older than any retention', async () => {
    const node = await startTestNode();
    await publishSeries(node, 'alice', 1);
    const ancient = eventIdFloor(Date.now() - 8 * 24 * 3600 * 1000);

    const stream = await openStream(node.url, { token: await node.token('alice'), lastEventId: ancient });
    await stream.next('ready');
    expect(JSON.parse((await stream.next('gap')).data)).toEqual({ lastEventId: ancient, reason: 'history_trimmed' });
  });

  it('answers gap replay_limit, then the first HERALD_REPLAY_LIMIT events, when more remain', async () => {
    const node = await startTestNode({ env: { HERALD_REPLAY_LIMIT: '2' } });
    const [first, second, third] = await publishSeries(node, 'alice', 4);

    const stream = await openStream(node.url, { token: await node.token('alice'), lastEventId: first });
    await stream.next('ready');
    const live = await sentinel(node, stream, 'alice');

    expect(stream.names().slice(0, 4)).toEqual(['ready', 'gap', 'message', 'message']);
    expect(JSON.parse((await stream.next('gap')).data)).toEqual({ lastEventId: first, reason: 'replay_limit' });
    expect(ids(stream)).toEqual([second, third, live]);
  });

  it('replays exactly HERALD_REPLAY_LIMIT remaining events without a gap (boundary)', async () => {
    const node = await startTestNode({ env: { HERALD_REPLAY_LIMIT: '2' } });
    const [first, second, third] = await publishSeries(node, 'alice', 3);

    const stream = await openStream(node.url, { token: await node.token('alice'), lastEventId: first });
    await stream.next('ready');
    const live = await sentinel(node, stream, 'alice');

    expect(stream.names()).not.toContain('gap');
    expect(ids(stream)).toEqual([second, third, live]);
  });

  it('replays broadcasts along with the user\'s own events, in id order, and not other users\' events', async () => {
    const node = await startTestNode();
    const position = await publish(node, { to: { users: ['alice'] } });
    const broadcast = await publish(node, { to: { all: true }, event: 'announcement' });
    await publish(node, { to: { users: ['bob'] } });
    const own = await publish(node, { to: { users: ['alice'] } });

    const stream = await openStream(node.url, { token: await node.token('alice'), lastEventId: position });
    await stream.next('ready');
    const live = await sentinel(node, stream, 'alice');

    expect(ids(stream)).toEqual([broadcast, own, live]);
    expect(stream.notifications()[0]?.event).toBe('announcement');
  });

  it('delivers a ttl 0 event live but never replays it', async () => {
    const node = await startTestNode();
    const position = await publish(node, { to: { users: ['alice'] } });

    const first = await openStream(node.url, { token: await node.token('alice'), label: 'first connection' });
    await first.next('ready');
    const liveOnly = await publish(node, { to: { users: ['alice'] }, event: 'typing', ttl: 0 });
    const kept = await publish(node, { to: { users: ['alice'] } });
    await first.waitFor((e) => e.id === kept, 'the kept event');
    expect(ids(first)).toEqual([liveOnly, kept]);
    first.close();

    const again = await openStream(node.url, { token: await node.token('alice'), lastEventId: position, label: 'reconnect' });
    await again.next('ready');
    const live = await sentinel(node, again, 'alice');
    expect(ids(again)).toEqual([kept, live]);
    expect(again.names()).not.toContain('gap');
  });

  it('resumes from a ttl 0 event id as a valid position, without a gap', async () => {
    const node = await startTestNode();
    const liveOnly = await publish(node, { to: { users: ['alice'] }, event: 'typing', ttl: 0 });
    const kept = await publish(node, { to: { users: ['alice'] } });

    const stream = await openStream(node.url, { token: await node.token('alice'), lastEventId: liveOnly });
    await stream.next('ready');
    const live = await sentinel(node, stream, 'alice');

    expect(stream.names()).not.toContain('gap');
    expect(ids(stream)).toEqual([kept, live]);
  });

  it('replays a backlog larger than HERALD_MAX_QUEUED_BYTES in full instead of cutting the stream', async () => {
    const node = await startTestNode();
    // 20 events of 60 KB, each within every limit: 1.2 MB, past the default cap of 1 MiB.
    const backlog: string[] = [];
    for (let n = 0; n < 20; n++) backlog.push(await publish(node, { to: { users: ['alice'] }, data: { n, text: 'r'.repeat(60_000) } }));

    const stream = await openStream(node.url, { token: await node.token('alice'), lastEventId: backlog[0] });
    await stream.next('ready');
    const live = await sentinel(node, stream, 'alice');
    expect(ids(stream)).toEqual([...backlog.slice(1), live]);
    expect(stream.notifications().slice(0, 19).map((e) => (JSON.parse(e.data) as { n: number }).n)).toEqual(backlog.slice(1).map((_, i) => i + 1));
    expect(await node.metric('herald_connections_closed_total{reason="slow_consumer"}')).toBe(0);
  });

  it('replays a backlog past the hard limit at the client\'s pace, in full', async () => {
    const cap = 65_536;
    const node = await startTestNode({ env: { HERALD_MAX_QUEUED_BYTES: String(cap), HERALD_HISTORY_SIZE: '200', HERALD_REPLAY_LIMIT: '200' } });
    const text = 'r'.repeat(60_000);
    const count = Math.ceil((1.2 * hardQueueLimit(cap, DEFAULT_MAX_DATA_BYTES)) / text.length);
    const position = await publish(node, { to: { users: ['alice'] } });
    const backlog: string[] = [];
    for (let n = 0; n < count; n++) backlog.push(await publish(node, { to: { users: ['alice'] }, data: { n, text } }));
    expect(backlog.length * text.length).toBeGreaterThan(hardQueueLimit(cap, DEFAULT_MAX_DATA_BYTES));

    const stream = await openStream(node.url, { token: await node.token('alice'), lastEventId: position });
    await stream.next('ready');
    const live = await sentinel(node, stream, 'alice');
    expect(ids(stream)).toEqual([...backlog, live]);
    expect(stream.notifications().slice(0, count).every((e, n) => e.data === JSON.stringify({ n, text }))).toBe(true);
    expect(stream.names()).not.toContain('gap');
    expect(await node.metric('herald_connections_closed_total{reason="slow_consumer"}')).toBe(0);
    expect(await node.metric('herald_replayed_total')).toBe(count);
  });

  it('replays an event stored after the tab\'s last one even when its publisher-supplied id sorts before it', async () => {
    const node = await startTestNode();
    // Minted now, published later: a retried publish, or a publisher whose clock runs behind.
    const early = newEventId();
    const tab = await openStream(node.url, { token: await node.token('alice'), label: 'alice' });
    await tab.next('ready');
    const first = await publish(node, { to: { users: ['alice'] }, data: { n: 1 } });
    const last = await publish(node, { to: { users: ['alice'] }, data: { n: 2 } });
    await tab.waitFor((e) => e.id === last, 'the last event before the tab goes away');
    expect(ids(tab)).toEqual([first, last]);
    tab.close();
    await eventually(async () => (await node.metric('herald_connections')) === 0, 5000, 'the node to see the tab close');

    expect(early < last).toBe(true);
    expect(await publish(node, { id: early, to: { users: ['alice'] }, data: { n: 'early' } })).toBe(early);

    const again = await openStream(node.url, { token: await node.token('alice'), lastEventId: last, label: 'alice reconnecting' });
    await again.next('ready');
    const live = await sentinel(node, again, 'alice');
    expect(ids(again)).toEqual([early, live]);
    expect(JSON.parse(again.notifications()[0]!.data)).toEqual({ n: 'early' });
    expect(again.names()).not.toContain('gap');
  });
});
