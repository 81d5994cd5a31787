import { readFileSync } from 'node:fs';
import { SignJWT } from 'jose';
import { describe, expect, it, onTestFinished } from 'vitest';
import { startTestNode } from '../support/start-node';
import { openStream } from '../support/sse-client';
import { buildEntryPoint, spawnChildNode } from '../support/child-node';
import { startDevNode } from './support/dev-node';

const root = new URL('../../', import.meta.url).pathname;
const DEV_PATHS: Array<[string, string]> = [
  ['GET', '/'],
  ['GET', '/demo.js'],
  ['GET', '/demo.css'],
  ['POST', '/dev/login'],
  ['POST', '/dev/logout'],
  ['GET', '/dev/me'],
  ['POST', '/dev/send'],
];

async function login(url: string, user: string): Promise<{ cookie: string; token: string; setCookie: string }> {
  const response = await fetch(new URL('/dev/login', url), { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ user }) });
  expect(response.status).toBe(200);
  const setCookie = response.headers.get('set-cookie') ?? '';
  const token = /^herald_token=([^;]+)/.exec(setCookie)?.[1];
  if (token === undefined) throw new Error(`no herald_token cookie in ${setCookie}`);
  return { cookie: `herald_token=${token}`, token, setCookie };
}

async function send(url: string, cookie: string | undefined, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(new URL('/dev/send', url), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(cookie === undefined ? {} : { Cookie: cookie }) },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe('dev routes and the client asset', () => {
  it('serves none of the demo or /dev/* when a JWT secret is set', async () => {
    const node = await startTestNode();
    expect(node.config.dev).toBe(false);
    for (const [method, path] of DEV_PATHS) {
      const response = await fetch(new URL(path, node.url), { method, headers: { 'Content-Type': 'application/json' }, ...(method === 'POST' ? { body: '{"user":"eve"}' } : {}) });
      const body = (await response.json()) as { error?: string };
      expect({ method, path, status: response.status, error: body.error }).toEqual({ method, path, status: 404, error: 'not_found' });
      expect(response.headers.get('set-cookie')).toBeNull();
    }
  });

  it('serves /herald-client.js in every mode, cached for a day outside dev mode and revalidated by ETag', async () => {
    const node = await startTestNode();
    const response = await fetch(new URL('/herald-client.js', node.url));
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(response.headers.get('cache-control')).toBe('public, max-age=86400');
    expect(response.headers.get('access-control-allow-origin')).toBe('*');
    const body = await response.text();
    expect(body).toBe(readFileSync(`${root}dist/herald-client.js`, 'utf8'));
    expect(body).toContain('createHeraldClient');
    const etag = response.headers.get('etag');
    expect(etag).toMatch(/^"[A-Za-z0-9_-]{27}"$/);

    const again = await fetch(new URL('/herald-client.js', node.url), { headers: { 'If-None-Match': etag! } });
    expect(again.status).toBe(304);
    expect(again.headers.get('etag')).toBe(etag);
    expect(await again.text()).toBe('');
    const other = await fetch(new URL('/herald-client.js', node.url), { headers: { 'If-None-Match': '"stale"' } });
    expect(other.status).toBe(200);

    const post = await fetch(new URL('/herald-client.js', node.url), { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET');
  });

  it('serves the demo page in dev mode, same-origin only by its CSP, and the client always revalidated', async () => {
    const node = await startDevNode();
    const page = await fetch(new URL('/', node.url));
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(await page.text()).toContain('<script type="module" src="/demo.js">');
    const script = await fetch(new URL('/demo.js', node.url));
    expect(await script.text()).toContain("from '/herald-client.js'");
    expect((await fetch(new URL('/demo.css', node.url))).headers.get('content-type')).toBe('text/css; charset=utf-8');
    expect((await fetch(new URL('/herald-client.js', node.url))).headers.get('cache-control')).toBe('no-cache');
    const wrongMethod = await fetch(new URL('/dev/login', node.url));
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get('allow')).toBe('POST');
  });

  it('signs in with an HttpOnly, SameSite=Strict cookie whose token opens that user’s stream', async () => {
    const node = await startDevNode();
    const { cookie, setCookie } = await login(node.url, 'alice');
    expect(setCookie).toMatch(/^herald_token=[\w-]+\.[\w-]+\.[\w-]+; Path=\/; HttpOnly; SameSite=Strict; Max-Age=3600$/);
    const me = await fetch(new URL('/dev/me', node.url), { headers: { Cookie: cookie } });
    expect(await me.json()).toEqual({ user: 'alice', expiresAtMs: expect.any(Number) as unknown });
    const stream = await openStream(node.url, { cookie, label: 'alice' });
    onTestFinished(() => stream.close());
    expect(stream.status).toBe(200);
    await stream.next('ready');

    const logout = await fetch(new URL('/dev/logout', node.url), { method: 'POST', headers: { Cookie: cookie } });
    expect(logout.status).toBe(204);
    expect(logout.headers.get('set-cookie')).toBe('herald_token=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0');
  });

  it('answers /dev/me with {user: null}, not a 401, when nobody is signed in: no cookie, an expired one or a forged one', async () => {
    const node = await startDevNode();
    if (node.config.auth.kind !== 'hs256') throw new Error('dev mode signs its own HS256 tokens');
    const now = Math.floor(Date.now() / 1000);
    const expired = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setIssuedAt(now - 7200).setExpirationTime(now - 3600).sign(node.config.auth.secret);
    const cookies = { none: undefined, expired: `herald_token=${expired}`, forged: 'herald_token=not.a.token' };
    for (const [label, cookie] of Object.entries(cookies)) {
      const me = await fetch(new URL('/dev/me', node.url), { headers: cookie === undefined ? {} : { Cookie: cookie } });
      expect({ label, status: me.status, cacheControl: me.headers.get('cache-control'), body: (await me.json()) as unknown }).toEqual({ label, status: 200, cacheControl: 'no-store', body: { user: null } });
    }
    // Only /dev/me reads these as "signed out": the stream still refuses them, and for the reason each stands for.
    for (const [cookie, error] of [[cookies.expired, 'token_expired'], [cookies.forged, 'token_invalid']] as const) {
      const stream = await fetch(new URL('/events', node.url), { headers: { Cookie: cookie } });
      expect({ status: stream.status, body: (await stream.json()) as unknown }).toMatchObject({ status: 401, body: { error } });
    }
  });

  it('refuses a sign-in without a usable name or without JSON', async () => {
    const node = await startDevNode();
    for (const body of ['{}', '{"user":""}', '{"user":"  "}', '{"user":"a\\u0000b"}', '[]', 'not json']) {
      const response = await fetch(new URL('/dev/login', node.url), { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
      expect([body, response.status]).toEqual([body, 400]);
      expect(response.headers.get('set-cookie')).toBeNull();
    }
    const form = await fetch(new URL('/dev/login', node.url), { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'user=eve' });
    expect(form.status).toBe(415);
  });

  it('sends as the user of the cookie, never as a user named in the body', async () => {
    const node = await startDevNode();
    const bob = await login(node.url, 'bob');
    const stream = await openStream(node.url, { cookie: bob.cookie, label: 'bob' });
    onTestFinished(() => stream.close());
    await stream.next('ready');

    expect((await send(node.url, undefined, { kind: 'message', to: 'bob', text: 'hi' })).status).toBe(401);
    const alice = await login(node.url, 'alice');
    const sent = await send(node.url, alice.cookie, { kind: 'message', to: 'bob', text: 'hi bob', fromUserId: 'mallory', user: 'mallory' });
    expect(sent.status).toBe(202);
    expect(sent.body).toMatchObject({ recipients: 1, online: 1, offline: [], duplicate: false });
    const event = await stream.next('message');
    expect(event.id).toBe(sent.body.id);
    expect(JSON.parse(event.data)).toEqual({ fromUserId: 'alice', text: 'hi bob' });

    expect((await send(node.url, alice.cookie, { kind: 'message', to: 'bob', text: '' })).status).toBe(400);
    expect((await send(node.url, alice.cookie, { kind: 'message', to: '', text: 'x' })).body.error).toBe('recipients_invalid');
    expect((await send(node.url, alice.cookie, { kind: 'shout' })).status).toBe(400);
  });

  it('streams a job’s progress to the user who started it', async () => {
    const node = await startDevNode();
    const carol = await login(node.url, 'carol');
    const stream = await openStream(node.url, { cookie: carol.cookie, label: 'carol' });
    onTestFinished(() => stream.close());
    await stream.next('ready');
    const started = await send(node.url, carol.cookie, { kind: 'job' });
    expect(started.status).toBe(202);
    const last = await stream.waitFor((e) => e.event === 'job.progress' && (JSON.parse(e.data) as { done: boolean }).done, 'the last job step', { timeoutMs: 10_000 });
    expect(JSON.parse(last.data)).toMatchObject({ jobId: started.body.jobId, percent: 100, steps: 10 });
    expect(stream.events.filter((e) => e.event === 'job.progress')).toHaveLength(11);
  });

  it('embeds the client and the demo in the built node, which serves them from its one file', async () => {
    const entry = await buildEntryPoint();
    onTestFinished(() => entry.dispose());
    const child = spawnChildNode(entry.path, { HERALD_PORT: '0' });
    onTestFinished(() => child.stop());
    const url = await child.url();
    const client = await fetch(new URL('/herald-client.js', url));
    expect(client.status).toBe(200);
    expect(await client.text()).toBe(readFileSync(`${root}dist/herald-client.js`, 'utf8'));
    const page = await fetch(new URL('/', url));
    expect(await page.text()).toBe(readFileSync(`${root}services/demo/index.html`, 'utf8'));
    expect((await fetch(new URL('/demo.js', url))).status).toBe(200);
  });
});
