/**
 * The demo page through the AWS shape (`npm run cluster`): its sign-in and
 * send are answered beside the proxy (scripts/fleet/cluster-demo.ts), streams
 * and the client bundle come from the aws-mode nodes, and a message sent from
 * one user's page reaches the other's stream through DynamoDB, SNS and SQS.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAwsPublishing } from '../../services/publisher/create-publisher';
import { silentLogger } from '../../services/shared/log';
import { buildEntryPoint, type BuiltEntry } from '../support/child-node';
import { clusterDemo, type ClusterDemo } from '../../scripts/fleet/cluster-demo';
import { startCluster, type Cluster } from '../../scripts/fleet/cluster';
import { openStream } from '../support/sse-client';
import { TEST_SECRET } from '../support/tokens';
import { startEmulators, unique, type Emulators } from './emulators';

let emulators: Emulators;
let entry: BuiltEntry;
let cluster: Cluster;
let demo: ClusterDemo;

beforeAll(async () => {
  [emulators, entry] = await Promise.all([startEmulators(), buildEntryPoint()]);
  const label = unique('cd');
  const names = { tableName: `${label}-table`, topicName: `${label}-topic` };
  // The demo needs the topic's ARN, which the cluster makes: the proxy is given the demo's routes once both exist.
  const topicArn = await emulators.createTopic(names.topicName);
  demo = clusterDemo({
    secret: TEST_SECRET,
    publishing: createAwsPublishing({ topicArn, tableName: names.tableName, clients: emulators, log: silentLogger }),
    log: silentLogger,
  });
  cluster = await startCluster({
    emulators,
    entry: entry.path,
    nodeIds: ['a', 'b'],
    ...names,
    queuePrefix: label,
    // The demo signs its sessions with this key: the nodes must accept them.
    secret: TEST_SECRET,
    env: { HERALD_CONNECT_RATE_PER_IP: '10000', HERALD_TRUST_PROXY: 'true' },
    proxy: { healthCheckIntervalMs: 250, local: demo.local },
  });
});

afterAll(async () => {
  await cluster.stop();
  await demo.close();
  await emulators.stop();
  entry.dispose();
});

async function signIn(user: string): Promise<string> {
  const response = await fetch(new URL('/dev/login', cluster.proxy!.url), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ user }),
  });
  expect(response.status).toBe(200);
  const cookie = response.headers.get('set-cookie') ?? '';
  expect(cookie).toMatch(/^herald_token=[^;]+; Path=\/; HttpOnly; SameSite=Strict/);
  return cookie.split(';')[0]!;
}

describe('the demo page through the cluster', () => {
  it('serves the page beside the proxy and the client bundle from the nodes', async () => {
    const page = await fetch(new URL('/', cluster.proxy!.url));
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('/herald-client.js');
    const bundle = await fetch(new URL('/herald-client.js', cluster.proxy!.url));
    expect(bundle.status).toBe(200);
    expect(bundle.headers.get('content-type')).toMatch(/javascript/);
    // The nodes themselves still refuse the demo: they are in aws mode.
    expect((await fetch(new URL('/', cluster.node('a').url))).status).toBe(404);
  });

  it('delivers a message sent from one signed-in user to the other, through the nodes, SNS and SQS', async () => {
    const [alice, bob] = [await signIn('alice'), await signIn('bob')];
    const stream = await openStream(cluster.proxy!.url, { cookie: bob, label: 'bob through the proxy' });
    expect(stream.status).toBe(200);
    await stream.next('ready');

    const sent = await fetch(new URL('/dev/send', cluster.proxy!.url), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Cookie: alice },
      body: JSON.stringify({ kind: 'message', to: 'bob', text: 'Hello from the cluster 👋' }),
    });
    expect(sent.status).toBe(202);
    const answer = (await sent.json()) as { id: string; online: number };
    expect(answer.online).toBe(1);
    const message = await stream.waitFor((e) => e.id === answer.id, 'the message on bob’s stream', { timeoutMs: 5000 });
    expect(JSON.parse(message.data)).toEqual({ fromUserId: 'alice', text: 'Hello from the cluster 👋' });
  });

  it('refuses a send without a session, as the dev-mode node does', async () => {
    const sent = await fetch(new URL('/dev/send', cluster.proxy!.url), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ kind: 'message', to: 'bob', text: 'hi' }),
    });
    expect(sent.status).toBe(401);
    expect(await sent.json()).toMatchObject({ error: 'token_missing' });
  });
});
