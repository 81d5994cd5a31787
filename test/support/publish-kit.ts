import { expect } from 'vitest';
import { MemoryNetwork } from '../../services/adapters/memory/memory-bus';
import type { Ports } from '../../services/node/compose';
import { openStream, type SseStream, type StreamOptions } from './sse-client';
import { startTestNode, type TestNode, type TestNodeOptions } from './start-node';

/** Opens `GET /events` for `userId` and waits for `ready`: from then on the node has claimed the stream. */
export async function connect(node: TestNode, userId: string, options: StreamOptions = {}): Promise<SseStream> {
  const stream = await openStream(node.url, { token: await node.token(userId), label: userId, ...options });
  expect(stream.status, `GET /events for ${userId}: ${stream.body}`).toBe(200);
  await stream.next('ready');
  return stream;
}

let sentinels = 0;

/**
 * Publishes a `sentinel` event to `users` through `via` and waits for it on
 * every stream. The memory bus keeps order per sender, so anything published
 * before it that was going to reach those streams has arrived by then: this is
 * how a test says "nothing else came" without sleeping.
 */
export async function sentinel(via: TestNode, users: readonly string[], streams: readonly SseStream[]): Promise<string> {
  const answer = await via.publish({ to: { users }, event: 'sentinel', data: { n: ++sentinels } });
  expect(answer.status, JSON.stringify(answer.body)).toBe(202);
  const id = String(answer.body.id);
  await Promise.all(streams.map((s) => s.waitFor((e) => e.id === id, `the sentinel ${id}`)));
  return id;
}

/** Ids of the notifications a stream carried, in order, without sentinels. */
export function idsOf(stream: SseStream): string[] {
  return stream.notifications().filter((e) => e.event !== 'sentinel').map((e) => e.id ?? '');
}

/**
 * `{ text }` whose serialized JSON is exactly `bytes` UTF-8 bytes, with 4-byte
 * and 2-byte characters in it so a count in UTF-16 units would be wrong.
 */
export function dataOfBytes(bytes: number): { text: string } {
  const overhead = Buffer.byteLength(JSON.stringify({ text: '' }));
  const rest = bytes - overhead - 4 * 100 - 2 * 100;
  if (rest < 0) throw new Error(`dataOfBytes needs at least ${overhead + 600} bytes`);
  const data = { text: '👋'.repeat(100) + 'é'.repeat(100) + 'a'.repeat(rest) };
  if (Buffer.byteLength(JSON.stringify(data)) !== bytes) throw new Error('dataOfBytes miscounted');
  return data;
}

export interface NodePair {
  readonly network: MemoryNetwork;
  readonly a: TestNode;
  readonly b: TestNode;
}

/**
 * Two nodes as one deployment in one process: one bus network, and B uses A's
 * Owners and History (as every node shares the DynamoDB table in the aws
 * shape). Sharing the network alone is not enough: a publisher on A would not
 * see a user connected to B.
 */
export async function startNodePair(options: { a?: TestNodeOptions; b?: Omit<TestNodeOptions, 'ports'> } = {}): Promise<NodePair> {
  const network = new MemoryNetwork();
  const a = await startTestNode({ nodeId: 'node-a', ...options.a, network });
  const b = await startTestNode({
    nodeId: 'node-b',
    ...options.b,
    network,
    ports: (defaults: Ports): Ports => ({ ...defaults, owners: a.ports.owners, history: a.ports.history }),
  });
  return { network, a, b };
}
