/**
 * `--url`: a node someone else started, on this machine. Memory and CPU come
 * from its /metrics, so memory is whatever the heap holds at that moment (no
 * forced GC): expect a noisier per-connection figure than the local shape's.
 */
import { HttpPublisher, getText, parseMetrics } from './publisher';
import type { NodeUnderTest } from './shape';

export function attachToUrl(url: string, publishToken: string, publishers: number): NodeUnderTest {
  const publisher = new HttpPublisher(url, publishToken, publishers);
  const metrics = async (): Promise<Map<string, number>> => parseMetrics(await getText(new URL('/metrics', url).href));
  const read = (values: Map<string, number>, name: string): number => {
    const value = values.get(name);
    if (value === undefined) throw new Error(`${url}/metrics has no ${name}`);
    return value;
  };
  return {
    url,
    description: `existing node at ${url} (memory and CPU from /metrics, no forced GC)`,
    publish: (body) => publisher.post(JSON.stringify(body)),
    memory: async () => {
      const values = await metrics();
      return { rss: read(values, 'process_resident_memory_bytes'), heapUsed: read(values, 'nodejs_heap_used_bytes'), afterGc: false };
    },
    cpu: async () => ({ totalUs: read(await metrics(), 'process_cpu_seconds_total') * 1e6 }),
    counters: metrics,
    stop: () => {
      publisher.close();
      return Promise.resolve();
    },
  };
}
