import { describe, expect, it } from 'vitest';
import { startTestNode } from '../support/start-node';
import { Gate, PortRig } from '../support/gated-ports';
import { connect, idsOf, sentinel } from '../support/publish-kit';

/**
 * docs/architecture.md, "The delivery-ordering rule": the publisher appends to
 * history before it looks up owners; a node claims before it reads the replay.
 * Each test holds one step at a gate to force one interleaving.
 */
describe('POST /publish: the delivery-ordering rule', () => {
  it('does not look up owners until history.append has completed', async () => {
    const rig = new PortRig();
    const node = await startTestNode({ ports: rig.wrap });
    const alice = await connect(node, 'alice');
    const append = new Gate('history.append');
    rig.once('before', 'history.append', append.pass);

    const pending = node.publish({ to: { users: ['alice'] }, event: 'message', data: 1 });
    await append.reached();
    // Give the node whole event-loop turns (a full HTTP round trip) to misbehave.
    expect((await fetch(new URL('/healthz', node.url))).status).toBe(200);
    expect(rig.calls('owners.locate')).toEqual([]);
    expect(rig.calls('bus.send')).toEqual([]);
    expect(alice.notifications()).toEqual([]);

    append.open();
    const answer = await pending;

    expect(answer.status).toBe(202);
    const id = String(answer.body.id);
    const appended = rig.indexOf('history.append', 'end', id);
    const located = rig.indexOf('owners.locate', 'start');
    const sent = rig.indexOf('bus.send', 'start', id);
    expect(appended).toBeGreaterThanOrEqual(0);
    expect(located).toBeGreaterThan(appended);
    expect(sent).toBeGreaterThan(located);
    expect((await alice.next('message')).id).toBe(id);
  });

  it('publishes a batch in one step per stage: every append done, then one lookup, then one send carrying the batch in order', async () => {
    const rig = new PortRig();
    const node = await startTestNode({ ports: rig.wrap });
    await connect(node, 'alice');
    await connect(node, 'bob');
    const start = rig.trace.length;

    const answer = await node.publish({
      notifications: [1, 2, 3, 4].map((n) => ({ to: { users: [n % 2 === 0 ? 'alice' : 'bob'] }, event: 'message', data: n })),
    });

    expect(answer.status).toBe(202);
    const ids = (answer.body.results as Array<{ id: string }>).map((r) => r.id);
    const steps = rig.trace
      .slice(start)
      .filter((e) => (e.op === 'history.append' ? e.phase === 'end' : e.phase === 'start'))
      .map((e) => (e.op === 'owners.locate' ? e.op : `${e.op} ${(e.eventIds ?? []).join(',')}`));
    expect(steps).toEqual([`history.append ${ids.join(',')}`, 'owners.locate', `bus.send ${ids.join(',')}`]);
  });

  it.each([
    ['before the lookup began', 'before'],
    ['after the lookup answered', 'after'],
  ] as const)('gives every event of a batch exactly once to a tab that reconnects %s', async (_when, phase) => {
    const rig = new PortRig();
    const node = await startTestNode({ ports: rig.wrap });
    const before = await node.publish({ to: { users: ['alice'] }, event: 'before', data: 0 });
    const lookup = new Gate(`owners.locate ${phase}`);
    rig.once(phase, 'owners.locate', lookup.pass);

    // The whole batch is in history; the lookup is held on one side or the other of the claim.
    const pending = node.publish({ notifications: [1, 2, 3].map((n) => ({ to: { users: ['alice', 'bob'] }, event: 'message', data: n })) });
    await lookup.reached();
    const alice = await connect(node, 'alice', { lastEventId: String(before.body.id) });
    await alice.waitFor((e) => e.event === 'message', 'the replay');
    lookup.open();
    const answer = await pending;

    expect(answer.status).toBe(202);
    const results = answer.body.results as Array<{ id: string; online: number }>;
    // The lookup saw alice only if it ran after her claim.
    expect(results.map((r) => r.online)).toEqual(phase === 'before' ? [1, 1, 1] : [0, 0, 0]);
    await sentinel(node, ['alice'], [alice]);
    expect(idsOf(alice)).toEqual(results.map((r) => r.id));
  });

  it('gives the event to a tab that claims after the lookup missed it, through the replay', async () => {
    const rig = new PortRig();
    const node = await startTestNode({ ports: rig.wrap });
    const before = await node.publish({ to: { users: ['alice'] }, event: 'before', data: 0 });
    const lookup = new Gate('owners.locate answered');
    rig.once('after', 'owners.locate', lookup.pass);

    // The lookup has run (alice offline) and is held before the publisher sees its answer.
    const pending = node.publish({ to: { users: ['alice'] }, event: 'message', data: 1 });
    await lookup.reached();
    const alice = await connect(node, 'alice', { lastEventId: String(before.body.id) });
    const replayed = await alice.next('message');
    lookup.open();
    const answer = await pending;

    expect(answer.body).toMatchObject({ online: 0, offline: ['alice'] });
    expect(replayed.id).toBe(answer.body.id);
    expect(rig.indexOf('owners.claim', 'start')).toBeGreaterThan(rig.indexOf('owners.locate', 'start'));
    await sentinel(node, ['alice'], [alice]);
    expect(idsOf(alice)).toEqual([answer.body.id]);
  });

  it('gives the event live to a tab whose replay was read before the append, exactly once', async () => {
    const rig = new PortRig();
    const node = await startTestNode({ ports: rig.wrap });
    const before = await node.publish({ to: { users: ['alice'] }, event: 'before', data: 0 });
    const replay = new Gate('history.since answered');
    rig.once('after', 'history.since', replay.pass, (call) => call.userId === 'alice');

    // Claimed, and the replay has been read (empty) but not yet written.
    const alice = await connect(node, 'alice', { lastEventId: String(before.body.id) });
    await replay.reached();
    const answer = await node.publish({ to: { users: ['alice'] }, event: 'message', data: 1 });
    expect(answer.body).toMatchObject({ online: 1, offline: [] });
    expect(alice.notifications()).toEqual([]);
    replay.open();

    expect((await alice.next('message')).id).toBe(answer.body.id);
    await sentinel(node, ['alice'], [alice]);
    expect(idsOf(alice)).toEqual([answer.body.id]);
  });

  it('writes an event that both the replay and the live path carry only once', async () => {
    const rig = new PortRig();
    const node = await startTestNode({ ports: rig.wrap });
    const before = await node.publish({ to: { users: ['alice'] }, event: 'before', data: 0 });
    const replay = new Gate('history.since called');
    rig.once('before', 'history.since', replay.pass, (call) => call.userId === 'alice');

    // Claimed, replay not read yet: the publish is both found by the lookup and stored before the read.
    const alice = await connect(node, 'alice', { lastEventId: String(before.body.id) });
    await replay.reached();
    const answer = await node.publish({ to: { users: ['alice'] }, event: 'message', data: 1 });
    expect(answer.body).toMatchObject({ online: 1 });
    replay.open();

    await sentinel(node, ['alice'], [alice]);
    expect(idsOf(alice)).toEqual([answer.body.id]);
  });
});
