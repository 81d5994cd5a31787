import { describe, expect, it } from 'vitest';
import type { HeraldEvent } from '../../protocol/envelope';
import { eventIdFloor, newEventId } from '../../protocol/event-id';
import { MemoryHistory } from './memory-history';

const MiB = 1024 * 1024;
const clock = { now: 1_800_000_000_000 };

function event(users: readonly string[], data = '1'): HeraldEvent {
  clock.now += 1;
  return { id: newEventId(clock.now), event: 'message', data, to: { users }, ttlSeconds: 3_600, publishedAtMs: clock.now };
}

const history = (maxBytes: number): MemoryHistory => new MemoryHistory({ maxEventsPerStream: 100, maxBytes, clock: () => clock.now });

describe('MemoryHistory: maxBytes bounds what it holds', () => {
  it('counts recipients and user streams, not only data: 300 one-byte events to 1,000 new users each stay under 1 MiB', async () => {
    const held = history(MiB);
    let next = 0;
    for (let i = 0; i < 300; i++) await held.append(event(Array.from({ length: 1_000 }, () => `user-${next++}`)));
    expect(held.heldBytes).toBeLessThanOrEqual(MiB);
    // Each user stream costs at least its overhead: the count of streams is bounded too.
    expect(held.userStreams).toBeLessThan(MiB / 260);
    // The newest event is still there for its users.
    const newest = await held.since('user-299999', eventIdFloor(clock.now - 1_000), 10);
    expect(newest.events).toHaveLength(1);
  });

  /** Alice holds a position in her stream; then a flood of new users evicts her events and forgets her emptied stream. */
  async function aliceForgotten(): Promise<{ held: MemoryHistory; position: string }> {
    const held = history(MiB);
    const first = event(['alice']);
    await held.append(first);
    await held.append(event(['alice']));
    let next = 0;
    for (let i = 0; i < 100; i++) await held.append(event(Array.from({ length: 1_000 }, () => `flood-${next++}`)));
    return { held, position: first.id };
  }

  it('answers history_trimmed, never silence, to a user whose emptied stream was forgotten', async () => {
    const { held, position } = await aliceForgotten();
    expect(await held.since('alice', position, 10)).toEqual({ events: [], gap: 'history_trimmed' });
  });

  it('keeps reporting the loss once a forgotten user gets a new stream', async () => {
    const { held, position } = await aliceForgotten();
    const later = event(['alice']);
    await held.append(later);
    const replay = await held.since('alice', position, 10);
    expect(replay.events.map((e) => e.id)).toEqual([later.id]);
    expect(replay.gap).toBe('history_trimmed');
  });

  it('counts a large event by its data and recipients', async () => {
    const held = history(64 * MiB);
    await held.append(event(['bob'], 'x'.repeat(10_000)));
    const small = held.heldBytes;
    await held.append(event(Array.from({ length: 100 }, (_, i) => `member-${i}`)));
    // 100 recipients with new streams: each at least its stream and its place in the list.
    expect(held.heldBytes - small).toBeGreaterThan(100 * 300);
    expect(small).toBeGreaterThan(2 * 10_000);
  });
});
