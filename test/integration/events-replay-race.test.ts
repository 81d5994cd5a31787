/**
 * The no-loss rule (docs/architecture.md, "The delivery-ordering rule"),
 * each interleaving forced with gates inside the ports rather than hoped for
 * with sleeps: the publisher appends to history before it locates owners, and
 * a node claims ownership before it reads the replay, so every event reaches a
 * reconnecting tab by the replay, the live path, or both (duplicates are
 * dropped by id on the client).
 */
import { describe, expect, it } from 'vitest';
import { startTestNode, type TestNode } from '../support/start-node';
import { openStream, type SseEvent, type SseStream } from '../support/sse-client';
import { Gate, PortRig } from '../support/gated-ports';

type Published = { status: number; body: Record<string, unknown> };

async function publish(node: TestNode, userId: string, n: number): Promise<string> {
  const response = await node.publish({ to: { users: [userId] }, event: 'message', data: { n } });
  expect(response.status).toBe(202);
  return response.body.id as string;
}

/** What the browser keeps: notifications with an id it has not seen before (EventSource apps dedupe by lastEventId). */
function dedupeById(events: readonly SseEvent[]): SseEvent[] {
  const seen = new Set<string>();
  return events.filter((e) => e.id !== undefined && !seen.has(e.id) && Boolean(seen.add(e.id)));
}

const ids = (stream: SseStream): Array<string | undefined> => stream.notifications().map((e) => e.id);

/** Gates armed on `rig` hold alice's calls only, so a test's own publishes and sentinels go through. */
const alice = (call: { userId?: string }): boolean => call.userId === 'alice';

async function gatedNode(): Promise<{ node: TestNode; rig: PortRig }> {
  const rig = new PortRig();
  return { node: await startTestNode({ ports: rig.wrap }), rig };
}

describe('replay and live events racing on a reconnect', () => {
  it('holds live events published during the replay and sends them after it, once each, in order', async () => {
    const { node, rig } = await gatedNode();
    const [first, second, third] = [await publish(node, 'alice', 1), await publish(node, 'alice', 2), await publish(node, 'alice', 3)];

    // The replay is parked twice: before it reads history, and after it has read it.
    const beforeRead = new Gate('history.since before reading');
    const afterRead = new Gate('history.since after reading');
    rig.once('before', 'history.since', beforeRead.pass, alice);
    rig.once('after', 'history.since', afterRead.pass, alice);

    const stream = await openStream(node.url, { token: await node.token('alice'), lastEventId: first, label: 'alice reconnecting' });
    await beforeRead.reached();
    // Stored before the replay reads: the replay will carry it, and so will the live path (alice is already claimed).
    const overlap = await node.publish({ to: { users: ['alice'] }, event: 'message', data: { n: 'overlap' } });
    expect(overlap.body).toMatchObject({ online: 1 });
    beforeRead.open();

    await afterRead.reached();
    // Stored after the replay read: only the live path carries these.
    const fourth = await publish(node, 'alice', 4);
    const fifth = await publish(node, 'alice', 5);
    afterRead.open();

    const sixth = await publish(node, 'alice', 6);
    await stream.waitFor((e) => e.id === sixth, 'the event published after going live');
    // Replay first, then the held events, then live; exactly once each on the wire, not only after
    // client-side dedupe: the node skips held events the replay already carried.
    expect(ids(stream)).toEqual([second, third, overlap.body.id, fourth, fifth, sixth]);
    expect(stream.names().slice(0, 2)).toEqual(['ready', 'message']);
  });

  it('delivers an event stored before the reconnect claimed, but located after it, through the replay (and live, deduped by id)', async () => {
    const { node, rig } = await gatedNode();
    const position = await publish(node, 'alice', 0);

    // The publish is parked between history.append (done) and owners.locate.
    const beforeLocate = new Gate('owners.locate');
    rig.once('before', 'owners.locate', beforeLocate.pass);
    const pending: Promise<Published> = node.publish({ to: { users: ['alice'] }, event: 'message', data: { n: 1 } });
    await beforeLocate.reached();

    // The reconnect claims and replays while the publish is parked: the replay finds the stored event.
    const stream = await openStream(node.url, { token: await node.token('alice'), lastEventId: position, label: 'alice reconnecting' });
    const replayed = await stream.next('message');
    expect(JSON.parse(replayed.data)).toEqual({ n: 1 });

    beforeLocate.open();
    const published = await pending;
    expect(published.status).toBe(202);
    expect(replayed.id).toBe(published.body.id);
    // The lookup now finds alice's new stream, so the event may come a second time, live.
    expect(published.body).toMatchObject({ online: 1, offline: [] });

    const sentinel = await publish(node, 'alice', 2);
    await stream.waitFor((e) => e.id === sentinel, 'the sentinel');
    const copies = stream.notifications().filter((e) => e.id === published.body.id).length;
    expect(copies).toBeGreaterThanOrEqual(1);
    expect(copies).toBeLessThanOrEqual(2);
    expect(dedupeById(stream.notifications()).map((e) => e.id)).toEqual([published.body.id, sentinel]);
  });

  it('delivers an event stored and located before the reconnect claimed through the replay alone', async () => {
    const { node } = await gatedNode();
    const position = await publish(node, 'alice', 0);
    // alice is offline: the lookup finds nobody, so only history has it.
    const published = await node.publish({ to: { users: ['alice'] }, event: 'message', data: { n: 1 } });
    expect(published.body).toMatchObject({ online: 0, offline: ['alice'] });

    const stream = await openStream(node.url, { token: await node.token('alice'), lastEventId: position });
    await stream.next('ready');
    const sentinel = await publish(node, 'alice', 2);
    await stream.waitFor((e) => e.id === sentinel, 'the sentinel');
    expect(ids(stream)).toEqual([published.body.id, sentinel]);
  });

  it('delivers an event published after the reconnect claimed and after its replay read history, live and once', async () => {
    const { node, rig } = await gatedNode();
    const position = await publish(node, 'alice', 0);

    const afterRead = new Gate('history.since after reading');
    rig.once('after', 'history.since', afterRead.pass, alice);
    const stream = await openStream(node.url, { token: await node.token('alice'), lastEventId: position, label: 'alice reconnecting' });
    await afterRead.reached();

    // Claimed and read: the replay cannot carry this one, so the live path must.
    const published = await node.publish({ to: { users: ['alice'] }, event: 'message', data: { n: 1 } });
    expect(published.body).toMatchObject({ online: 1 });
    afterRead.open();

    const sentinel = await publish(node, 'alice', 2);
    await stream.waitFor((e) => e.id === sentinel, 'the sentinel');
    expect(ids(stream)).toEqual([published.body.id, sentinel]);
  });

  it('delivers an event published after the reconnect claimed but before its replay read history, once', async () => {
    const { node, rig } = await gatedNode();
    const position = await publish(node, 'alice', 0);

    // The node is parked right after its claim was stored, before it reads the replay.
    const afterClaim = new Gate('owners.claim after storing');
    rig.once('after', 'owners.claim', afterClaim.pass, alice);
    const opening = openStream(node.url, { token: await node.token('alice'), lastEventId: position, label: 'alice reconnecting' });
    await afterClaim.reached();

    // Both paths see it: the lookup finds the claim, and the replay (not yet read) will find the event.
    const published = await node.publish({ to: { users: ['alice'] }, event: 'message', data: { n: 1 } });
    expect(published.body).toMatchObject({ online: 1 });
    afterClaim.open();

    const stream = await opening;
    const sentinel = await publish(node, 'alice', 2);
    await stream.waitFor((e) => e.id === sentinel, 'the sentinel');
    expect(ids(stream)).toEqual([published.body.id, sentinel]);
  });
});
