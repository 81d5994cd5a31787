import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryBus, MemoryNetwork } from '../adapters/memory/memory-bus';
import { MemoryHistory } from '../adapters/memory/memory-history';
import { TokenBucketLimiter } from '../adapters/memory/token-bucket';
import type { BusMessage } from '../ports/bus';
import type { ClaimResult, Owners } from '../ports/owners';
import { HeraldError } from '../protocol/errors';
import { frameEvent, frameReplaced } from '../protocol/sse-frame';
import { loadConfig } from './config';
import { liveStream, manualClock, pendingStream, recordingLog, type FakeStream } from './fakes';
import { EARLY_DRAIN_MARGIN_MS, HeraldNode } from './herald-node';

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

/** Owners that keep each heartbeat, and fail them while `down`. */
class HeartbeatOwners implements Owners {
  readonly heartbeats: number[] = [];
  down = false;

  heartbeat(_nodeId: string, expiresAtMs: number): Promise<void> {
    if (this.down) return Promise.reject(new HeraldError('unavailable', 'owners down'));
    this.heartbeats.push(expiresAtMs);
    return Promise.resolve();
  }

  claim(): Promise<ClaimResult> {
    return Promise.resolve({ ok: true, displaced: [] });
  }

  release(): Promise<void> {
    return Promise.resolve();
  }

  locate(): Promise<ReadonlyMap<string, readonly string[]>> {
    return Promise.resolve(new Map());
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

const TTL_MS = 3_000;

function setup() {
  vi.useFakeTimers();
  const config = loadConfig({ HERALD_JWT_SECRET: 'test-secret-that-is-at-least-32-bytes-long', HERALD_DRAIN_MS: '10000', HERALD_RETRY_MS: '2000' });
  const network = new MemoryNetwork();
  const owners = new HeartbeatOwners();
  const time = manualClock(1_700_000_000_000);
  const { log, lines, events } = recordingLog();
  const health = { name: 'store', reachable: () => true };
  const node = new HeraldNode({
    config,
    bus: new MemoryBus(network),
    owners,
    history: new MemoryHistory({ maxEventsPerStream: 10, maxBytes: 1_000_000 }),
    publishLimiter: new TokenBucketLimiter(config.publishRate),
    log,
    nodeId: 'n1',
    clock: time.clock,
    nodeTtlMs: TTL_MS,
    health,
  });
  /** A stream of this node, live, as the opener leaves one. */
  const live = (id: string, userId = 'alice'): FakeStream => {
    const stream = liveStream(id, userId, { onClosed: (c) => node.hub.remove(c) });
    node.hub.add(stream.connection);
    return stream;
  };
  const sender = new MemoryBus(network);
  const send = async (message: BusMessage): Promise<void> => {
    await sender.send(message, { node: 'n1' });
    await vi.advanceTimersByTimeAsync(0);
  };
  return { config, node, owners, time, lines, events, health, live, send };
}

describe('HeraldNode', () => {
  it('stores its first heartbeat before it listens on the bus, and says it started', async () => {
    const { node, owners, time, lines } = setup();
    await node.start();
    expect(owners.heartbeats).toEqual([time.now + TTL_MS]);
    expect(lines.find((l) => l['event'] === 'node.started')).toMatchObject({ nodeId: 'n1', mode: 'local', policy: 'single' });
    await node.stop();
  });

  it('gives the routes the config, log and health it was built with', () => {
    const { node, config, health, events } = setup();
    expect([node.config, node.health, node.nodeId]).toEqual([config, health, 'n1']);
    node.log.info('test.line');
    expect(events()).toEqual(['test.line']);
  });

  it('writes the events of a deliver message to its streams, in order', async () => {
    const { node, live, send } = setup();
    await node.start();
    const alice = live('a1');
    const bob = live('b1', 'bob');
    const first = { id: '01ARZ3NDEKTSV4RRFFQ69G5FAV', event: 'one', data: '1', to: { users: ['alice'] }, ttlSeconds: 0, publishedAtMs: 0 };
    const second = { ...first, id: '01ARZ3NDEKTSV4RRFFQ69G5FAW', event: 'two', to: { all: true as const } };
    await send({ kind: 'deliver', events: [first, second] });
    expect(alice.sink.frames).toEqual([frameEvent(first), frameEvent(second)]);
    expect(bob.sink.frames).toEqual([frameEvent(second)]);
    expect([node.metrics.busMessages, node.metrics.deliveries]).toEqual([1, 3]);
    await node.stop();
  });

  it('closes a tab of its own that a replace message names', async () => {
    const { node, live, send } = setup();
    await node.start();
    const old = live('a1');
    await send({ kind: 'replace', userId: 'alice', connectionId: 'a1', byConnectionId: 'x' });
    expect(old.closes).toEqual(['replaced']);
    expect(old.sink.frames.at(-1)).toBe(frameReplaced('a1'));
    await node.stop();
  });

  it('starts draining on a drain message, over the window less the early margin, and refuses new streams', async () => {
    const { node, config, send, lines } = setup();
    await node.start();
    expect(node.draining).toBe(false);
    await send({ kind: 'drain' });
    expect(node.draining).toBe(true);
    expect(lines.find((l) => l['event'] === 'node.draining')?.['windowMs']).toBe(config.drainMs - EARLY_DRAIN_MARGIN_MS);
    expect(() => node.admit('10.0.0.1')).toThrow(expect.objectContaining({ code: 'draining' }));
    await node.stop();
  });

  it('admits streams under the caps and lets go of their places', () => {
    const { node } = setup();
    const admission = node.admit('10.0.0.1');
    admission.release();
    expect(() => node.admit('10.0.0.1')).not.toThrow();
  });

  it('on stop, closes every stream with draining, leaves the bus and declares itself gone', async () => {
    const { node, owners, live, send, events } = setup();
    await node.start();
    const stream = live('a1');
    await node.stop();
    expect(stream.closes).toEqual(['draining']);
    expect(owners.heartbeats.at(-1)).toBe(0);
    expect(events().at(-1)).toBe('node.stopped');
    const before = node.metrics.busMessages;
    await send({ kind: 'drain' }).catch(() => undefined);
    expect(node.metrics.busMessages).toBe(before);
  });

  it('after a heartbeat stored too late, closes its open streams with resync, and leaves those still opening', async () => {
    const { node, owners, time, live, lines } = setup();
    await node.start();
    const open = live('a1');
    const opening = pendingStream('a2', 'alice');
    node.hub.add(opening.connection);
    owners.down = true;
    time.advance(2 * TTL_MS);
    await vi.advanceTimersByTimeAsync(TTL_MS / 3);
    expect(open.closes).toEqual([]);
    owners.down = false;
    await vi.advanceTimersByTimeAsync(TTL_MS / 3);
    expect(lines.find((l) => l['event'] === 'node.heartbeat_lapsed')?.['lapsedForMs']).toBe(TTL_MS);
    expect(open.closes).toEqual(['resync']);
    expect(open.sink.frames.at(-1)).toMatch(/event: closing\ndata: \{"reason":"resync"\}\n\n$/);
    expect(opening.closes).toEqual([]);
    expect(lines.find((l) => l['event'] === 'node.resuming_streams')?.['streams']).toBe(1);
    await node.stop();
  });

  it('pings its streams from the ticker once started', async () => {
    const { node, live } = setup();
    const stream = live('a1');
    await vi.advanceTimersByTimeAsync(2_000);
    expect(stream.sink.frames).toEqual([]);
    await node.start();
    await vi.advanceTimersByTimeAsync(2_000);
    expect(stream.sink.frames[0]).toBe('event: ping\ndata: {}\n\n');
    await node.stop();
  });
});
