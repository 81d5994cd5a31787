/**
 * The `retry:` a stream opens with is drawn per connection (docs/protocol.md, "`retry:` and its jitter"),
 * so a fleet of clients cut off together does not reconnect together.
 * events-stream.test.ts checks each value lies within ±50 % of HERALD_RETRY_MS;
 * a constant would pass that too, so this checks the values differ and spread.
 */
import { describe, expect, it } from 'vitest';
import { startTestNode } from '../support/start-node';
import { openStream } from '../support/sse-client';

const RETRY_MS = 4000;
const STREAMS = 10;

describe('GET /events retry jitter', () => {
  it('announces a different retry on each of several streams, spread across the ±50 % band rather than bunched', async () => {
    const node = await startTestNode({ env: { HERALD_RETRY_MS: String(RETRY_MS), HERALD_TAB_POLICY: 'multi', HERALD_MAX_TABS: String(STREAMS) } });
    const token = await node.token('alice');
    const streams = await Promise.all(Array.from({ length: STREAMS }, (_, i) => openStream(node.url, { token, label: `tab ${i}` })));
    const retries: number[] = [];
    for (const stream of streams) {
      expect(stream.status).toBe(200);
      const ready = await stream.next('ready');
      expect(ready.retry, `retry before ready on ${stream.label}`).toBeDefined();
      retries.push(ready.retry!);
      stream.close();
    }

    for (const retry of retries) {
      expect(retry).toBeGreaterThanOrEqual(RETRY_MS * 0.5);
      expect(retry).toBeLessThanOrEqual(RETRY_MS * 1.5);
    }
    // Ten uniform draws from the 4001 whole milliseconds of 2000..6000: two or more
    // repeats happen about once in 16,000 runs, and the draws all falling within a
    // quarter of the band (1000 ms) about once in 34,000.
    expect(new Set(retries).size, `distinct retries among ${retries.join(', ')}`).toBeGreaterThanOrEqual(STREAMS - 1);
    expect(Math.max(...retries) - Math.min(...retries), `spread of ${retries.join(', ')}`).toBeGreaterThanOrEqual(RETRY_MS / 4);
  });
});
