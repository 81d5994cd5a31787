/**
 * Redis killed under a running fleet and started again, empty, on the same
 * port, while publishes keep coming: every publish is either acknowledged and
 * then delivered (live or by the replay) or refused with 503 `unavailable`;
 * what the emptied Redis took with it is announced in band as a `gap`, never
 * lost silently. Streams stay open through the outage, `/healthz` says 503
 * then 200, and the nodes put back their heartbeats, bus streams and claims
 * by themselves.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isEventId } from '../../services/protocol/event-id';
import { buildEntryPoint, type BuiltEntry } from '../support/child-node';
import type { ClusterNode } from '../../scripts/fleet/cluster';
import { eventually } from '../../scripts/fleet/deadline';
import { ReconnectingTab } from '../support/reconnecting-tab';
import { startRedisFleet, type RedisFleet } from '../../scripts/fleet/redis-fleet';
import { startRedisServer, type RedisServer } from '../../scripts/fleet/redis-server';

let entry: BuiltEntry;
let redis: RedisServer | undefined;
let fleet: RedisFleet | undefined;
let publisher: Publisher | undefined;
const tabs: ReconnectingTab[] = [];

beforeAll(async () => {
  entry = await buildEntryPoint();
});

afterEach(async () => {
  await publisher?.stop();
  await Promise.all(tabs.splice(0).map((t) => t.close()));
  // By pid, also when the test failed.
  await fleet?.stop();
  await redis?.stop();
});

afterAll(() => entry.dispose());

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Answer {
  readonly id: string | undefined;
  readonly status: number;
  readonly error: string | undefined;
  readonly startedAtMs: number;
}

/** Publishes a tick for the users of the moment, on each node in turn, until stopped; keeps every answer. */
class Publisher {
  readonly answers: Answer[] = [];
  private stopped = false;
  private readonly loop: Promise<void>;

  constructor(nodes: readonly ClusterNode[], users: () => readonly string[]) {
    this.loop = (async () => {
      for (let n = 0; !this.stopped; n++) {
        const startedAtMs = Date.now();
        try {
          const answer = await nodes[n % nodes.length]!.publish({ to: { users: users() }, event: 'tick', data: { n } });
          const id = typeof answer.body.id === 'string' ? answer.body.id : undefined;
          this.answers.push({ id, status: answer.status, error: typeof answer.body.error === 'string' ? answer.body.error : undefined, startedAtMs });
        } catch (error) {
          // No answer at all: as much a failure as a 500, and reported the same way.
          this.answers.push({ id: undefined, status: 0, error: String(error), startedAtMs });
        }
        await sleep(25);
      }
    })();
  }

  acknowledged(after = 0): string[] {
    return this.answers.filter((a) => a.status === 202 && a.startedAtMs >= after).map((a) => a.id!);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}

async function health(node: ClusterNode): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(new URL('/healthz', node.url), { signal: AbortSignal.timeout(2_000) });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe('Redis restarting empty under a running fleet', () => {
  it('refuses publishes with 503 while it is away, keeps the streams open, then recovers: nothing acknowledged is lost silently', async () => {
    redis = await startRedisServer();
    const server = redis;
    // Pings every second, so a stream that is alive shows it during the outage.
    fleet = await startRedisFleet({ entry: entry.path, redis: { url: server.url }, nodes: 3, env: { HERALD_RETRY_MS: '300', HERALD_HEARTBEAT_MS: '1000', HERALD_DRAIN_MS: '0' } });
    const { nodes } = fleet;
    const users = ['u1', 'u2', 'u3', 'u4', 'u5', 'u6'];
    // Two tabs on each node, straight to it: a resync brings each back to the node it left.
    for (const [i, u] of users.entries()) tabs.push(new ReconnectingTab(nodes[i % 3]!.url, await fleet.token(u), u));
    await eventually(() => tabs.every((t) => t.connections.length === 1 && t.connections[0]!.names().includes('ready')), 10_000, 'every tab to be ready');
    // Until the restart, nothing for the users of node 3 (u3, u6): its bus stream stays empty, so
    // only the emptied epoch can tell it that its heartbeat and their claims are gone.
    const phase = { restarted: false };
    publisher = new Publisher(nodes, () => (phase.restarted ? users : ['u1', 'u2', 'u4', 'u5']));
    const { answers } = publisher;
    const acknowledged = (after?: number): string[] => publisher!.acknowledged(after);
    await eventually(() => acknowledged().length >= 5, 10_000, 'five publishes before the outage');

    // Redis goes away.
    await server.kill();
    const killedAt = Date.now();
    await eventually(() => answers.some((a) => a.startedAtMs > killedAt && a.status === 503), 10_000, 'a publish refused while Redis is away');
    for (const node of nodes) {
      await eventually(async () => (await health(node)).status === 503, 5_000, `/healthz of ${node.id} to answer 503`);
      expect((await health(node)).body).toEqual({ status: 'unavailable', reason: 'redis', nodeId: node.id });
    }
    // The streams stay open while the nodes try again: each gets two pings meanwhile.
    const pings = tabs.map((t) => t.events('ping').length);
    await eventually(() => tabs.every((t, i) => t.events('ping').length >= pings[i]! + 2), 10_000, 'two pings on every stream during the outage');
    expect(tabs.map((t) => t.connections.length)).toEqual(users.map(() => 1));
    expect(tabs.map((t) => t.ended())).toEqual(users.map(() => 0));

    // Back, empty, on the same port.
    await server.start();
    const restartedAt = Date.now();
    phase.restarted = true;
    await eventually(() => acknowledged(restartedAt).length > 0, 10_000, 'a publish acknowledged after the restart');
    const firstAckMs = answers.find((a) => a.status === 202 && a.startedAtMs >= restartedAt)!.startedAtMs - restartedAt;
    for (const node of nodes) await eventually(async () => (await health(node)).status === 200, 10_000, `/healthz of ${node.id} to answer 200 again`);
    // Each stream is told to resync, comes back from its position and hears that the history behind it is gone.
    await eventually(() => tabs.every((t) => t.gaps().length > 0), 10_000, 'a gap on every tab');
    const recoveredAt = Date.now();
    await eventually(() => acknowledged(recoveredAt).length >= 10, 10_000, 'ten publishes after the recovery');
    await publisher.stop();

    // Every answer is an acknowledgement or a 503 unavailable: never a 500, never a silent loss.
    const refusals = answers.filter((a) => a.status !== 202);
    expect(refusals.length).toBeGreaterThan(0);
    expect(new Set(refusals.map((a) => `${a.status} ${a.error}`))).toEqual(new Set(['503 unavailable']));
    expect(firstAckMs).toBeLessThan(10_000);

    const afterRestart = new Set(acknowledged(restartedAt));
    await eventually(() => tabs.every((t) => [...afterRestart].every((id) => t.ids().includes(id))), 10_000, 'every publish acknowledged after the restart on every tab');
    for (const tab of tabs) {
      const received = new Set(tab.ids());
      const gaps = tab.gaps();
      // Acknowledged before the outage and not received: only behind a gap announced from a position before it.
      const lost = acknowledged().filter((id) => !received.has(id) && !afterRestart.has(id));
      for (const id of lost) expect(gaps.some((g) => isEventId(g.lastEventId) && g.lastEventId < id), `${tab.user}: ${id} missing without a gap`).toBe(true);
      expect(gaps.map((g) => g.reason), tab.user).toEqual(gaps.map(() => 'history_trimmed'));
      expect(tab.closings(), tab.user).toContain('resync');
      expect(tab.repeatedWithinAConnection(), tab.user).toEqual([]);
      // Never refused while coming back: the node resyncs only once it can claim again.
      expect(tab.refusals, tab.user).toEqual([]);
    }
    for (const node of nodes) {
      const events = node.process.logs.map((l) => l.event);
      expect(events, node.id).toEqual(expect.arrayContaining(['redis.unreachable', 'redis.emptied', 'redis.reachable', 'node.resuming_streams']));
      expect(node.process.exit, node.id).toBeUndefined();
    }
  });
});
