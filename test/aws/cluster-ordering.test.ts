/**
 * The no-loss rule (docs/architecture.md, "The delivery-ordering rule")
 * across two nodes of the aws shape: a publisher on node A writes history
 * before it looks up owners, and node B claims a reconnecting stream before it
 * reads the replay. Both nodes run in this process (startHerald + composeAws,
 * the real DynamoDB and SNS/SQS adapters on the emulators) so that one side's
 * ports can be held at a gate, making each interleaving happen for certain
 * rather than by luck.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { createAwsClients } from '../../services/adapters/aws/sdk-clients';
import { composeAws } from '../../services/node/compose';
import { loadConfig } from '../../services/node/config';
import { startHerald, type RunningHerald } from '../../services/node/server';
import { createLogger } from '../../services/shared/log';
import { eventually } from '../../scripts/fleet/deadline';
import { Gate, PortRig } from '../support/gated-ports';
import { openStream, type SseEvent, type SseStream } from '../support/sse-client';
import { TEST_PUBLISH_TOKEN, TEST_SECRET, signToken } from '../support/tokens';
import { startEmulators, unique, type Emulators } from './emulators';

let emulators: Emulators;

beforeAll(async () => {
  emulators = await startEmulators();
});

afterAll(async () => {
  await emulators.stop();
});

interface Pair {
  readonly a: RunningHerald;
  readonly b: RunningHerald;
  /** Gates on node A's ports (the publisher's side). */
  readonly rigA: PortRig;
  /** Gates on node B's ports (the reconnecting stream's side). */
  readonly rigB: PortRig;
}

/** Nodes A and B on one topic and table of this test's own, each with its ports wrapped in a rig. */
async function startPair(): Promise<Pair> {
  const label = unique('co');
  const topicArn = await emulators.createTopic(`${label}-topic`);
  await emulators.createTable(`${label}-table`);
  const env = {
    ...emulators.env(),
    HERALD_MODE: 'aws',
    HERALD_HOST: '127.0.0.1',
    HERALD_PORT: '0',
    HERALD_JWT_SECRET: TEST_SECRET,
    HERALD_PUBLISH_TOKEN: TEST_PUBLISH_TOKEN,
    HERALD_TOPIC_ARN: topicArn,
    HERALD_TABLE_NAME: `${label}-table`,
    HERALD_QUEUE_PREFIX: label,
    HERALD_DRAIN_MS: '0',
  };
  const start = async (nodeId: string, rig: PortRig): Promise<RunningHerald> => {
    const config = loadConfig(env);
    const log = createLogger({ level: 'error', sink: () => undefined });
    const ports = rig.wrap(composeAws(config, config.aws!, createAwsClients(env, { credentials: emulators.credentials }), log));
    const running = await startHerald({ config, ports, log, nodeId });
    onTestFinished(async () => {
      running.server.closeAllConnections();
      await running.shutdown();
    });
    return running;
  };
  const [rigA, rigB] = [new PortRig(), new PortRig()];
  const [a, b] = await Promise.all([start('a', rigA), start('b', rigB)]);
  return { a, b, rigA, rigB };
}

async function publish(node: RunningHerald, n: number): Promise<{ status: number; id: string; online: unknown }> {
  const response = await fetch(new URL('/publish', node.url), {
    method: 'POST',
    headers: { Authorization: `Bearer ${TEST_PUBLISH_TOKEN}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ to: { users: ['alice'] }, event: 'message', data: { n } }),
  });
  const body = (await response.json()) as { id: string; online: unknown };
  return { status: response.status, id: body.id, online: body.online };
}

/** alice's reconnect to `node` from `lastEventId`, as EventSource sends it. */
async function reconnect(node: RunningHerald, lastEventId: string): Promise<SseStream> {
  return openStream(node.url, { token: await signToken('alice'), lastEventId, label: 'alice reconnecting' });
}

const ids = (stream: SseStream): Array<string | undefined> => stream.notifications().map((e) => e.id);

/** What the app keeps: notifications with an id it has not seen (the client drops repeats). */
function deduplicated(events: readonly SseEvent[]): Array<string | undefined> {
  const seen = new Set<string>();
  return events.filter((e) => e.id !== undefined && !seen.has(e.id) && Boolean(seen.add(e.id))).map((e) => e.id);
}

/** Gates hold alice's stream only; publishes are the only callers of `owners.locate`. */
const alice = (call: { userId?: string }): boolean => call.userId === 'alice';

describe('the delivery-ordering rule across two nodes of the aws shape', () => {
  it('stored on A before the reconnect to B claimed, located after it: the replay on B carries the event (and the live copy is dropped by id)', async () => {
    const { a, b, rigA } = await startPair();
    const position = (await publish(a, 0)).id;

    // A's publish is held after its history write, before its owner lookup.
    const beforeLocate = new Gate('owners.locate on A');
    rigA.once('before', 'owners.locate', beforeLocate.pass);
    const pending = publish(a, 1);
    await beforeLocate.reached();

    // alice reconnects to B, which claims and reads the replay while A is held: the event is in history.
    const stream = await reconnect(b, position);
    const replayed = await stream.next('message', { timeoutMs: 5_000 });
    expect(JSON.parse(replayed.data)).toEqual({ n: 1 });
    expect(b.node.metrics.replayed).toBe(1);

    beforeLocate.open();
    const published = await pending;
    expect(published.status).toBe(202);
    expect(replayed.id).toBe(published.id);
    // The lookup, after the claim, finds alice on B: the event goes there live as well.
    expect(published.online).toBe(1);

    const sentinel = await publish(a, 2);
    await stream.waitFor((e) => e.id === sentinel.id, 'the sentinel', { timeoutMs: 5_000 });
    const copies = ids(stream).filter((id) => id === published.id).length;
    expect(copies).toBeGreaterThanOrEqual(1);
    expect(copies).toBeLessThanOrEqual(2);
    expect(deduplicated(stream.notifications())).toEqual([published.id, sentinel.id]);
  });

  it('published on A after the reconnect to B claimed but before B read the replay: the event reaches alice exactly once', async () => {
    const { a, b, rigB } = await startPair();
    const position = (await publish(a, 0)).id;

    // B is held after its claim is stored, before it reads history.
    const afterClaim = new Gate('owners.claim on B, stored');
    rigB.once('after', 'owners.claim', afterClaim.pass, alice);
    const opening = reconnect(b, position);
    await afterClaim.reached();

    // A's lookup sees the claim and sends the event to B, which holds it: the stream is not live yet.
    const published = await publish(a, 1);
    expect(published.status).toBe(202);
    expect(published.online).toBe(1);
    await eventually(() => b.node.metrics.busMessages >= 1, 5_000, 'B to receive the event while the stream is held');

    // The replay now reads history, which has the event; the held copy is skipped as already sent.
    afterClaim.open();
    const stream = await opening;
    const sentinel = await publish(a, 2);
    await stream.waitFor((e) => e.id === sentinel.id, 'the sentinel', { timeoutMs: 5_000 });
    expect(ids(stream)).toEqual([published.id, sentinel.id]);
    expect(b.node.metrics.replayed).toBe(1);
  });

  it('located on A before the reconnect to B claimed (nobody online): the replay on B alone carries the event', async () => {
    const { a, b, rigA } = await startPair();
    const position = (await publish(a, 0)).id;

    // A's lookup has answered (alice offline) but its publish is held before it returns.
    const afterLocate = new Gate('owners.locate on A, answered');
    rigA.once('after', 'owners.locate', afterLocate.pass);
    const pending = publish(a, 1);
    await afterLocate.reached();

    const stream = await reconnect(b, position);
    const replayed = await stream.next('message', { timeoutMs: 5_000 });
    afterLocate.open();
    const published = await pending;
    expect(published.online).toBe(0);
    expect(replayed.id).toBe(published.id);

    const sentinel = await publish(a, 2);
    await stream.waitFor((e) => e.id === sentinel.id, 'the sentinel', { timeoutMs: 5_000 });
    expect(ids(stream)).toEqual([published.id, sentinel.id]);
    // Nothing was sent to B for it: only the sentinel came over the bus.
    expect(b.node.metrics.busMessages).toBe(1);
  });

  it('published on A after B claimed and read the replay: the event reaches alice live, once', async () => {
    const { a, b, rigB } = await startPair();
    const position = (await publish(a, 0)).id;

    // B has read history (nothing after the position) but not yet gone live.
    const afterRead = new Gate('history.since on B, read');
    rigB.once('after', 'history.since', afterRead.pass, alice);
    const opening = reconnect(b, position);
    await afterRead.reached();

    const published = await publish(a, 1);
    expect(published.online).toBe(1);
    await eventually(() => b.node.metrics.busMessages >= 1, 5_000, 'B to receive the event while the stream is held');
    afterRead.open();

    const stream = await opening;
    const sentinel = await publish(a, 2);
    await stream.waitFor((e) => e.id === sentinel.id, 'the sentinel', { timeoutMs: 5_000 });
    expect(ids(stream)).toEqual([published.id, sentinel.id]);
    expect(b.node.metrics.replayed).toBe(0);
  });
});
