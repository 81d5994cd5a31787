import { describe, expect, it } from 'vitest';
import type { Bus, MissedHandler } from '../../services/ports/bus';
import type { Owners } from '../../services/ports/owners';
import { unavailable } from '../../services/protocol/faults';
import { eventually } from '../../scripts/fleet/deadline';
import { Gate } from '../support/gated-ports';
import { startTestNode } from '../support/start-node';
import { openStream } from '../support/sse-client';

/**
 * A bus that loses what is sent while `dropping` is set, as an SNS→SQS bus
 * whose queue was deleted does, and hands the test the node's MissedHandler.
 */
function lossyBus(inner: Bus): { bus: Bus; dropping: { on: boolean }; missed: () => MissedHandler } {
  const dropping = { on: false };
  let onMissed: MissedHandler | undefined;
  return {
    dropping,
    missed: () => {
      if (!onMissed) throw new Error('the node did not pass a MissedHandler to its bus');
      return onMissed;
    },
    bus: {
      start: (nodeId, onMessage, handler) => {
        onMissed = handler;
        return inner.start(nodeId, onMessage, handler);
      },
      send: (message, target) => (dropping.on ? Promise.resolve() : inner.send(message, target)),
      sendBatch: (entries) => (dropping.on ? Promise.resolve() : inner.sendBatch(entries)),
      close: () => inner.close(),
    },
  };
}

describe('a node whose bus may have lost messages', () => {
  it('closes its streams with closing resync and a short retry; their reconnects replay what the bus lost', async () => {
    let lossy: ReturnType<typeof lossyBus> | undefined;
    const node = await startTestNode({
      env: { HERALD_RETRY_MS: '400' },
      ports: (defaults) => {
        lossy = lossyBus(defaults.bus);
        return { ...defaults, bus: lossy.bus };
      },
    });
    const stream = await openStream(node.url, { token: await node.token('alice'), label: 'alice' });
    await stream.next('ready');
    const first = await node.publish({ to: { users: ['alice'] }, event: 'message', data: { n: 1 } });
    await stream.waitFor((e) => e.id === first.body.id, 'the first event, live');

    lossy!.dropping.on = true;
    const lost = await node.publish({ to: { users: ['alice'] }, event: 'message', data: { n: 2 } });
    expect(lost.status).toBe(202);
    lossy!.dropping.on = false;
    lossy!.missed()();

    const closing = await stream.next('closing');
    expect(JSON.parse(closing.data)).toEqual({ reason: 'resync' });
    expect(closing.retry).toBeGreaterThanOrEqual(200);
    expect(closing.retry).toBeLessThanOrEqual(600);
    await stream.closed();
    expect(stream.notifications().map((e) => e.id)).toEqual([first.body.id]);

    const back = await openStream(node.url, { token: await node.token('alice'), lastEventId: first.body.id as string, label: 'alice again' });
    await back.waitFor((e) => e.id === lost.body.id, 'the lost event, replayed');
    expect(node.logs.some((l) => l.event === 'node.resuming_streams' && l.streams === 1)).toBe(true);
  });
});

/** Owners whose heartbeats fail while `failing` is set, or wait at `gate` when one is given. */
function faultyHeartbeats(inner: Owners): { owners: Owners; failing: { on: boolean }; gate: { next: Gate | undefined } } {
  const failing = { on: false };
  const gate: { next: Gate | undefined } = { next: undefined };
  return {
    failing,
    gate,
    owners: {
      claim: (record, policy) => inner.claim(record, policy),
      release: (userId, connectionId) => inner.release(userId, connectionId),
      locate: (userIds) => inner.locate(userIds),
      close: () => inner.close(),
      heartbeat: async (nodeId, expiresAtMs) => {
        const held = gate.next;
        gate.next = undefined;
        if (held) await held.pass();
        if (failing.on) throw unavailable('heartbeat refused by the test');
        return inner.heartbeat(nodeId, expiresAtMs);
      },
    },
  };
}

describe('a node whose owners may have lost its heartbeat', () => {
  it('heartbeats before it closes its streams for a resync, so that their reconnects count as online at once', async () => {
    let lossy: ReturnType<typeof lossyBus> | undefined;
    let faulty: ReturnType<typeof faultyHeartbeats> | undefined;
    const node = await startTestNode({
      ports: (defaults) => {
        lossy = lossyBus(defaults.bus);
        faulty = faultyHeartbeats(defaults.owners);
        return { ...defaults, bus: lossy.bus, owners: faulty.owners };
      },
    });
    const stream = await openStream(node.url, { token: await node.token('alice'), label: 'alice' });
    await stream.next('ready');
    const heartbeat = new Gate('the heartbeat of the resync');
    faulty!.gate.next = heartbeat;

    lossy!.missed()();
    await heartbeat.reached();
    // Held at the heartbeat: the node closes nothing before it is stored.
    expect(node.node.hub.size).toBe(1);
    heartbeat.open();

    const closing = await stream.next('closing');
    expect(JSON.parse(closing.data)).toEqual({ reason: 'resync' });
  });

  it('resyncs its streams once a heartbeat is stored again after the last one ran out: what was published meanwhile comes by the replay', async () => {
    let faulty: ReturnType<typeof faultyHeartbeats> | undefined;
    const node = await startTestNode({
      env: { HERALD_RETRY_MS: '400' },
      // A heartbeat every 100 ms, each good for 300 ms.
      nodeTtlMs: 300,
      ports: (defaults) => {
        faulty = faultyHeartbeats(defaults.owners);
        return { ...defaults, owners: faulty.owners };
      },
    });
    const stream = await openStream(node.url, { token: await node.token('alice'), label: 'alice' });
    await stream.next('ready');
    const first = await node.publish({ to: { users: ['alice'] }, event: 'message', data: { n: 1 } });
    await stream.waitFor((e) => e.id === first.body.id, 'the first event, live');

    faulty!.failing.on = true;
    // Her record outlives the node's heartbeat: she counts as offline, and the event goes to history only.
    let meanwhile: Awaited<ReturnType<typeof node.publish>> | undefined;
    await eventually(
      async () => {
        meanwhile = await node.publish({ to: { users: ['alice'] }, event: 'message', data: { n: 2 } });
        return meanwhile.body.online === 0;
      },
      5_000,
      'alice to count as offline while the heartbeats fail',
    );
    expect(stream.names()).not.toContain('closing');
    faulty!.failing.on = false;

    const closing = await stream.next('closing');
    expect(JSON.parse(closing.data)).toEqual({ reason: 'resync' });
    await stream.closed();
    expect(node.logs.some((l) => l.event === 'node.heartbeat_lapsed')).toBe(true);
    const back = await openStream(node.url, { token: await node.token('alice'), lastEventId: first.body.id as string, label: 'alice again' });
    await back.waitFor((e) => e.id === meanwhile!.body.id, 'the event published while she counted as offline, replayed');
  });
});
