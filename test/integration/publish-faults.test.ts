import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { newEventId } from '../../services/protocol/event-id';
import { unavailable } from '../../services/protocol/faults';
import { startTestNode } from '../support/start-node';
import { PortRig } from '../support/gated-ports';
import { connect, idsOf, sentinel } from '../support/publish-kit';

describe('POST /publish: backing-service faults', () => {
  it('answers 503 unavailable with Retry-After when history.append fails, and sends nothing on the bus', async () => {
    const rig = new PortRig();
    const node = await startTestNode({ ports: rig.wrap });
    const alice = await connect(node, 'alice');
    const id = newEventId();
    rig.once('before', 'history.append', () => {
      throw unavailable('history table unreachable', new Error('ECONNRESET'));
    });

    const answer = await node.publish({ id, to: { users: ['alice'] }, event: 'message', data: 1 });

    expect(answer.status).toBe(503);
    expect(answer.body).toMatchObject({ error: 'unavailable', retryAfterMs: 1000 });
    // A single notification: there is no batch to point into.
    expect(answer.body).not.toHaveProperty('index');
    expect(answer.headers.get('retry-after')).toBe('1');
    expect(rig.calls('owners.locate')).toEqual([]);
    expect(rig.calls('bus.send').filter((c) => c.eventId === id)).toEqual([]);
    await sentinel(node, ['alice'], [alice]);
    expect(alice.notifications().map((e) => e.event)).toEqual(['sentinel']);
    expect(node.logs.some((l) => l.event === 'http.unavailable' && l.code === 'unavailable')).toBe(true);
    expect(await node.metric('herald_refusals_total{code="unavailable"}')).toBe(1);
  });

  it('answers 503 when the bus fails after the append, and a reconnect replays the event: nothing is lost', async () => {
    const rig = new PortRig();
    const node = await startTestNode({ ports: rig.wrap });
    const alice = await connect(node, 'alice');
    const before = await node.publish({ to: { users: ['alice'] }, event: 'before', data: 0 });
    const id = newEventId();
    rig.once('before', 'bus.send', () => {
      throw unavailable('topic unreachable');
    }, (call) => call.eventId === id);

    const answer = await node.publish({ id, to: { users: ['alice'] }, event: 'message', data: { text: 'kept' } });

    expect(answer.status).toBe(503);
    expect(answer.body).toMatchObject({ error: 'unavailable' });
    expect(Number(answer.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(rig.indexOf('history.append', 'end', id)).toBeGreaterThanOrEqual(0);
    // Not delivered live …
    await sentinel(node, ['alice'], [alice]);
    expect(idsOf(alice)).toEqual([before.body.id]);
    // … but stored, so the tab gets it when it reconnects from where it was.
    const again = await connect(node, 'alice', { lastEventId: String(before.body.id), label: 'alice again' });
    const replayed = await again.waitFor((e) => e.id === id, 'the event the bus lost');
    expect(JSON.parse(replayed.data)).toEqual({ text: 'kept' });

    // The publisher's retry with the same id is a duplicate that is delivered, not stored twice.
    const retry = await node.publish({ id, to: { users: ['alice'] }, event: 'message', data: { text: 'kept' } });
    expect(retry.status).toBe(202);
    expect(retry.body).toMatchObject({ id, duplicate: true, online: 1 });
  });

  it.each([
    ['bus.send', 'stored but not sent'],
    ['history.append', 'neither stored nor sent'],
  ] as const)('answers a batch whose third notification fails at %s with 503 and its index: the ones before it were delivered, it was %s, the rest were not touched', async (op, _fate) => {
    const rig = new PortRig();
    const node = await startTestNode({ ports: rig.wrap });
    const alice = await connect(node, 'alice');
    const ids = [newEventId(), newEventId(), newEventId(), newEventId(), newEventId()];
    const failing = ids[2]!;
    rig.once('before', op, () => {
      throw unavailable(`${op} unreachable`);
    }, (call) => call.eventId === failing);
    const notifications = ids.map((id, n) => ({ id, to: { users: ['alice'] }, event: 'message', data: { n } }));

    const answer = await node.publish({ notifications });

    expect(answer.status).toBe(503);
    expect(answer.body).toMatchObject({ error: 'unavailable', index: 2 });
    expect(String(answer.body.message)).toContain('index 2');
    expect(Number(answer.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    await sentinel(node, ['alice'], [alice]);
    expect(idsOf(alice)).toEqual(ids.slice(0, 2));
    for (const id of ids.slice(3)) {
      expect(rig.indexOf('history.append', 'start', id), `history.append of ${id}`).toBe(-1);
      expect(rig.indexOf('bus.send', 'start', id), `bus.send of ${id}`).toBe(-1);
    }
    expect(rig.indexOf('history.append', 'end', failing) >= 0).toBe(op === 'bus.send');

    // What the index is for: the publisher retries from there with the same ids, and nothing is lost or doubled.
    const retry = await node.publish({ notifications: notifications.slice(2) });
    expect(retry.status).toBe(202);
    expect((retry.body.results as Array<{ id: string; duplicate: boolean }>).map((r) => [r.id, r.duplicate])).toEqual([
      [failing, op === 'bus.send'],
      [ids[3], false],
      [ids[4], false],
    ]);
    await sentinel(node, ['alice'], [alice]);
    expect(idsOf(alice)).toEqual(ids);
  });

  it('keeps a plain Error part-way through a batch a bare 500 internal, without an index', async () => {
    const rig = new PortRig();
    const node = await startTestNode({ ports: rig.wrap });
    const ids = [newEventId(), newEventId(), newEventId()];
    rig.once('before', 'history.append', () => {
      throw new Error('history exploded');
    }, (call) => call.eventId === ids[1]);

    const answer = await node.publish({ notifications: ids.map((id) => ({ id, to: { users: ['alice'] }, event: 'message', data: 1 })) });

    expect(answer.status).toBe(500);
    expect(answer.body).toEqual({ error: 'internal', message: 'internal error' });
  });

  it('answers a plain Error from a port with 500 internal, keeping its message out of the body and in the log', async () => {
    const rig = new PortRig();
    const node = await startTestNode({ ports: rig.wrap });
    const secret = `locate-exploded-${randomBytes(8).toString('hex')}`;
    rig.once('before', 'owners.locate', () => {
      throw new Error(secret);
    });

    const response = await fetch(new URL('/publish', node.url), {
      method: 'POST',
      headers: { Authorization: `Bearer ${node.config.publishToken ?? ''}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ to: { users: ['alice'] }, event: 'message', data: 1 }),
    });
    const text = await response.text();

    expect(response.status).toBe(500);
    expect(JSON.parse(text)).toEqual({ error: 'internal', message: 'internal error' });
    expect(text).not.toContain(secret);
    expect(response.headers.get('retry-after')).toBeNull();
    const logged = node.logs.find((l) => l.event === 'http.internal_error');
    expect(logged).toMatchObject({ level: 'error', method: 'POST', path: '/publish', error: { name: 'Error', message: secret } });
    expect(await node.metric('herald_refusals_total{code="internal"}')).toBe(1);
  });

  it('answers a plain Error from the rate limiter with 500 internal', async () => {
    const secret = `limiter-exploded-${randomBytes(8).toString('hex')}`;
    const node = await startTestNode({
      ports: (defaults) => ({
        ...defaults,
        publishLimiter: { take: () => Promise.reject(new Error(secret)), close: () => Promise.resolve() },
      }),
    });
    const answer = await node.publish({ to: { users: ['alice'] }, event: 'message', data: 1 });
    expect(answer.status).toBe(500);
    expect(answer.body).toEqual({ error: 'internal', message: 'internal error' });
    expect(node.logs.some((l) => l.event === 'http.internal_error')).toBe(true);
  });
});
