import { describe, expect, it } from 'vitest';
import { MemoryBus, MemoryNetwork } from '../../services/adapters/memory/memory-bus';
import { startTestNode } from '../support/start-node';
import { openStream } from '../support/sse-client';
import { eventually } from '../../scripts/fleet/deadline';

describe('a drain message on the bus (the task is being deregistered)', () => {
  it('starts the drain: health turns 503 and open streams close with `closing` draining', async () => {
    const network = new MemoryNetwork();
    const node = await startTestNode({ network, env: { HERALD_DRAIN_MS: '8000' } });
    const stream = await openStream(node.url, { token: await node.token('alice'), label: 'alice' });
    await stream.next('ready');

    const notifier = new MemoryBus(network);
    await notifier.send({ kind: 'drain' }, { node: node.node.nodeId });

    await eventually(async () => (await fetch(new URL('/healthz', node.url))).status === 503, 2000, '/healthz to turn 503');
    // The early drain spreads closes over the window minus a margin (8 s − 7 s here).
    const closing = await stream.next('closing', { timeoutMs: 3000 });
    expect(JSON.parse(closing.data)).toEqual({ reason: 'draining' });
    await stream.closed();
    await notifier.close();
  });
});
