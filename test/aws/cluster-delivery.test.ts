/**
 * Several nodes of the built entry (dist/herald-node.mjs, as the container
 * runs it) as separate processes in aws mode, on the in-process emulators:
 * what crosses processes through SNS, SQS and DynamoDB — delivery, targeted
 * routing, the single-tab takeover and presence in the publish answer.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { GetQueueAttributesCommand, GetQueueUrlCommand } from '@aws-sdk/client-sqs';
import { nodeQueueName } from '../../services/adapters/aws/bus-naming';
import { buildEntryPoint, type BuiltEntry } from '../support/child-node';
import { startCluster, type Cluster } from '../../scripts/fleet/cluster';
import { connectUser } from '../support/sse-client';
import { eventually } from '../../scripts/fleet/deadline';
import { openStream, type SseStream } from '../support/sse-client';
import { startEmulators, unique, type Emulators } from './emulators';
import { metricOf } from '../support/prometheus-text';

let emulators: Emulators;
let entry: BuiltEntry;
const running: Cluster[] = [];

beforeAll(async () => {
  [emulators, entry] = await Promise.all([startEmulators(), buildEntryPoint()]);
});

afterEach(async () => {
  // By pid, also when the test failed.
  await Promise.all(running.splice(0).map((c) => c.stop()));
});

afterAll(async () => {
  await emulators.stop();
  entry.dispose();
});

/** Nodes with these ids, on a topic, table and queue prefix of this test's own. */
async function cluster(nodeIds: readonly string[]): Promise<Cluster> {
  const label = unique('cd');
  const started = await startCluster({
    emulators,
    entry: entry.path,
    nodeIds,
    tableName: `${label}-table`,
    topicName: `${label}-topic`,
    queuePrefix: label,
    env: { HERALD_CONNECT_RATE_PER_IP: '10000', HERALD_DRAIN_MS: '0' },
  });
  running.push(started);
  return started;
}

async function connect(c: Cluster, nodeId: string, userId: string): Promise<SseStream> {
  const { stream, nodeId: landed } = await connectUser(c.node(nodeId).url, await c.token(userId), `${userId} on ${nodeId}`);
  expect(landed).toBe(nodeId);
  return stream;
}

const notificationIds = (stream: SseStream): string[] => stream.notifications().map((e) => e.id ?? '');

describe('a cluster of node processes on SNS, SQS and DynamoDB', () => {
  it('delivers an event published on node A to a user whose stream is on node B', async () => {
    const c = await cluster(['a', 'b']);
    const bob = await connect(c, 'b', 'bob');

    const answer = await c.node('a').publish({ to: { users: ['bob'] }, event: 'message', data: { text: 'from A' } });

    expect(answer.status).toBe(202);
    expect(answer.body).toMatchObject({ recipients: 1, online: 1, offline: [] });
    const received = await bob.waitFor((e) => e.id === answer.body.id, 'the message published on A', { timeoutMs: 5_000 });
    expect(received.event).toBe('message');
    expect(JSON.parse(received.data)).toEqual({ text: 'from A' });
  });

  it('sends an event for a user on node A to A alone: B handles only the sentinel meant for its own user', async () => {
    const c = await cluster(['a', 'b']);
    const alice = await connect(c, 'a', 'alice');
    const bob = await connect(c, 'b', 'bob');

    // Published through B, so not even the publishing node hears of them.
    const ids: string[] = [];
    for (let n = 0; n < 5; n++) {
      const answer = await c.node('b').publish({ to: { users: ['alice'] }, event: 'message', data: { n } });
      expect(answer.status).toBe(202);
      ids.push(String(answer.body.id));
    }
    await alice.waitFor(() => ids.every((id) => notificationIds(alice).includes(id)), 'the five events for alice', { timeoutMs: 5_000 });

    // SNS filters at publish: anything routed to B's queue was queued before this sentinel and is handled by the time it arrives.
    const sentinel = await c.node('b').publish({ to: { users: ['bob'] }, event: 'sentinel', data: {} });
    await bob.waitFor((e) => e.id === sentinel.body.id, 'the sentinel for bob', { timeoutMs: 5_000 });

    expect(await metricOf(c.node('a').url, 'herald_bus_messages_total')).toBe(5);
    expect(await metricOf(c.node('b').url, 'herald_bus_messages_total')).toBe(1);
    expect(await metricOf(c.node('b').url, 'herald_deliveries_total')).toBe(1);
    expect(notificationIds(bob)).toEqual([sentinel.body.id]);
    const { QueueUrl } = await emulators.sqs.send(new GetQueueUrlCommand({ QueueName: nodeQueueName(c.queuePrefix, 'b') }));
    // Handled messages are deleted in pooled batches, within a fraction of a second.
    await eventually(
      async () => {
        const { Attributes } = await emulators.sqs.send(
          new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }),
        );
        return Attributes?.ApproximateNumberOfMessages === '0' && Attributes.ApproximateNumberOfMessagesNotVisible === '0';
      },
      5_000,
      "node B's queue empty",
    );
  });

  it('broadcasts to the users of every node', async () => {
    const c = await cluster(['a', 'b', 'c']);
    const streams = await Promise.all([connect(c, 'a', 'alice'), connect(c, 'b', 'bob'), connect(c, 'c', 'carol')]);

    const answer = await c.node('b').publish({ to: { all: true }, event: 'announcement', data: { text: 'to everyone' } });

    expect(answer.body).toMatchObject({ recipients: 'all', online: null });
    await Promise.all(streams.map((s) => s.waitFor((e) => e.id === answer.body.id, 'the broadcast', { timeoutMs: 5_000 })));
  });

  it('replaces a tab on node A when the same user opens one on node B, and answers the old tab\'s reconnect 204 on any node', async () => {
    const c = await cluster(['a', 'b']);
    const first = await connectUser(c.node('a').url, await c.token('alice'), 'alice tab 1 on a');
    const second = await connectUser(c.node('b').url, await c.token('alice'), 'alice tab 2 on b');

    const replaced = await first.stream.next('replaced', { timeoutMs: 5_000 });
    expect(replaced.id).toBe(`replaced:${first.connectionId}`);
    expect(JSON.parse(replaced.data)).toEqual({ connectionId: first.connectionId });
    await first.stream.closed(5_000);

    // What EventSource does next: reconnect with the id of the last event, here the `replaced` one.
    for (const node of c.nodes) {
      const reconnect = await openStream(node.url, { token: await c.token('alice'), lastEventId: replaced.id, label: `tab 1 reconnecting to ${node.id}` });
      expect(reconnect.status, `on ${node.id}`).toBe(204);
    }

    // The new tab is the one that receives, wherever the publish comes from.
    const answer = await c.node('a').publish({ to: { users: ['alice'] }, event: 'message', data: { n: 1 } });
    expect(answer.body).toMatchObject({ online: 1, offline: [] });
    await second.stream.waitFor((e) => e.id === answer.body.id, 'the message on the new tab', { timeoutMs: 5_000 });
    expect(second.stream.ended).toBe(false);
    expect(first.stream.notifications().map((e) => e.id)).toEqual([]);
  });

  it('answers a publish with who is online on any node, and who is not, also after a user leaves', async () => {
    const c = await cluster(['a', 'b', 'c']);
    const alice = await connect(c, 'a', 'alice');
    const bob = await connect(c, 'b', 'bob');

    const answer = await c.node('c').publish({ to: { users: ['alice', 'bob', 'dave'] }, event: 'message', data: { n: 1 } });

    expect(answer.status).toBe(202);
    expect(answer.body).toMatchObject({ recipients: 3, online: 2, offline: ['dave'] });
    await alice.waitFor((e) => e.id === answer.body.id, 'the message for alice', { timeoutMs: 5_000 });
    await bob.waitFor((e) => e.id === answer.body.id, 'the message for bob', { timeoutMs: 5_000 });

    // bob closes his tab; node B releases his record, and presence says so.
    bob.close();
    await eventually(
      async () => {
        const probe = await c.node('c').publish({ to: { users: ['alice', 'bob'] }, event: 'probe', data: {}, ttl: 0 });
        return probe.body.online === 1 && JSON.stringify(probe.body.offline) === '["bob"]';
      },
      5_000,
      'bob to be reported offline after his stream closed',
    );
  });
});
