import { describe, expect, it } from 'vitest';
import { connect, idsOf, sentinel, startNodePair } from '../support/publish-kit';

describe('POST /publish across nodes of one memory network', () => {
  it('reaches a user connected to another node, and sends nothing to the node that does not hold them', async () => {
    const { a, b } = await startNodePair();
    const bob = await connect(b, 'bob');
    const carol = await connect(a, 'carol');

    const answer = await a.publish({ to: { users: ['bob'] }, event: 'message', data: { text: 'from A' } });

    expect(answer.status).toBe(202);
    expect(answer.body).toMatchObject({ recipients: 1, online: 1, offline: [] });
    const received = await bob.next('message');
    expect(received.id).toBe(answer.body.id);
    expect(JSON.parse(received.data)).toEqual({ text: 'from A' });

    // A sentinel for carol on A, sent after: A's bus has handled everything sent to it before.
    await sentinel(a, ['carol'], [carol]);
    expect(idsOf(carol)).toEqual([]);
    expect(await a.metric('herald_bus_messages_total')).toBe(1);
    expect(await b.metric('herald_bus_messages_total')).toBe(1);
    expect(await a.metric('herald_deliveries_total')).toBe(1);
    expect(await b.metric('herald_deliveries_total')).toBe(1);
  });

  it('sends one message to each node holding recipients, and reports presence across nodes', async () => {
    const { a, b } = await startNodePair();
    const alice = await connect(a, 'alice');
    const bob = await connect(b, 'bob');

    const answer = await b.publish({ to: { users: ['alice', 'bob', 'dave'] }, event: 'message', data: 1 });

    expect(answer.body).toMatchObject({ recipients: 3, online: 2, offline: ['dave'] });
    expect((await alice.next('message')).id).toBe(answer.body.id);
    expect((await bob.next('message')).id).toBe(answer.body.id);
    await sentinel(b, ['alice', 'bob'], [alice, bob]);
    expect(idsOf(alice)).toEqual([answer.body.id]);
    expect(idsOf(bob)).toEqual([answer.body.id]);
    expect(await a.metric('herald_bus_messages_total')).toBe(2);
    expect(await b.metric('herald_bus_messages_total')).toBe(2);
  });

  it('broadcasts to the users of every node', async () => {
    const { a, b } = await startNodePair();
    const alice = await connect(a, 'alice');
    const bob = await connect(b, 'bob');

    const answer = await a.publish({ to: { all: true }, event: 'announcement', data: 1 });

    expect((await alice.next('announcement')).id).toBe(answer.body.id);
    expect((await bob.next('announcement')).id).toBe(answer.body.id);
  });

  it('replays on node B an event published on node A while the user was away', async () => {
    const { a, b } = await startNodePair();
    const first = await a.publish({ to: { users: ['bob'] }, event: 'message', data: 1 });
    const missed = await a.publish({ to: { users: ['bob'] }, event: 'message', data: 2 });
    expect(missed.body).toMatchObject({ online: 0, offline: ['bob'] });

    const bob = await connect(b, 'bob', { lastEventId: String(first.body.id) });

    expect((await bob.next('message')).id).toBe(missed.body.id);
  });
});
