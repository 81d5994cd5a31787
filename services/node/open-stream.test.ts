import { afterEach, describe, expect, it, vi } from 'vitest';
import type { History, ReplayResult } from '../ports/history';
import type { ClaimPolicy, ClaimResult, ConnectionRecord, Owners } from '../ports/owners';
import type { HeraldEvent } from '../protocol/envelope';
import { HeraldError } from '../protocol/errors';
import { eventIdFloor, newEventId } from '../protocol/event-id';
import { frameEvent, frameReplaced } from '../protocol/sse-frame';
import type { TabPolicy } from '../protocol/stream-terms';
import { chunk } from './http-stream-sink';
import { FakeSink, TEST_LIMITS, manualClock, recordingLog } from './fakes';
import type { Connection } from './connection';
import { Hub } from './hub';
import { NodeMetrics } from './metrics';
import { START_POSITION_MARGIN_MS, STREAM_HEADERS, StreamOpener, type StreamResponse } from './open-stream';

afterEach(() => {
  vi.restoreAllMocks();
});

/** A promise the test settles. */
function deferred<T>(): { promise: Promise<T>; resolve(value: T): void; reject(error: unknown): void } {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets every pending promise callback run. */
async function settle(): Promise<void> {
  await new Promise<void>((resolve) => setImmediate(resolve));
}

/** Owners whose claims answer what the test says, when it says. */
class FakeOwners implements Owners {
  readonly claims: Array<{ record: ConnectionRecord; policy: ClaimPolicy }> = [];
  readonly released: string[] = [];
  answer: () => Promise<ClaimResult> = () => Promise.resolve({ ok: true, displaced: [] });
  /** Runs as the claim is made, before it answers: what the test checks then. */
  onClaim: () => void = () => undefined;

  claim(record: ConnectionRecord, policy: ClaimPolicy): Promise<ClaimResult> {
    this.claims.push({ record, policy });
    this.onClaim();
    return this.answer();
  }

  release(_userId: string, connectionId: string): Promise<void> {
    this.released.push(connectionId);
    return Promise.resolve();
  }

  heartbeat(): Promise<void> {
    return Promise.resolve();
  }

  locate(): Promise<ReadonlyMap<string, readonly string[]>> {
    return Promise.resolve(new Map());
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** History whose replays answer what the test says, when it says. */
class FakeHistory implements History {
  readonly reads: Array<{ userId: string; lastEventId: string; limit: number }> = [];
  answer: () => Promise<ReplayResult> = () => Promise.resolve({ events: [], gap: null });

  since(userId: string, lastEventId: string, limit: number): Promise<ReplayResult> {
    this.reads.push({ userId, lastEventId, limit });
    return this.answer();
  }

  append(): never {
    throw new Error('not used by the opener');
  }

  appendBatch(): never {
    throw new Error('not used by the opener');
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** The response and socket of one request, and its sink, writing their calls to one list so their order shows. */
class FakeExchange implements StreamResponse {
  readonly calls: string[] = [];
  status: number | undefined;
  headers: unknown;
  body: string | undefined;
  readonly sink: FakeSink;
  readonly socket = { cork: () => this.calls.push('cork'), uncork: () => this.calls.push('uncork') };

  constructor() {
    const calls = this.calls;
    this.sink = new (class extends FakeSink {
      override write(data: Uint8Array): boolean {
        calls.push('write');
        return super.write(data);
      }
    })();
  }

  writeHead(statusCode: number, headers: typeof STREAM_HEADERS): void {
    this.calls.push(`writeHead ${statusCode}`);
    this.status = statusCode;
    this.headers = headers;
  }

  flushHeaders(): void {
    this.calls.push('flushHeaders');
  }

  end(data: Uint8Array): void {
    this.calls.push('end');
    this.body = new TextDecoder().decode(data);
  }
}

const CONFIG = { tabPolicy: 'single' as TabPolicy, maxTabs: 3, heartbeatMs: 10_000, retryMs: 2_000, replayLimit: 50, maxStreamMs: 0 };

function setup(config: Partial<typeof CONFIG> = {}) {
  const hub = new Hub();
  const owners = new FakeOwners();
  const history = new FakeHistory();
  const metrics = new NodeMetrics();
  const time = manualClock(1_700_000_000_000);
  const { log, lines, events } = recordingLog();
  const displaced: Array<{ connectionId: string; by: string; reclaim: boolean }> = [];
  let draining = false;
  const opener = new StreamOpener({
    hub,
    owners,
    history,
    config: { ...CONFIG, ...config },
    limits: TEST_LIMITS,
    metrics,
    log,
    clock: time.clock,
    nodeId: 'n1',
    displace: (record, by, reclaim) => displaced.push({ connectionId: record.connectionId, by, reclaim }),
    draining: () => draining,
  });
  /** A stream of alice's, opening: the exchange it writes to and the open under way. */
  const open = (lastEventId?: string) => {
    const exchange = new FakeExchange();
    const connection = opener.connection(exchange.sink, '127.0.0.1', 'alice', time.now + 3_600_000);
    const opened = opener.openStream(connection, exchange, exchange.socket, lastEventId);
    return { exchange, connection, opened };
  };
  return {
    hub,
    owners,
    history,
    metrics,
    time,
    lines,
    events,
    displaced,
    opener,
    open,
    drain: () => {
      draining = true;
    },
  };
}

function event(id: string, data = '{}'): HeraldEvent {
  return { id, event: 'note', data, to: { users: ['alice'] }, ttlSeconds: 60, publishedAtMs: 0 };
}

function record(connectionId: string, nodeId = 'n2'): ConnectionRecord {
  return { userId: 'alice', connectionId, nodeId, connectedAtMs: 0, expiresAtMs: Number.MAX_SAFE_INTEGER };
}

/** The refusal a promise rejected with. */
/**
 * Opens a stream whose claim stays in flight until `meanwhile` has run (a
 * drain, a newer tab, a gone client), then answers it with `displaced`.
 */
function openDuringClaim(s: ReturnType<typeof setup>, meanwhile: (connection: Connection) => void, displaced: ConnectionRecord[] = []): ReturnType<ReturnType<typeof setup>['open']> {
  const claim = deferred<ClaimResult>();
  s.owners.answer = () => claim.promise;
  const opening = s.open();
  meanwhile(opening.connection);
  claim.resolve({ ok: true, displaced });
  return opening;
}

async function refusalOf(promise: Promise<unknown>): Promise<HeraldError> {
  const error: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof HeraldError)) throw new Error(`expected a HeraldError, got ${String(error)}`);
  return error;
}

describe('StreamOpener.openStream', () => {
  it('registers, claims, writes headers and ready, replays, then goes live, in that order', async () => {
    const s = setup();
    const position = newEventId(s.time.now - 60_000);
    const replayed = [event(newEventId(s.time.now - 50_000)), event(newEventId(s.time.now - 40_000))];
    const replay = deferred<ReplayResult>();
    s.history.answer = () => replay.promise;
    let inHubAtClaim = false;
    s.owners.onClaim = () => {
      inHubAtClaim = s.hub.size === 1;
    };
    const { exchange, connection, opened } = s.open(position);
    await settle();

    expect(inHubAtClaim).toBe(true);
    expect(s.owners.claims.map((c) => c.record)).toEqual([
      { userId: 'alice', connectionId: connection.id, nodeId: 'n1', connectedAtMs: s.time.now, expiresAtMs: s.time.now + 3_600_000 },
    ]);
    expect(exchange.calls).toEqual(['cork', 'writeHead 200', 'flushHeaders', 'write', 'uncork']);
    expect(exchange.headers).toEqual(STREAM_HEADERS);
    expect(exchange.sink.frames[0]).toMatch(/^retry: \d+\n\nevent: ready\ndata: \{"connectionId":"[^"]+","nodeId":"n1","policy":"single","heartbeatMs":10000\}\n\n$/);
    expect(s.history.reads).toEqual([{ userId: 'alice', lastEventId: position, limit: CONFIG.replayLimit }]);
    expect(connection.state).toBe('replaying');

    // Live events during the replay are held: one the replay also carries, and one it does not.
    const live = event(newEventId(s.time.now));
    expect(connection.push(chunk(frameEvent(replayed[1]!)), replayed[1]!.id)).toBe('held');
    expect(connection.push(chunk(frameEvent(live)), live.id)).toBe('held');
    replay.resolve({ events: replayed, gap: null });
    await opened;

    expect(exchange.sink.frames.slice(1)).toEqual([frameEvent(replayed[0]!), frameEvent(replayed[1]!), frameEvent(live)]);
    expect(connection.state).toBe('live');
    expect([s.metrics.connectionsOpened, s.metrics.replayed, s.metrics.deliveries]).toEqual([1, 2, 1]);
    expect(s.lines.find((l) => l['event'] === 'connection.opened')).toMatchObject({ connectionId: connection.id, displaced: 0, resuming: true });
  });

  it('gives a stream without a position one a margin before its claim, and reads no replay', async () => {
    const s = setup();
    const { exchange, opened } = s.open();
    await opened;
    expect(exchange.sink.frames[0]).toContain(`id: ${eventIdFloor(s.time.now - START_POSITION_MARGIN_MS)}\nevent: ready\n`);
    expect(s.history.reads).toEqual([]);
  });

  it('answers a position this system never issued with gap unknown_position and a start position, and no replay', async () => {
    const s = setup();
    const { exchange, opened, connection } = s.open('not-an-id');
    await opened;
    expect(exchange.sink.frames[0]).toContain(`id: ${eventIdFloor(s.time.now - START_POSITION_MARGIN_MS)}\nevent: ready\n`);
    expect(exchange.sink.frames[1]).toBe('event: gap\ndata: {"lastEventId":"not-an-id","reason":"unknown_position"}\n\n');
    expect(s.history.reads).toEqual([]);
    expect(connection.state).toBe('live');
  });

  it('writes the gap the replay reports before its events', async () => {
    const s = setup();
    const position = newEventId(s.time.now - 60_000);
    const replayed = event(newEventId(s.time.now - 1_000));
    s.history.answer = () => Promise.resolve({ events: [replayed], gap: 'history_trimmed' });
    const { exchange, opened } = s.open(position);
    await opened;
    expect(exchange.sink.frames.slice(1)).toEqual([`event: gap\ndata: {"lastEventId":"${position}","reason":"history_trimmed"}\n\n`, frameEvent(replayed)]);
  });

  it('claims with the tab policy configured', async () => {
    const single = setup();
    await single.open().opened;
    const multi = setup({ tabPolicy: 'multi', maxTabs: 4 });
    await multi.open().opened;
    expect([single.owners.claims[0]?.policy, multi.owners.claims[0]?.policy]).toEqual([{ mode: 'single' }, { mode: 'multi', maxTabs: 4 }]);
  });

  it('refuses over HTTP when the user holds all the tabs allowed, writing nothing and releasing nothing', async () => {
    const s = setup({ tabPolicy: 'multi' });
    s.owners.answer = () => Promise.resolve({ ok: false, reason: 'too_many_tabs', active: 3 });
    const { exchange, opened, connection } = s.open();
    const refusal = await refusalOf(opened);
    expect([refusal.code, refusal.details.retryAfterMs]).toEqual(['too_many_tabs', 5000]);
    expect([s.hub.size, connection.state, exchange.calls, s.owners.released]).toEqual([0, 'closed', [], []]);
  });

  it('passes on a failed claim, out of the hub, and releases what may have been written', async () => {
    const s = setup();
    const fault = new HeraldError('unavailable', 'owners down');
    s.owners.answer = () => Promise.reject(fault);
    const { opened, connection, exchange } = s.open();
    await expect(opened).rejects.toBe(fault);
    expect([s.hub.size, exchange.calls, s.owners.released]).toEqual([0, [], [connection.id]]);
  });

  it('tells the tabs the claim displaced that they were replaced', async () => {
    const s = setup();
    s.owners.answer = () => Promise.resolve({ ok: true, displaced: [record('old1'), record('old2', 'n1')] });
    const { opened, connection } = s.open();
    await opened;
    expect(s.displaced).toEqual([
      { connectionId: 'old1', by: connection.id, reclaim: false },
      { connectionId: 'old2', by: connection.id, reclaim: false },
    ]);
    expect(s.lines.find((l) => l['event'] === 'connection.opened')?.['displaced']).toBe(2);
  });

  it('refuses with draining when the drain began during the claim, and has the displaced tabs reclaim their place', async () => {
    const s = setup();
    const { opened, connection, exchange } = openDuringClaim(s, () => s.drain(), [record('old')]);
    const refusal = await refusalOf(opened);
    expect([refusal.code, refusal.details.retryAfterMs]).toEqual(['draining', 1000]);
    expect(s.displaced).toEqual([{ connectionId: 'old', by: connection.id, reclaim: true }]);
    expect([s.hub.size, exchange.calls, s.owners.released]).toEqual([0, [], [connection.id]]);
  });

  it('answers a stream replaced by an even newer tab during its claim with replaced, and still tells the older tabs replaced', async () => {
    const s = setup();
    const { opened, connection, exchange } = openDuringClaim(s, (c) => c.close('replaced', chunk(frameReplaced(c.id))), [record('old')]);
    await opened;
    expect([exchange.status, exchange.headers, exchange.body]).toEqual([200, STREAM_HEADERS, frameReplaced(connection.id)]);
    expect(s.displaced).toEqual([{ connectionId: 'old', by: connection.id, reclaim: false }]);
    expect(s.owners.released).toEqual([]);
    expect(s.hub.size).toBe(0);
  });

  it('answers a stream told to reclaim during its claim with a closing it reconnects after, and releases its record', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const s = setup();
    const { opened, connection, exchange } = openDuringClaim(s, (c) => c.close('reclaim'));
    await opened;
    expect([exchange.status, exchange.body]).toEqual([200, 'retry: 200\n\nevent: closing\ndata: {"reason":"reclaim"}\n\n']);
    expect(s.owners.released).toContain(connection.id);
  });

  it('refuses with draining a stream the stopping node closed during its claim', async () => {
    const s = setup();
    const { opened, connection, exchange } = openDuringClaim(s, (c) => c.close('draining'));
    expect((await refusalOf(opened)).code).toBe('draining');
    expect(exchange.calls).toEqual([]);
    expect(s.owners.released).toContain(connection.id);
  });

  it('answers nothing for a client gone during the claim, and releases its record', async () => {
    const s = setup();
    const { opened, connection, exchange } = openDuringClaim(s, (c) => c.close('client_closed'));
    await opened;
    expect(exchange.calls).toEqual([]);
    expect(exchange.sink.destroyed).toBe(true);
    expect(s.owners.released).toContain(connection.id);
  });

  it('closes with server_error in band when the replay cannot be read', async () => {
    const s = setup();
    s.history.answer = () => Promise.reject(new HeraldError('unavailable', 'history down'));
    const { opened, connection, exchange } = s.open(newEventId(s.time.now - 1_000));
    await opened;
    expect(connection.closedReason).toBe('server_error');
    expect(exchange.sink.frames.at(-1)).toMatch(/event: closing\ndata: \{"reason":"server_error"\}\n\n$/);
    expect(s.events()).toContain('history.replay_failed');
    expect(s.metrics.replayed).toBe(0);
  });

  it('closes with draining as soon as it is live when the drain began during its replay', async () => {
    const s = setup();
    const replay = deferred<ReplayResult>();
    s.history.answer = () => replay.promise;
    const { opened, connection, exchange } = s.open(newEventId(s.time.now - 1_000));
    await settle();
    s.drain();
    replay.resolve({ events: [], gap: null });
    await opened;
    expect(connection.closedReason).toBe('draining');
    expect(exchange.sink.frames.at(-1)).toMatch(/event: closing\ndata: \{"reason":"draining"\}\n\n$/);
  });
});

describe('StreamOpener.connection', () => {
  it('spreads first pings over the second half of a heartbeat, and sets no maximum age by default', () => {
    const s = setup();
    vi.spyOn(Math, 'random').mockReturnValue(0.25);
    const connection = s.opener.connection(new FakeSink(), '127.0.0.1', 'alice', s.time.now + 1_000);
    expect(/^[A-Za-z0-9_-]{12}$/.test(connection.id)).toBe(true);
    expect(connection.connectedAtMs).toBe(s.time.now);
    expect(connection.nextPingAtMs).toBe(s.time.now + 0.625 * CONFIG.heartbeatMs);
    expect(connection.closeAtMs).toBe(Number.POSITIVE_INFINITY);
  });

  it('ends a stream within the last tenth of the maximum age', () => {
    const s = setup({ maxStreamMs: 100_000 });
    vi.spyOn(Math, 'random').mockReturnValueOnce(0).mockReturnValueOnce(0).mockReturnValueOnce(0).mockReturnValueOnce(1);
    const first = s.opener.connection(new FakeSink(), '127.0.0.1', 'alice', s.time.now + 1_000);
    const second = s.opener.connection(new FakeSink(), '127.0.0.1', 'alice', s.time.now + 1_000);
    expect([first.closeAtMs, second.closeAtMs]).toEqual([s.time.now + 100_000, s.time.now + 90_000]);
  });
});

describe('StreamOpener, when a stream closes', () => {
  it('takes it out of the hub, counts and logs the reason, and releases its record', async () => {
    const s = setup();
    const { opened, connection } = s.open();
    await opened;
    s.time.advance(5_000);
    connection.close('client_closed');
    expect(s.hub.size).toBe(0);
    expect(s.metrics.closes.get('client_closed')).toBe(1);
    expect(s.lines.find((l) => l['event'] === 'connection.closed')).toMatchObject({ connectionId: connection.id, reason: 'client_closed', openMs: 5_000 });
    expect(s.owners.released).toEqual([connection.id]);
  });

  it('leaves the record of a replaced tab to the claim that displaced it', async () => {
    const s = setup();
    const { opened, connection } = s.open();
    await opened;
    connection.close('replaced', chunk(frameReplaced(connection.id)));
    expect([s.hub.size, s.metrics.closes.get('replaced'), s.owners.released]).toEqual([0, 1, []]);
  });

  it('logs a release that failed', async () => {
    const s = setup();
    const { opened, connection } = s.open();
    await opened;
    s.owners.release = () => Promise.reject(new Error('owners down'));
    connection.close('client_closed');
    await settle();
    expect(s.lines.find((l) => l['event'] === 'owners.release_failed')).toMatchObject({ connectionId: connection.id });
  });
});
