import { describe, expect, it } from 'vitest';
import type { Bus, MissedHandler } from '../../services/ports/bus';
import { startTestNode } from '../support/start-node';
import { openStream } from '../support/sse-client';

/**
 * A bus that loses what is sent while `dropping` is set, as an SNS→SQS bus
 * whose queue was deleted does, and hands the test the node's MissedHandler.
 */
function lossyBus(inner: Bus): { bus: Bus; dropping: { on: boolean }; missed: () => MissedHandler } {
  const dropping = { on: false };
  let onMissed: MissedHandler | undefined;
  return {
    dropping,
    missed: () => {
      if (!onMissed) throw new Error('the node did not pass a MissedHandler to its bus');
      return onMissed;
    },
    bus: {
      start: (nodeId, onMessage, handler) => {
        onMissed = handler;
        return inner.start(nodeId, onMessage, handler);
      },
      send: (message, target) => (dropping.on ? Promise.resolve() : inner.send(message, target)),
      sendBatch: (entries) => (dropping.on ? Promise.resolve() : inner.sendBatch(entries)),
      close: () => inner.close(),
    },
  };
}

describe('a node whose bus may have lost messages', () => {
  it('closes its streams with closing resync and a short retry; their reconnects replay what the bus lost', async () => {
    let lossy: ReturnType<typeof lossyBus> | undefined;
    const node = await startTestNode({
      env: { HERALD_RETRY_MS: '400' },
      ports: (defaults) => {
        lossy = lossyBus(defaults.bus);
        return { ...defaults, bus: lossy.bus };
      },
    });
    const stream = await openStream(node.url, { token: await node.token('alice'), label: 'alice' });
    await stream.next('ready');
    const first = await node.publish({ to: { users: ['alice'] }, event: 'message', data: { n: 1 } });
    await stream.waitFor((e) => e.id === first.body.id, 'the first event, live');

    lossy!.dropping.on = true;
    const lost = await node.publish({ to: { users: ['alice'] }, event: 'message', data: { n: 2 } });
    expect(lost.status).toBe(202);
    lossy!.dropping.on = false;
    lossy!.missed()();

    const closing = await stream.next('closing');
    expect(JSON.parse(closing.data)).toEqual({ reason: 'resync' });
    expect(closing.retry).toBeGreaterThanOrEqual(200);
    expect(closing.retry).toBeLessThanOrEqual(600);
    await stream.closed();
    expect(stream.notifications().map((e) => e.id)).toEqual([first.body.id]);

    const back = await openStream(node.url, { token: await node.token('alice'), lastEventId: first.body.id as string, label: 'alice again' });
    await back.waitFor((e) => e.id === lost.body.id, 'the lost event, replayed');
    expect(node.logs.some((l) => l.event === 'node.resuming_streams' && l.streams === 1)).toBe(true);
  });
});
