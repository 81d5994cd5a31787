/**
 * The ALB stand-in of `npm run cluster` and the cluster tests
 * (scripts/fleet/alb-proxy.ts), against plain `node:http` targets: the cluster
 * tests are only as good as its routing and streaming.
 */
import { createServer, request, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startAlbProxy, type AlbProxy } from '../../scripts/fleet/alb-proxy';
import { withDeadline } from '../../scripts/fleet/deadline';

interface Target {
  readonly name: string;
  readonly url: string;
  readonly server: Server;
  healthStatus: number;
  /** Headers of the last non-health request. */
  lastHeaders: IncomingHttpHeaders | undefined;
  /** The response of the last `/stream` request, for the test to write to. */
  stream: ServerResponse | undefined;
}

const servers: Server[] = [];
const proxies: AlbProxy[] = [];

afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.close()));
  await Promise.all(
    servers.splice(0).map(async (s) => {
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }),
  );
});

async function target(name: string): Promise<Target> {
  const t: Target = { name, url: '', server: createServer(), healthStatus: 200, lastHeaders: undefined, stream: undefined };
  t.server.on('request', (req, res) => {
    if (req.url === '/healthz') {
      res.writeHead(t.healthStatus).end();
      return;
    }
    t.lastHeaders = req.headers;
    if (req.url === '/stream') {
      res.writeHead(200, { 'Content-Type': 'text/event-stream' });
      res.flushHeaders();
      t.stream = res;
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/plain' }).end(name);
  });
  servers.push(t.server);
  await new Promise<void>((resolve) => t.server.listen(0, '127.0.0.1', () => resolve()));
  return Object.assign(t, { url: `http://127.0.0.1:${(t.server.address() as AddressInfo).port}` });
}

async function proxyFor(urls: readonly string[]): Promise<AlbProxy> {
  const proxy = await startAlbProxy({ targets: urls, healthCheckIntervalMs: 60_000 });
  proxies.push(proxy);
  return proxy;
}

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const response = await fetch(url, { headers });
  return { status: response.status, body: await response.text() };
}

describe('the ALB stand-in', () => {
  it('sends each new request to the next healthy target in turn, skipping one whose /healthz fails', async () => {
    const [a, b, c] = await Promise.all([target('a'), target('b'), target('c')]);
    const proxy = await proxyFor([a.url, b.url, c.url]);
    const names = async (n: number): Promise<string[]> => {
      const out: string[] = [];
      for (let i = 0; i < n; i++) out.push((await get(`${proxy.url}/`)).body);
      return out;
    };
    expect(await names(6)).toEqual(['a', 'b', 'c', 'a', 'b', 'c']);

    b.healthStatus = 503;
    await proxy.checkNow();
    expect(proxy.healthy()).toEqual([a.url, c.url]);
    expect(await names(4)).toEqual(['a', 'c', 'a', 'c']);
  });

  it('tries the next target when one refuses the connection, and takes it out of rotation', async () => {
    const [a, b] = await Promise.all([target('a'), target('b')]);
    const proxy = await proxyFor([a.url, b.url]);
    b.server.closeAllConnections();
    await new Promise<void>((resolve) => b.server.close(() => resolve()));

    const answers = [await get(`${proxy.url}/`), await get(`${proxy.url}/`), await get(`${proxy.url}/`)];
    expect(answers).toEqual([0, 1, 2].map(() => ({ status: 200, body: 'a' })));
    expect(proxy.healthy()).toEqual([a.url]);
  });

  it('moves a request on from a target that answers 503 (draining), as the ALB stops routing to a deregistering target', async () => {
    const [a, b] = await Promise.all([target('a'), target('b')]);
    const proxy = await proxyFor([a.url, b.url]);
    a.server.removeAllListeners('request');
    a.server.on('request', (_req, res) => res.writeHead(503, { 'Retry-After': '1' }).end('{"error":"draining"}'));

    expect(await get(`${proxy.url}/`)).toEqual({ status: 200, body: 'b' });
    expect(proxy.healthy()).toEqual([b.url]);
  });

  it('appends the client address to X-Forwarded-For, as the ALB does', async () => {
    const a = await target('a');
    const proxy = await proxyFor([a.url]);
    await get(`${proxy.url}/`, { 'X-Forwarded-For': '203.0.113.7' });
    expect(a.lastHeaders?.['x-forwarded-for']).toBe('203.0.113.7, 127.0.0.1');
    await get(`${proxy.url}/`);
    expect(a.lastHeaders?.['x-forwarded-for']).toBe('127.0.0.1');
  });

  it('streams a response chunk by chunk, and cuts it for the client when the target cuts it', async () => {
    const a = await target('a');
    const proxy = await proxyFor([a.url]);
    const chunks: string[] = [];
    let ended = false;
    let wake: () => void = () => undefined;
    await new Promise<void>((resolve, reject) => {
      const req = request(`${proxy.url}/stream`, (res) => {
        expect(res.headers['content-type']).toBe('text/event-stream');
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          chunks.push(chunk);
          wake();
        });
        res.on('close', () => {
          ended = true;
          wake();
        });
        resolve();
      });
      req.on('error', reject);
      req.end();
    });
    const until = (what: string, check: () => boolean): Promise<void> =>
      withDeadline(
        (async () => {
          while (!check()) await new Promise<void>((resolve) => (wake = resolve));
        })(),
        2_000,
        what,
      );

    // Each chunk arrives before the next is written: nothing waits in a buffer.
    a.stream!.write('data: one\n\n');
    await until('the first chunk', () => chunks.join('').includes('one'));
    a.stream!.write('data: two\n\n');
    await until('the second chunk', () => chunks.join('').includes('two'));
    expect(ended).toBe(false);

    // The node dies mid-stream: the client's stream ends too, so it reconnects.
    a.stream!.socket?.destroy();
    await until('the end of the stream', () => ended);
  });
});
