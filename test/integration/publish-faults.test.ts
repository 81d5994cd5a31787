import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { eventIdFloor, eventIdTimeMs, isEventId, newEventId } from '../../services/protocol/event-id';
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

  it('answers a batch whose history write fails with 503 and index 0: nothing was looked up or sent, and the retry with the same ids delivers each once', async () => {
    const rig = new PortRig();
    const node = await startTestNode({ ports: rig.wrap });
    const alice = await connect(node, 'alice');
    const ids = [newEventId(), newEventId(), newEventId(), newEventId(), newEventId()];
    rig.once('before', 'history.append', () => {
      throw unavailable('history unreachable');
    });
    const notifications = ids.map((id, n) => ({ id, to: { users: ['alice'] }, event: 'message', data: { n } }));

    const answer = await node.publish({ notifications });

    expect(answer.status).toBe(503);
    expect(answer.body).toMatchObject({ error: 'unavailable', index: 0 });
    expect(String(answer.body.message)).toContain('index 0');
    expect(Number(answer.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    // The whole batch is one history call, and the lookup waits for all of it.
    expect(rig.calls('history.append')).toHaveLength(1);
    expect(rig.calls('owners.locate')).toEqual([]);
    expect(rig.calls('bus.send')).toEqual([]);

    const retry = await node.publish({ notifications });
    expect(retry.status).toBe(202);
    expect((retry.body.results as Array<{ id: string; duplicate: boolean }>).map((r) => [r.id, r.duplicate])).toEqual(ids.map((id) => [id, false]));
    await sentinel(node, ['alice'], [alice]);
    expect(idsOf(alice)).toEqual(ids);
  });

  it('answers a batch whose bus send fails with 503 and index 0: all stored, none sent; a reconnect replays them, and the copies the retry sends are not written to it again', async () => {
    const rig = new PortRig();
    const node = await startTestNode({ ports: rig.wrap });
    const alice = await connect(node, 'alice');
    const before = await node.publish({ to: { users: ['alice'] }, event: 'before', data: 0 });
    const ids = [newEventId(), newEventId(), newEventId()];
    rig.once('before', 'bus.send', () => {
      throw unavailable('topic unreachable');
    }, (call) => call.eventIds?.includes(ids[0]!) === true);
    const notifications = ids.map((id, n) => ({ id, to: { users: ['alice'] }, event: 'message', data: { n } }));

    const answer = await node.publish({ notifications });

    expect(answer.status).toBe(503);
    expect(answer.body).toMatchObject({ error: 'unavailable', index: 0 });
    // One message carries the batch to alice's node, in order.
    expect(rig.calls('bus.send').filter((c) => c.eventIds?.includes(ids[0]!) === true).map((c) => c.eventIds)).toEqual([ids]);
    await sentinel(node, ['alice'], [alice]);
    expect(idsOf(alice)).toEqual([before.body.id]);
    const again = await connect(node, 'alice', { lastEventId: String(before.body.id), label: 'alice again' });
    for (const id of ids) await again.waitFor((e) => e.id === id, `replay of ${id}`);

    const retry = await node.publish({ notifications });
    expect(retry.status).toBe(202);
    expect((retry.body.results as Array<{ id: string; duplicate: boolean }>).map((r) => [r.id, r.duplicate])).toEqual(ids.map((id) => [id, true]));
    // The retry's live copies reach a stream whose replay carried them: not written twice.
    await sentinel(node, ['alice'], [again]);
    expect(idsOf(again)).toEqual(ids);
  });

  it('names the id it minted in the 503 of a notification sent without one, and a retry with that id is not stored twice', async () => {
    const rig = new PortRig();
    const node = await startTestNode({ ports: rig.wrap });
    // Online, so the publish gets as far as the bus.
    await connect(node, 'alice');
    const before = await node.publish({ to: { users: ['alice'] }, event: 'before', data: 0 });
    rig.once('before', 'bus.send', () => {
      throw unavailable('topic unreachable');
    });
    const notification = { to: { users: ['alice'] }, event: 'message', data: { text: 'once' } };

    const answer = await node.publish(notification);

    expect(answer.status).toBe(503);
    expect(answer.body).toMatchObject({ error: 'unavailable' });
    const ids = answer.body.ids as string[];
    expect(ids).toHaveLength(1);
    expect(isEventId(ids[0])).toBe(true);
    // Stored before the bus failed: the retry with the minted id finds it.
    const retry = await node.publish({ ...notification, id: ids[0] });
    expect(retry.status).toBe(202);
    expect(retry.body).toMatchObject({ id: ids[0], duplicate: true });
    const again = await connect(node, 'alice', { lastEventId: String(before.body.id), label: 'alice again' });
    await sentinel(node, ['alice'], [again]);
    expect(idsOf(again)).toEqual([ids[0]]);
  });

  it('names every id of a batch in its 503, given and minted, in order, and a retry with them stores none twice', async () => {
    const rig = new PortRig();
    const node = await startTestNode({ ports: rig.wrap });
    const given = newEventId();
    const notifications = [0, 1, 2].map((n) => ({ ...(n === 1 ? { id: given } : {}), to: { users: ['alice'] }, event: 'message', data: { n } }));
    // After the history write: all three are stored.
    rig.once('before', 'owners.locate', () => {
      throw unavailable('owners unreachable');
    });

    const answer = await node.publish({ notifications });

    expect(answer.status).toBe(503);
    expect(answer.body).toMatchObject({ error: 'unavailable', index: 0 });
    const ids = answer.body.ids as string[];
    expect(ids).toHaveLength(3);
    expect(ids[1]).toBe(given);
    expect(ids.every((id) => isEventId(id))).toBe(true);
    expect(new Set(ids).size).toBe(3);

    const retry = await node.publish({ notifications: notifications.map((n, i) => ({ ...n, id: ids[i] })) });
    expect(retry.status).toBe(202);
    expect((retry.body.results as Array<{ id: string; duplicate: boolean }>).map((r) => [r.id, r.duplicate])).toEqual(ids.map((id) => [id, true]));
    // From before all three (the given id was minted first): each replayed once, in id order.
    const alice = await connect(node, 'alice', { lastEventId: eventIdFloor(eventIdTimeMs(given) - 1) });
    await sentinel(node, ['alice'], [alice]);
    expect(idsOf(alice)).toEqual([...ids].sort());
  });

  it('names no ids in a refusal that published nothing', async () => {
    const node = await startTestNode({ env: { HERALD_PUBLISH_RATE: '1', HERALD_PUBLISH_BURST: '100' } });
    await node.publish({ notifications: Array.from({ length: 100 }, () => ({ to: { users: ['alice'] }, event: 'message', data: 1 })) });

    const limited = await node.publish({ to: { users: ['alice'] }, event: 'message', data: 2 });
    const invalid = await node.publish({ to: { users: ['alice'] }, event: 'ping', data: 3 });

    expect([limited.status, limited.body.error]).toEqual([429, 'rate_limited']);
    expect([invalid.status, invalid.body.error]).toEqual([400, 'event_name_reserved']);
    expect(limited.body).not.toHaveProperty('ids');
    expect(invalid.body).not.toHaveProperty('ids');
  });

  it('keeps a plain Error in a batch a bare 500 internal, without an index', async () => {
    const rig = new PortRig();
    const node = await startTestNode({ ports: rig.wrap });
    const ids = [newEventId(), newEventId(), newEventId()];
    rig.once('before', 'history.append', () => {
      throw new Error('history exploded');
    }, (call) => call.eventIds?.includes(ids[1]!) === true);

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
