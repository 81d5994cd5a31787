/**
 * A node of a redis fleet killed with SIGKILL under traffic: its tabs (the
 * `eventsource` package, reconnecting with `Last-Event-ID` as a browser does)
 * come back through the load balancer stand-in to the other nodes, and get
 * every acknowledged event once, the ones sent to the dead node's stream by
 * the replay.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BrowserTab } from '../support/browser-tab';
import { buildEntryPoint, type BuiltEntry } from '../support/child-node';
import type { ClusterNode } from '../../scripts/fleet/cluster';
import { eventually, withDeadline } from '../../scripts/fleet/deadline';
import { startRedisFleet, type RedisFleet } from '../../scripts/fleet/redis-fleet';
import { startRedisServer, type RedisServer } from '../../scripts/fleet/redis-server';
import { metricOf } from '../support/prometheus-text';

let entry: BuiltEntry;
let redis: RedisServer;
const fleets: RedisFleet[] = [];
const tabs: BrowserTab[] = [];

beforeAll(async () => {
  [entry, redis] = await Promise.all([buildEntryPoint(), startRedisServer()]);
});

afterEach(async () => {
  for (const tab of tabs.splice(0)) tab.close();
  // By pid, also when the test failed.
  await Promise.all(fleets.splice(0).map((f) => f.stop()));
});

afterAll(async () => {
  await redis.stop();
  entry.dispose();
});

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Ticks for `users`, published on `node` one after another; what was acknowledged (202) and what was not. */
class Ticker {
  readonly acknowledged: string[] = [];
  readonly refused: string[] = [];
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
    else this.refused.push(`${answer.status} ${String(answer.body.error)}`);
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

describe('a node of a redis fleet killed with SIGKILL', () => {
  it('moves its tabs to the other nodes through the proxy: every tick published before, during and after arrives, none twice on one connection', async () => {
    const fleet = await startRedisFleet({
      entry: entry.path,
      redis: { url: redis.url },
      nodes: 3,
      keyPrefix: 'failover:',
      env: { HERALD_RETRY_MS: '300' },
      proxy: { healthCheckIntervalMs: 250 },
    });
    fleets.push(fleet);
    const [survivor, victim] = [fleet.nodes[0]!, fleet.nodes[1]!];
    const users = ['u1', 'u2', 'u3', 'u4', 'u5', 'u6'];
    for (const u of users) tabs.push(new BrowserTab(fleet.proxy!.url, await fleet.token(u), u, ['tick']));
    await eventually(() => tabs.every((t) => t.landings.length === 1), 10_000, 'every tab to be ready');
    // Round robin: two tabs on each node.
    const moving = tabs.filter((t) => t.landings[0] === victim.id);
    const staying = tabs.filter((t) => t.landings[0] !== victim.id);
    expect(moving.length).toBe(2);

    const ticker = new Ticker(survivor, users);
    for (let i = 0; i < 8; i++) await ticker.tick();
    ticker.start();
    await sleep(100);
    victim.process.signal('SIGKILL');
    const exit = await withDeadline(victim.process.exited, 5_000, 'the victim to die');
    expect(exit.signal).toBe('SIGKILL');
    await eventually(() => moving.every((t) => t.landings.length === 2), 10_000, "the victim's tabs to reconnect elsewhere");
    const reconnectedAt = ticker.acknowledged.length;
    await eventually(() => ticker.acknowledged.length >= reconnectedAt + 8, 10_000, 'eight ticks after the reconnects');
    await ticker.stop();
    const { acknowledged, refused } = ticker;

    expect(refused).toEqual([]);
    await eventually(() => tabs.every((t) => acknowledged.every((id) => t.ids.includes(id))), 15_000, 'every acknowledged tick on every tab');
    for (const tab of tabs) {
      expect(tab.deduplicated().sort(), tab.user).toEqual([...acknowledged].sort());
      expect(tab.repeatedWithinAConnection(), tab.user).toEqual([]);
      expect(tab.gaps, tab.user).toEqual([]);
    }
    const others = fleet.nodes.filter((n) => n !== victim).map((n) => n.id);
    expect(moving.flatMap((t) => t.landings.slice(1)).every((id) => others.includes(id))).toBe(true);
    // The other tabs never noticed.
    expect(staying.every((t) => t.landings.length === 1)).toBe(true);
    // What was sent to the dead node's stream while its tabs were away came back through the replay.
    const replayed = (await metricOf(fleet.nodes[0]!.url, 'herald_replayed_total')) + (await metricOf(fleet.nodes[2]!.url, 'herald_replayed_total'));
    expect(replayed).toBeGreaterThan(0);
  });
});
