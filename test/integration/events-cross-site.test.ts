/**
 * What another site can make a signed-in browser send to /events: a top-level
 * navigation or an `<img>`, `<iframe>`, `<script>` pointing at it (Fetch
 * Metadata says so), and cookies of the auth cookie's name tossed in from a
 * sibling subdomain. Neither may open a stream, which would take over the
 * user's active tab.
 */
import { describe, expect, it } from 'vitest';
import { connect, sentinel } from '../support/publish-kit';
import { openStream, type SseStream } from '../support/sse-client';
import { startTestNode } from '../support/start-node';

function refusal(stream: SseStream): { error: string; message: string } {
  expect(stream.headers['content-type']).toMatch(/^application\/json/);
  return JSON.parse(stream.body) as { error: string; message: string };
}

describe('GET /events: Sec-Fetch-Dest', () => {
  it.each(['document', 'iframe', 'image', 'script', 'style', 'embed', 'object', 'worker', 'DOCUMENT'])(
    'refuses a request for a %s with 403 fetch_dest_refused, and the active tab stays',
    async (destination) => {
      const node = await startTestNode();
      const active = await connect(node, 'alice', { label: 'the active tab' });

      const stray = await openStream(node.url, { cookie: `herald_token=${await node.token('alice')}`, headers: { 'Sec-Fetch-Dest': destination }, label: destination });

      expect(stray.status).toBe(403);
      expect(refusal(stray).error).toBe('fetch_dest_refused');
      await sentinel(node, ['alice'], [active]);
      expect(active.names()).not.toContain('replaced');
      expect(await node.metric('herald_refusals_total{code="fetch_dest_refused"}')).toBe(1);
    },
  );

  it('refuses a status check for a document the same way', async () => {
    const node = await startTestNode();
    const check = await openStream(node.url, { token: await node.token('alice'), headers: { Accept: 'application/json', 'Sec-Fetch-Dest': 'document' } });
    expect(check.status).toBe(403);
    expect(refusal(check).error).toBe('fetch_dest_refused');
  });

  it('opens the stream for Sec-Fetch-Dest: empty, what EventSource and fetch send', async () => {
    const node = await startTestNode();
    const stream = await connect(node, 'alice', { headers: { 'Sec-Fetch-Dest': 'empty', 'Sec-Fetch-Mode': 'cors', 'Sec-Fetch-Site': 'same-origin' } });
    await sentinel(node, ['alice'], [stream]);
  });

  it('opens the stream for a client that sends no fetch metadata (curl, a server, an older browser)', async () => {
    const node = await startTestNode();
    const stream = await connect(node, 'alice');
    await sentinel(node, ['alice'], [stream]);
  });
});

describe('GET /events: repeated auth cookies', () => {
  it('refuses a request with two herald_token cookies with 401 token_ambiguous, whichever user each names', async () => {
    const node = await startTestNode();
    const active = await connect(node, 'alice', { label: 'the active tab' });
    const tossed = `herald_token=${await node.token('mallory')}; herald_token=${await node.token('alice')}`;

    const stream = await openStream(node.url, { cookie: tossed, label: 'tossed' });

    expect(stream.status).toBe(401);
    expect(refusal(stream).error).toBe('token_ambiguous');
    expect(stream.headers['www-authenticate']).toBe('Bearer realm="herald"');
    await sentinel(node, ['alice'], [active]);
    expect(active.names()).not.toContain('replaced');
  });

  it('refuses two cookies even when they hold the same token', async () => {
    const node = await startTestNode();
    const token = await node.token('alice');
    const stream = await openStream(node.url, { cookie: `herald_token=${token}; theme=dark; herald_token=${token}` });
    expect(stream.status).toBe(401);
    expect(refusal(stream).error).toBe('token_ambiguous');
  });

  it('reads a __Host- cookie named by HERALD_AUTH_COOKIE, and refuses it repeated', async () => {
    const node = await startTestNode({ env: { HERALD_AUTH_COOKIE: '__Host-herald_token' } });
    const token = await node.token('alice');

    const single = await openStream(node.url, { cookie: `herald_token=${await node.token('mallory')}; __Host-herald_token=${token}`, label: 'one __Host- cookie' });
    expect(single.status).toBe(200);
    await sentinel(node, ['alice'], [single]);

    const repeated = await openStream(node.url, { cookie: `__Host-herald_token=${token}; __Host-herald_token=${token}`, label: 'repeated' });
    expect(repeated.status).toBe(401);
    expect(refusal(repeated).error).toBe('token_ambiguous');
  });

  it('uses the Bearer header when one is sent, whatever cookies come with it', async () => {
    const node = await startTestNode();
    const stream = await openStream(node.url, { token: await node.token('alice'), cookie: 'herald_token=a; herald_token=b' });
    expect(stream.status).toBe(200);
    await sentinel(node, ['alice'], [stream]);
  });
});
