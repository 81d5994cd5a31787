/**
 * The backing services gone for a few seconds under a running cluster: TCP
 * proxies sit between the node processes and the emulators (fauxqs serves
 * SNS and SQS on one port, dynalite DynamoDB on another) and reset every
 * connection while blocked, as a network partition or a service outage would.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { GetQueueUrlCommand, SetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { nodeQueueName } from '../../services/adapters/aws/bus-naming';
import { buildEntryPoint, type BuiltEntry } from '../support/child-node';
import { startCluster, type Cluster } from '../../scripts/fleet/cluster';
import { connectUser } from '../support/sse-client';
import { eventually } from '../../scripts/fleet/deadline';
import type { SseStream } from '../support/sse-client';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy';
import { startEmulators, unique, type Emulators } from './emulators';

let emulators: Emulators;
let entry: BuiltEntry;
const running: Cluster[] = [];
const links: TcpProxy[] = [];

beforeAll(async () => {
  [emulators, entry] = await Promise.all([startEmulators(), buildEntryPoint()]);
});

afterEach(async () => {
  // By pid, also when the test failed.
  await Promise.all(running.splice(0).map((c) => c.stop()));
  await Promise.all(links.splice(0).map((l) => l.close()));
});

afterAll(async () => {
  await emulators.stop();
  entry.dispose();
});

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const OUTAGE_MS = 3_000;

describe('an outage of SNS, SQS and DynamoDB under a running cluster', () => {
  it('keeps every stream open, recovers on its own, and delivers every publish it acknowledged', async () => {
    const [awsLink, dynamoLink] = await Promise.all([startTcpProxy(emulators.snsEndpoint), startTcpProxy(emulators.dynamoEndpoint)]);
    links.push(awsLink, dynamoLink);
    const label = unique('co');
    const c = await startCluster({
      emulators,
      entry: entry.path,
      nodeIds: ['a', 'b'],
      tableName: `${label}-table`,
      topicName: `${label}-topic`,
      queuePrefix: label,
      // Pings every second, so a stream that is alive shows it during the outage.
      env: { HERALD_CONNECT_RATE_PER_IP: '10000', HERALD_HEARTBEAT_MS: '1000', HERALD_DRAIN_MS: '0' },
      nodeEnv: () => ({ AWS_ENDPOINT_URL_SNS: awsLink.url, AWS_ENDPOINT_URL_SQS: awsLink.url, AWS_ENDPOINT_URL_DYNAMODB: dynamoLink.url }),
    });
    running.push(c);
    // A long poll cut by the outage is still pending inside the emulator (as it may be inside SQS) and
    // takes the next messages with it; they come back after the visibility timeout. 2 s instead of 30 s
    // keeps that wait inside this test's budget; it changes when they come back, not whether.
    for (const id of ['a', 'b']) {
      const { QueueUrl } = await emulators.sqs.send(new GetQueueUrlCommand({ QueueName: nodeQueueName(c.queuePrefix, id) }));
      await emulators.sqs.send(new SetQueueAttributesCommand({ QueueUrl, Attributes: { VisibilityTimeout: '2' } }));
    }
    const alice = (await connectUser(c.node('a').url, await c.token('alice'), 'alice on a')).stream;
    const bob = (await connectUser(c.node('b').url, await c.token('bob'), 'bob on b')).stream;

    // Publishes for both users, through A and B in turn, for the whole test.
    const acknowledged: string[] = [];
    const refused: string[] = [];
    const state = { publishing: true, unblockedAt: Infinity, acknowledgedAfterOutage: 0 };
    const publisher = (async () => {
      for (let n = 0; state.publishing; n++) {
        const startedAt = Date.now();
        const answer = await c.nodes[n % 2]!.publish({ to: { users: ['alice', 'bob'] }, event: 'message', data: { n } });
        if (answer.status === 202) {
          acknowledged.push(String(answer.body.id));
          if (startedAt > state.unblockedAt) state.acknowledgedAfterOutage++;
        } else {
          refused.push(`${answer.status} ${String(answer.body.error)}`);
        }
        await sleep(50);
      }
    })();

    await eventually(() => acknowledged.length >= 5, 5_000, 'five publishes before the outage');
    awsLink.block();
    dynamoLink.block();
    const blockedAt = Date.now();
    const pings = (s: SseStream): number => s.events.filter((e) => e.event === 'ping').length;
    const pingsBefore = [pings(alice), pings(bob)];
    await sleep(OUTAGE_MS);
    awsLink.unblock();
    dynamoLink.unblock();
    state.unblockedAt = Date.now();
    const pingsDuring = [pings(alice) - pingsBefore[0]!, pings(bob) - pingsBefore[1]!];

    await eventually(() => state.acknowledgedAfterOutage >= 5, 15_000, 'five acknowledged publishes after the outage');
    state.publishing = false;
    await publisher;

    // Nothing acknowledged was lost: each reached both users (repeats allowed, the client drops them by id).
    const has = (s: SseStream, id: string): boolean => s.events.some((e) => e.id === id);
    await eventually(() => acknowledged.every((id) => has(alice, id) && has(bob, id)), 20_000, 'every acknowledged publish on both streams');
    // Refused while it could not store or send: 503 unavailable, never a 500 or an acknowledged loss.
    expect(refused.length).toBeGreaterThan(0);
    expect(new Set(refused)).toEqual(new Set(['503 unavailable']));
    // The streams never ended, and heartbeats kept flowing while the services were away.
    expect(alice.ended || bob.ended).toBe(false);
    expect(pingsDuring.every((n) => n >= 2), `pings during the outage: ${pingsDuring.join(', ')}`).toBe(true);
    for (const node of c.nodes) {
      const events = node.process.logs.map((l) => l.event);
      expect(events, node.id).toContain('bus.receive_failed');
      expect(events, node.id).toContain('bus.recovered');
      expect(node.process.exit, node.id).toBeUndefined();
    }
    expect(state.unblockedAt - blockedAt).toBeGreaterThanOrEqual(OUTAGE_MS);
  });

  // docs/architecture.md, "Single-tab takeover across nodes": the old tab, on any node, receives `replaced`; a bus outage is retried with backoff.
  it('tells the old tab it was replaced once SNS is back, when the takeover came during an SNS outage', async () => {
    const snsLink = await startTcpProxy(emulators.snsEndpoint);
    links.push(snsLink);
    const label = unique('co');
    const c = await startCluster({
      emulators,
      entry: entry.path,
      nodeIds: ['a', 'b'],
      tableName: `${label}-table`,
      topicName: `${label}-topic`,
      queuePrefix: label,
      env: { HERALD_CONNECT_RATE_PER_IP: '10000', HERALD_DRAIN_MS: '0' },
      // Only node B's SNS calls (its sends) go through the link; queues and DynamoDB stay reachable.
      nodeEnv: (id): Record<string, string> => (id === 'b' ? { AWS_ENDPOINT_URL_SNS: snsLink.url } : {}),
    });
    running.push(c);
    const first = await connectUser(c.node('a').url, await c.token('alice'), 'alice tab 1 on a');

    snsLink.block();
    // The claim (DynamoDB) succeeds; the `replace` for tab 1 cannot be sent to A.
    await connectUser(c.node('b').url, await c.token('alice'), 'alice tab 2 on b');
    await eventually(() => c.node('b').process.logs.some((l) => l.event === 'connection.replace_retrying'), 10_000, 'B to retry sending the replace');
    expect(first.stream.names()).not.toContain('replaced');
    snsLink.unblock();

    // SNS works again: B's retry gets through and tab 1 is told, then its stream ends.
    await first.stream.next('replaced', { timeoutMs: 20_000 });
    await first.stream.closed(5_000);
    expect(c.node('b').process.logs.some((l) => l.event === 'connection.replace_failed')).toBe(false);
  });
});
