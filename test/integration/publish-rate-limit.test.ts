import { describe, expect, it } from 'vitest';
import { newEventId } from '../../services/protocol/event-id';
import { connect, idsOf, sentinel, startNodePair } from '../support/publish-kit';

describe('POST /publish: publisher rate limit', () => {
  it('accepts a burst of 100 in one batch, then refuses with 429 rate_limited and Retry-After, delivering and storing nothing of the refusal', async () => {
    // Node B shares A's bus, owners and history but has its own budget: it publishes the sentinels.
    const { a, b } = await startNodePair({ a: { env: { HERALD_PUBLISH_RATE: '1', HERALD_PUBLISH_BURST: '100' } } });
    const alice = await connect(a, 'alice');

    const batch = await a.publish({
      notifications: Array.from({ length: 100 }, (_, n) => ({ to: { users: ['alice'] }, event: 'message', data: { n } })),
    });
    expect(batch.status).toBe(202);
    const batchIds = (batch.body.results as Array<{ id: string }>).map((r) => r.id);
    expect(batchIds).toHaveLength(100);

    const refusedId = newEventId();
    const refused = await a.publish({ id: refusedId, to: { users: ['alice'] }, event: 'message', data: { n: 'refused' } });

    expect(refused.status).toBe(429);
    expect(refused.body).toMatchObject({ error: 'rate_limited' });
    const retryAfterMs = refused.body.retryAfterMs;
    expect(typeof retryAfterMs).toBe('number');
    expect(retryAfterMs).toBeGreaterThan(0);
    const retryAfter = refused.headers.get('retry-after');
    expect(retryAfter).toMatch(/^\d+$/);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
    expect(Number(retryAfter)).toBe(Math.max(1, Math.ceil(Number(retryAfterMs) / 1000)));

    // Live: the whole batch, in order, then the sentinel; never the refused event.
    await sentinel(b, ['alice'], [alice]);
    expect(idsOf(alice)).toEqual(batchIds);

    // Replay: history holds the second half of the batch and the sentinel, not the refused event.
    const again = await connect(a, 'alice', { lastEventId: batchIds[49]!, label: 'alice again' });
    const last = await sentinel(b, ['alice'], [again]);
    const replayed = again.notifications().map((e) => e.id);
    expect(replayed).not.toContain(refusedId);
    expect(replayed.slice(0, 50)).toEqual(batchIds.slice(50));
    expect(replayed.at(-1)).toBe(last);
    expect(await a.metric('herald_refusals_total{code="rate_limited"}')).toBe(1);
  });

  it('counts a batch as one unit per notification: a batch larger than the budget left is refused whole', async () => {
    const { a, b } = await startNodePair({ a: { env: { HERALD_PUBLISH_RATE: '1', HERALD_PUBLISH_BURST: '100' } } });
    const alice = await connect(a, 'alice');
    const half = await a.publish({
      notifications: Array.from({ length: 50 }, (_, n) => ({ to: { users: ['alice'] }, event: 'message', data: { n } })),
    });
    expect(half.status).toBe(202);

    const batch = await a.publish({
      notifications: Array.from({ length: 100 }, (_, n) => ({ to: { users: ['alice'] }, event: 'batch', data: { n } })),
    });

    expect(batch.status).toBe(429);
    expect(batch.body).toMatchObject({ error: 'rate_limited' });
    await sentinel(b, ['alice'], [alice]);
    expect(alice.notifications().map((e) => e.event)).toEqual([...Array<string>(50).fill('message'), 'sentinel']);
  });
});
