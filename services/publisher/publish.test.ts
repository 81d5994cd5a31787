import { describe, expect, it } from 'vitest';
import { MemoryHistory } from '../adapters/memory/memory-history';
import { MemoryOwners } from '../adapters/memory/memory-owners';
import { BusBatchError, type BusEntry } from '../ports/bus';
import { parseEnvelope, type HeraldEvent } from '../protocol/envelope';
import { HeraldError } from '../protocol/errors';
import { MAX_TARGETED_NODES, PublishProgress, publish, type PublishDeps } from './publish';

/** Memory history and owners, and a bus that records each `sendBatch` and can refuse entries. */
async function rig(placement: Record<string, readonly string[]>): Promise<{
  deps: PublishDeps;
  batches: BusEntry[][];
  refuse: (pick: (entry: BusEntry) => boolean) => void;
}> {
  const owners = new MemoryOwners();
  const nodes = new Set(Object.values(placement).flat());
  for (const node of nodes) await owners.heartbeat(node, Date.now() + 60_000);
  let connection = 0;
  for (const [user, held] of Object.entries(placement)) {
    for (const nodeId of held) {
      const now = Date.now();
      await owners.claim({ userId: user, connectionId: `c${++connection}`, nodeId, connectedAtMs: now, expiresAtMs: now + 60_000 }, { mode: 'multi', maxTabs: 10 });
    }
  }
  const batches: BusEntry[][] = [];
  let refused: ((entry: BusEntry) => boolean) | undefined;
  const deps: PublishDeps = {
    history: new MemoryHistory({ maxEventsPerStream: 1_000, maxBytes: 1 << 24 }),
    owners,
    bus: {
      sendBatch: (entries) => {
        batches.push([...entries]);
        const failed = refused ? entries.flatMap((e, i) => (refused!(e) ? [i] : [])) : [];
        refused = undefined;
        return failed.length > 0 ? Promise.reject(new BusBatchError(failed, new Error('refused'))) : Promise.resolve();
      },
    },
  };
  return { deps, batches, refuse: (pick) => (refused = pick) };
}

const event = (to: { users: string[] } | { all: true }, n = 0): HeraldEvent => parseEnvelope({ to, event: 'message', data: { n } });

const shape = (entries: readonly BusEntry[]): unknown[] =>
  entries.map(({ message, target }) => ({
    target: target === 'all' ? 'all' : target.node,
    events: message.kind === 'deliver' ? message.events.map((e) => ('all' in e.to ? 'all' : e.to.users.join('+'))) : message.kind,
  }));

describe('publish', () => {
  it('packs a batch into one message per owning node, each event addressed to that node’s users only, in batch order', async () => {
    const { deps, batches } = await rig({ alice: ['a'], bob: ['b'], carol: ['a', 'b'] });
    const events = [event({ users: ['alice', 'bob'] }, 1), event({ users: ['carol'] }, 2), event({ users: ['dave'] }, 3), event({ users: ['alice'] }, 4)];

    const results = await publish(events, deps, 'p');

    expect(batches).toHaveLength(1);
    expect(shape(batches[0]!)).toEqual([
      { target: 'a', events: ['alice', 'carol', 'alice'] },
      { target: 'b', events: ['bob', 'carol'] },
    ]);
    expect(results.map((r) => [r.online, r.offline])).toEqual([
      [2, []],
      [1, []],
      [0, ['dave']],
      [1, []],
    ]);
  });

  it('sends a batch with a broadcast as one message to every node, so each user’s events keep their order', async () => {
    const { deps, batches } = await rig({ alice: ['a'], bob: ['b'] });
    const events = [event({ users: ['alice'] }, 1), event({ all: true }, 2), event({ users: ['bob'] }, 3), event({ users: ['nobody'] }, 4)];

    const results = await publish(events, deps, 'p');

    expect(shape(batches[0]!)).toEqual([{ target: 'all', events: ['alice', 'all', 'bob'] }]);
    expect(results[1]).toMatchObject({ recipients: 'all', online: null });
  });

  it(`sends to every node once one event's recipients sit on more than ${MAX_TARGETED_NODES} nodes`, async () => {
    const placement = Object.fromEntries(Array.from({ length: MAX_TARGETED_NODES + 1 }, (_, i) => [`u${i}`, [`n${i}`]]));
    const { deps, batches } = await rig(placement);

    await publish([event({ users: Object.keys(placement) })], deps, 'p');

    expect(shape(batches[0]!).map((e) => (e as { target: string }).target)).toEqual(['all']);
  });

  it('names the first notification of a refused message as the index, and a retry sends only what was refused', async () => {
    const { deps, batches, refuse } = await rig({ alice: ['a'], bob: ['b'] });
    const events = [event({ users: ['alice'] }, 1), event({ users: ['bob'] }, 2), event({ users: ['alice'] }, 3)];
    const progress = new PublishProgress();
    refuse((entry) => entry.target !== 'all' && entry.target.node === 'b');

    const error = await publish(events, deps, 'p', { progress }).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(HeraldError);
    expect((error as HeraldError).toJSON()).toMatchObject({ error: 'unavailable', index: 1 });
    await publish(events, deps, 'p', { progress });
    expect(batches.map(shape)).toEqual([
      [
        { target: 'a', events: ['alice', 'alice'] },
        { target: 'b', events: ['bob'] },
      ],
      [{ target: 'b', events: ['bob'] }],
    ]);
  });

  it('reports index 0 when the bus refuses the whole batch, and nothing when every recipient is offline', async () => {
    const { deps, batches } = await rig({});
    expect(await publish([event({ users: ['x'] })], deps, 'p', { batch: true })).toMatchObject([{ online: 0, offline: ['x'] }]);
    expect(batches).toEqual([]);

    const failing: PublishDeps = { ...deps, bus: { sendBatch: () => Promise.reject(new HeraldError('unavailable', 'down')) } };
    const { deps: online } = await rig({ alice: ['a'] });
    const error = await publish([event({ users: ['alice'] }), event({ users: ['alice'] })], { ...online, bus: failing.bus }, 'p').catch((e: unknown) => e);
    expect((error as HeraldError).details.index).toBe(0);
  });
});
