/**
 * Several nodes of the built entry (dist/herald-node.mjs) as separate
 * processes in redis mode, on one redis-server started for this file and
 * nothing set up in it: what crosses processes through Redis — delivery,
 * broadcasts, presence in the publish answer, the single-tab takeover and
 * the replay of one node's events on another.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildEntryPoint, type BuiltEntry } from '../support/child-node';
import type { ClusterNode } from '../../scripts/fleet/cluster';
import { connectUser } from '../support/sse-client';
import { eventually } from '../../scripts/fleet/deadline';
import { startRedisFleet, type RedisFleet } from '../../scripts/fleet/redis-fleet';
import { startRedisServer, type RedisServer } from '../../scripts/fleet/redis-server';
import { openStream, type SseStream } from '../support/sse-client';

let entry: BuiltEntry;
let redis: RedisServer;
let fleet: RedisFleet;
const streams: SseStream[] = [];

beforeAll(async () => {
  [entry, redis] = await Promise.all([buildEntryPoint(), startRedisServer()]);
  fleet = await startRedisFleet({ entry: entry.path, redis: { url: redis.url }, nodes: 3, env: { HERALD_DRAIN_MS: '0' } });
});

afterEach(() => {
  for (const stream of streams.splice(0)) stream.close();
});

afterAll(async () => {
  // By pid, also when a test failed.
  await fleet.stop();
  await redis.stop();
  entry.dispose();
});

const [A, B, C] = [0, 1, 2];
const node = (index: number): ClusterNode => fleet.nodes[index]!;
let users = 0;
/** A user of this test alone: the fleet is shared by the file. */
const user = (name: string): string => `${name}-${++users}`;

async function connect(index: number, userId: string, lastEventId?: string): Promise<SseStream> {
  const { stream, nodeId } = await connectUser(node(index).url, await fleet.token(userId), `${userId} on node ${index + 1}`, lastEventId === undefined ? {} : { lastEventId });
  streams.push(stream);
  expect(nodeId).toBe(node(index).id);
  return stream;
}

/** A stream never carries one id twice: the replay and live events meet without a repeat. */
function expectNoRepeats(stream: SseStream): void {
  const ids = stream.notifications().map((e) => e.id);
  expect(ids, stream.label).toEqual([...new Set(ids)]);
}

describe('a fleet of node processes in redis mode', () => {
  it('starts three processes at once on an empty Redis, each with a node id of its own, healthy', async () => {
    const ids = fleet.nodes.map((n) => n.id);
    expect(new Set(ids).size).toBe(3);
    for (const id of ids) expect(id).toMatch(/^n-[0-9a-f]{12}$/);
    for (const n of fleet.nodes) {
      const response = await fetch(new URL('/healthz', n.url));
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({ status: 'ok', nodeId: n.id });
      expect(n.process.logs.find((l) => l.event === 'node.started')).toMatchObject({ mode: 'redis', nodeId: n.id });
    }
  });

  it('delivers an event published on node 1 to a user whose stream is on node 2', async () => {
    const bob = user('bob');
    const stream = await connect(B, bob);

    const answer = await node(A).publish({ to: { users: [bob] }, event: 'message', data: { text: 'from node 1' } });

    expect(answer.status).toBe(202);
    expect(answer.body).toMatchObject({ recipients: 1, online: 1, offline: [], duplicate: false });
    const received = await stream.waitFor((e) => e.id === answer.body.id, 'the message published on node 1', { timeoutMs: 5_000 });
    expect(received.event).toBe('message');
    expect(JSON.parse(received.data)).toEqual({ text: 'from node 1' });
    expectNoRepeats(stream);
  });

  it('broadcasts to the users of every node, once each', async () => {
    const names = [user('alice'), user('bob'), user('carol')];
    const tabs = await Promise.all(names.map((name, i) => connect(i, name)));

    const answer = await node(B).publish({ to: { all: true }, event: 'announcement', data: { text: 'to everyone' } });

    expect(answer.body).toMatchObject({ recipients: 'all', online: null });
    await Promise.all(tabs.map((s) => s.waitFor((e) => e.id === answer.body.id, 'the broadcast', { timeoutMs: 5_000 })));
    // A later unicast to each is the sentinel: had the broadcast come twice, it would be there by now.
    for (const [i, tab] of tabs.entries()) {
      const sentinel = await node(i).publish({ to: { users: [names[i]!] }, event: 'sentinel', data: {} });
      await tab.waitFor((e) => e.id === sentinel.body.id, 'the sentinel', { timeoutMs: 5_000 });
      expect(tab.notifications().map((e) => e.id)).toEqual([answer.body.id, sentinel.body.id]);
    }
  });

  it('answers a publish with who is online on any node and who is not, also after a user leaves', async () => {
    const [alice, bob, dave] = [user('alice'), user('bob'), user('dave')];
    const aliceStream = await connect(A, alice);
    const bobStream = await connect(B, bob);

    const answer = await node(C).publish({ to: { users: [alice, bob, dave] }, event: 'message', data: { n: 1 } });

    expect(answer.status).toBe(202);
    expect(answer.body).toMatchObject({ recipients: 3, online: 2, offline: [dave] });
    await aliceStream.waitFor((e) => e.id === answer.body.id, 'the message for alice', { timeoutMs: 5_000 });
    await bobStream.waitFor((e) => e.id === answer.body.id, 'the message for bob', { timeoutMs: 5_000 });

    // bob closes his tab; node 2 releases his record, and presence says so on every node.
    bobStream.close();
    await eventually(
      async () => {
        const probe = await node(C).publish({ to: { users: [alice, bob] }, event: 'probe', data: {}, ttl: 0 });
        return probe.body.online === 1 && JSON.stringify(probe.body.offline) === JSON.stringify([bob]);
      },
      5_000,
      'bob to be reported offline after his stream closed',
    );
  });

  it("replaces a tab on node 1 when the same user opens one on node 2, and answers the old tab's reconnect 204 on any node", async () => {
    const alice = user('alice');
    const first = await connectUser(node(A).url, await fleet.token(alice), 'alice tab 1 on node 1');
    streams.push(first.stream);
    const second = await connectUser(node(B).url, await fleet.token(alice), 'alice tab 2 on node 2');
    streams.push(second.stream);

    const replaced = await first.stream.next('replaced', { timeoutMs: 5_000 });
    expect(replaced.id).toBe(`replaced:${first.connectionId}`);
    expect(JSON.parse(replaced.data)).toEqual({ connectionId: first.connectionId });
    await first.stream.closed(5_000);

    // What EventSource does next: reconnect with the id of the last event, here the `replaced` one.
    for (const [i, n] of fleet.nodes.entries()) {
      const reconnect = await openStream(n.url, { token: await fleet.token(alice), lastEventId: replaced.id, label: `tab 1 reconnecting to node ${i + 1}` });
      expect(reconnect.status, `on node ${i + 1}`).toBe(204);
    }

    // The new tab is the one that receives, wherever the publish comes from.
    const answer = await node(C).publish({ to: { users: [alice] }, event: 'message', data: { n: 1 } });
    expect(answer.body).toMatchObject({ online: 1, offline: [] });
    await second.stream.waitFor((e) => e.id === answer.body.id, 'the message on the new tab', { timeoutMs: 5_000 });
    expect(second.stream.ended).toBe(false);
    expect(first.stream.notifications()).toEqual([]);
  });

  it('replays on node 3 what a user missed after leaving node 1, from Last-Event-ID, then goes live without a gap or a repeat', async () => {
    const alice = user('alice');
    const before = await connect(A, alice);
    const seen = await node(A).publish({ to: { users: [alice] }, event: 'message', data: { n: 1 } });
    await before.waitFor((e) => e.id === seen.body.id, 'the first message, live', { timeoutMs: 5_000 });
    before.close();
    await eventually(
      async () => (await node(B).publish({ to: { users: [alice] }, event: 'probe', data: {}, ttl: 0 })).body.online === 0,
      5_000,
      'alice to be offline',
    );

    const missed = [];
    for (let n = 2; n <= 4; n++) missed.push(await node(n % 2 === 0 ? B : A).publish({ to: { users: [alice] }, event: 'message', data: { n } }));
    const broadcast = await node(B).publish({ to: { all: true }, event: 'announcement', data: { n: 5 } });
    for (const answer of missed) expect(answer.body).toMatchObject({ online: 0, offline: [alice] });

    const after = await connect(C, alice, String(seen.body.id));
    const replayedIds = [...missed, broadcast].map((a) => String(a.body.id));
    await after.waitFor(() => replayedIds.every((id) => after.notifications().some((e) => e.id === id)), 'the replay', { timeoutMs: 5_000 });
    const live = await node(A).publish({ to: { users: [alice] }, event: 'message', data: { n: 6 } });
    await after.waitFor((e) => e.id === live.body.id, 'the next message, live', { timeoutMs: 5_000 });

    expect(after.notifications().map((e) => e.id)).toEqual([...replayedIds, live.body.id]);
    expect(after.names()).not.toContain('gap');
    expectNoRepeats(after);
  });
});
