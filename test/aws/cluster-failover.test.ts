/**
 * A node of the cluster going away, as a process: killed with SIGKILL (a
 * crashed task) or stopped with SIGTERM (a scale-in or a deploy). Clients are
 * the `eventsource` package, which reconnects with `Last-Event-ID` as a
 * browser does, through the proxy that stands in for the ALB.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ListSubscriptionsByTopicCommand } from '@aws-sdk/client-sns';
import { GetQueueAttributesCommand, GetQueueUrlCommand } from '@aws-sdk/client-sqs';
import { EventSource } from 'eventsource';
import { nodeQueueName } from '../../services/adapters/aws/bus-naming';
import { readHeartbeats } from '../../services/janitor/inventory';
import { sweep } from '../../services/janitor/janitor';
import { silentLogger } from '../../services/shared/log';
import { buildEntryPoint, type BuiltEntry } from '../support/child-node';
import { startCluster, type Cluster, type ClusterNode } from '../../scripts/fleet/cluster';
import { connectUser } from '../support/sse-client';
import { eventually, withDeadline } from '../../scripts/fleet/deadline';
import { startEmulators, unique, type Emulators } from './emulators';
import { metricOf } from '../support/prometheus-text';

let emulators: Emulators;
let entry: BuiltEntry;
const running: Cluster[] = [];
const browsers: Browser[] = [];

beforeAll(async () => {
  [emulators, entry] = await Promise.all([startEmulators(), buildEntryPoint()]);
});

afterEach(async () => {
  for (const browser of browsers.splice(0)) browser.close();
  // By pid, also when the test failed.
  await Promise.all(running.splice(0).map((c) => c.stop()));
});

afterAll(async () => {
  await emulators.stop();
  entry.dispose();
});

async function cluster(nodeIds: readonly string[], env: Record<string, string> = {}, proxy = false): Promise<Cluster> {
  const label = unique('cf');
  const started = await startCluster({
    emulators,
    entry: entry.path,
    nodeIds,
    tableName: `${label}-table`,
    topicName: `${label}-topic`,
    queuePrefix: label,
    env: { HERALD_CONNECT_RATE_PER_IP: '10000', ...env },
    ...(proxy ? { proxy: { healthCheckIntervalMs: 250 } } : {}),
  });
  running.push(started);
  return started;
}

/** A browser tab's `EventSource` on `/events`, with the token in a header (the package lets `fetch` be wrapped for that). */
class Browser {
  /** Every notification id received, in arrival order, repeats included. */
  readonly ids: string[] = [];
  /** The node of each `ready`: one entry per (re)connection. */
  readonly landings: string[] = [];
  private readonly source: EventSource;

  constructor(baseUrl: string, token: string, readonly user: string) {
    this.source = new EventSource(new URL('/events', baseUrl), {
      fetch: (url, init) => fetch(url, { ...init, headers: { ...init.headers, Authorization: `Bearer ${token}` } }),
    });
    this.source.addEventListener('ready', (e) => this.landings.push((JSON.parse(String(e.data)) as { nodeId: string }).nodeId));
    this.source.addEventListener('tick', (e) => this.ids.push(e.lastEventId));
    browsers.push(this);
  }

  /** What the app keeps: each id once (the Herald client and the demo drop ids they have seen). */
  deduplicated(): string[] {
    return [...new Set(this.ids)];
  }

  close(): void {
    this.source.close();
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Ticks for `users`, published on `node` one after another; what was acknowledged (202) and what was not. */
class Ticker {
  readonly acknowledged: string[] = [];
  readonly refused: number[] = [];
  private n = 0;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly node: ClusterNode,
    private readonly users: readonly string[],
  ) {}

  async tick(): Promise<void> {
    const answer = await this.node.publish({ to: { users: this.users }, event: 'tick', data: { n: this.n++ } });
    if (answer.status === 202) this.acknowledged.push(String(answer.body.id));
    else this.refused.push(answer.status);
  }

  /** Ticks every 20 ms until `stop`. */
  start(): void {
    this.running = (async () => {
      while (!this.stopped) {
        await this.tick();
        await sleep(20);
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
  }
}

describe('a node leaving the cluster', () => {
  it('moves the streams of a node killed with SIGKILL to the others through the proxy: every tick published before, during and after arrives, once after de-duplication', async () => {
    const c = await cluster(['a', 'b', 'c'], { HERALD_RETRY_MS: '300' }, true);
    const users = ['u1', 'u2', 'u3', 'u4', 'u5', 'u6'];
    const tabs = await Promise.all(users.map(async (u) => new Browser(c.proxy!.url, await c.token(u), u)));
    await eventually(() => tabs.every((t) => t.landings.length === 1), 10_000, 'every tab to be ready');
    // Round robin: two tabs on each node.
    const victim = c.node('b');
    const moving = tabs.filter((t) => t.landings[0] === 'b');
    const staying = tabs.filter((t) => t.landings[0] !== 'b');
    expect(moving.length).toBe(2);

    // Ticks for all six users, published on node A (which stays up) one after another.
    const ticker = new Ticker(c.node('a'), users);
    for (let i = 0; i < 8; i++) await ticker.tick();
    ticker.start();
    await sleep(100);
    victim.process.signal('SIGKILL');
    const exit = await withDeadline(victim.process.exited, 5_000, 'node b to die');
    expect(exit.signal).toBe('SIGKILL');
    await eventually(() => moving.every((t) => t.landings.length === 2), 10_000, 'the tabs of node b to reconnect elsewhere');
    const reconnectedAt = ticker.acknowledged.length;
    await eventually(() => ticker.acknowledged.length >= reconnectedAt + 8, 10_000, 'eight ticks after the reconnects');
    await ticker.stop();
    const { acknowledged, refused } = ticker;

    expect(refused).toEqual([]);
    await eventually(
      () => tabs.every((t) => acknowledged.every((id) => t.ids.includes(id))),
      15_000,
      'every acknowledged tick on every tab',
    );
    for (const tab of tabs) expect(tab.deduplicated().sort(), tab.user).toEqual([...acknowledged].sort());
    expect(moving.flatMap((t) => t.landings.slice(1)).every((node) => node === 'a' || node === 'c')).toBe(true);
    // The other tabs never noticed.
    expect(staying.every((t) => t.landings.length === 1)).toBe(true);
    // What was routed to the dead node's queue while its tabs were away came back through the replay.
    const replayed = (await metricOf(c.node('a').url, 'herald_replayed_total')) + (await metricOf(c.node('c').url, 'herald_replayed_total'));
    expect(replayed).toBeGreaterThan(0);
  });

  it('drains a node on SIGTERM behind the proxy: its tabs reconnect to the others and miss nothing, once after de-duplication', async () => {
    const c = await cluster(['a', 'b', 'c'], { HERALD_RETRY_MS: '300', HERALD_DRAIN_MS: '1000' }, true);
    const users = ['u1', 'u2', 'u3', 'u4', 'u5', 'u6'];
    const tabs = await Promise.all(users.map(async (u) => new Browser(c.proxy!.url, await c.token(u), u)));
    await eventually(() => tabs.every((t) => t.landings.length === 1), 10_000, 'every tab to be ready');
    const moving = tabs.filter((t) => t.landings[0] === 'b');
    expect(moving.length).toBe(2);

    const ticker = new Ticker(c.node('a'), users);
    for (let i = 0; i < 5; i++) await ticker.tick();
    ticker.start();
    c.node('b').process.signal('SIGTERM');
    const exit = await withDeadline(c.node('b').process.exited, 10_000, 'node b to drain and exit');
    expect(exit.code).toBe(0);
    await eventually(() => moving.every((t) => t.landings.length === 2), 10_000, 'the tabs of node b to reconnect elsewhere');
    const reconnectedAt = ticker.acknowledged.length;
    await eventually(() => ticker.acknowledged.length >= reconnectedAt + 5, 10_000, 'five ticks after the reconnects');
    await ticker.stop();

    expect(ticker.refused).toEqual([]);
    await eventually(() => tabs.every((t) => ticker.acknowledged.every((id) => t.ids.includes(id))), 15_000, 'every acknowledged tick on every tab');
    for (const tab of tabs) expect(tab.deduplicated().sort(), tab.user).toEqual([...ticker.acknowledged].sort());
    expect(moving.flatMap((t) => t.landings.slice(1)).every((node) => node === 'a' || node === 'c')).toBe(true);
  });

  it('leaves a node killed with SIGKILL its queue and subscription until the janitor, whose sweep removes them and nothing of the live node', async () => {
    const c = await cluster(['a', 'b']);
    const queueArn = async (id: string): Promise<string | undefined> => {
      const { QueueUrl } = await emulators.sqs.send(new GetQueueUrlCommand({ QueueName: nodeQueueName(c.queuePrefix, id) }));
      const { Attributes } = await emulators.sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['QueueArn'] }));
      return Attributes?.QueueArn;
    };
    const subscribed = async (): Promise<string[]> => {
      const { Subscriptions } = await emulators.sns.send(new ListSubscriptionsByTopicCommand({ TopicArn: c.topicArn }));
      return (Subscriptions ?? []).map((sub) => sub.Endpoint ?? '').sort();
    };
    const [arnA, arnB] = [await queueArn('a'), await queueArn('b')];
    expect(await subscribed()).toEqual([arnA, arnB].sort());

    await c.node('a').process.stop(); // SIGKILL: no drain, no cleanup
    expect(await subscribed()).toEqual([arnA, arnB].sort());

    // Sweep at an instant after a's last heartbeat expired and before b's does
    // (b beats every 5 s, so it soon outlives a's last one): no waiting out real grace periods.
    let clockMs = 0;
    await eventually(
      async () => {
        const beats = await readHeartbeats(emulators.dynamo, c.tableName);
        const [a, b] = [beats.get('a') ?? 0, beats.get('b') ?? 0];
        clockMs = a + 1;
        return b > clockMs;
      },
      10_000,
      "node b's heartbeat to outlive node a's last one",
    );
    const report = await sweep({
      sns: emulators.sns,
      sqs: emulators.sqs,
      dynamo: emulators.dynamo,
      topicArn: c.topicArn,
      tableName: c.tableName,
      queuePrefix: c.queuePrefix,
      log: silentLogger,
      clock: () => clockMs,
      heartbeatGraceMs: 0,
      queueGraceMs: 0,
    });

    expect(report.failed).toEqual([]);
    expect(report.removedQueues.map((q) => q.nodeId)).toEqual(['a']);
    expect(await subscribed()).toEqual([arnB]);
    const gone = await emulators.sqs.send(new GetQueueUrlCommand({ QueueName: nodeQueueName(c.queuePrefix, 'a') })).then(
      () => 'still there',
      (error: unknown) => (error as { name?: string }).name,
    );
    expect(gone).toMatch(/QueueDoesNotExist|NonExistentQueue/);
    expect(await queueArn('b')).toBe(arnB);
  });

  it('drains on SIGTERM: every stream is closed with `closing` draining, the node\'s subscription and queue are deleted, and it exits 0', async () => {
    const c = await cluster(['a'], { HERALD_DRAIN_MS: '1000' });
    const node = c.node('a');
    const streams = await Promise.all(['alice', 'bob', 'carol'].map(async (u) => (await connectUser(node.url, await c.token(u), u)).stream));
    const { QueueUrl } = await emulators.sqs.send(new GetQueueUrlCommand({ QueueName: nodeQueueName(c.queuePrefix, 'a') }));
    const { Attributes } = await emulators.sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['QueueArn'] }));
    const subscriptions = async (): Promise<string[]> => {
      const { Subscriptions } = await emulators.sns.send(new ListSubscriptionsByTopicCommand({ TopicArn: c.topicArn }));
      return (Subscriptions ?? []).map((s) => s.Endpoint ?? '');
    };
    expect(await subscriptions()).toEqual([Attributes?.QueueArn]);

    node.process.signal('SIGTERM');

    // Out of the target group first: health turns 503 while streams are still open.
    await eventually(async () => (await fetch(new URL('/healthz', node.url))).status === 503, 2_000, '/healthz to answer 503');
    for (const stream of streams) {
      const closing = await stream.next('closing', { timeoutMs: 5_000 });
      expect(JSON.parse(closing.data)).toEqual({ reason: 'draining' });
      expect(closing.retry).toBeGreaterThan(0);
      await stream.closed(5_000);
    }
    const exit = await withDeadline(node.process.exited, 10_000, 'the node to exit after its drain');
    expect(exit.code).toBe(0);

    const gone = await emulators.sqs.send(new GetQueueUrlCommand({ QueueName: nodeQueueName(c.queuePrefix, 'a') })).then(
      () => 'still there',
      (error: unknown) => (error as { name?: string }).name,
    );
    expect(gone).toMatch(/QueueDoesNotExist|NonExistentQueue/);
    expect(await subscriptions()).toEqual([]);
    expect(node.process.logs.map((l) => l.event)).toEqual(expect.arrayContaining(['node.draining', 'node.stopped']));
    expect(node.process.logs.filter((l) => l.event === 'bus.cleanup_failed')).toEqual([]);
  });
});
