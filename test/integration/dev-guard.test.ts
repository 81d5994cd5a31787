/**
 * Dev mode signs a token for any user name at /dev/login, trusting that only
 * the developer reaches a node listening on loopback. DNS rebinding (a page
 * whose name now points at 127.0.0.1) and a reverse proxy on the same machine
 * both reach it from loopback too; the dev routes tell them apart by `Host`
 * and by the headers a proxy adds.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { composeLocal } from '../../services/node/compose';
import { loadConfig } from '../../services/node/config';
import { startHerald, type RunningHerald } from '../../services/node/server';
import { createLogger } from '../../services/shared/log';
import { rawRequest, type RawResponse } from '../support/raw-http';

/** A node in dev mode (no HERALD_JWT_SECRET), on 127.0.0.1:0. */
async function startDevNode(): Promise<RunningHerald> {
  const config = loadConfig({ HERALD_PORT: '0', HERALD_DRAIN_MS: '200' });
  expect(config.dev).toBe(true);
  const log = createLogger({ level: 'error', sink: () => undefined });
  const running = await startHerald({ config, ports: composeLocal(config, log), log, nodeId: 'dev-guard' });
  onTestFinished(async () => {
    running.server.closeAllConnections();
    await running.shutdown();
  });
  return running;
}

function login(node: RunningHerald, headers: Record<string, string>): Promise<RawResponse> {
  return rawRequest(node.url, { path: '/dev/login', headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify({ user: 'alice' }) });
}

function expectRefused(answer: RawResponse): void {
  expect(answer.status, answer.text).toBe(403);
  expect(answer.json).toMatchObject({ error: 'dev_loopback_only' });
  expect(answer.headers['set-cookie']).toBeUndefined();
}

describe('dev routes: loopback Host only, no proxy', () => {
  it.each(['127.0.0.1:{port}', '127.0.0.1', 'localhost:{port}', 'LocalHost', '[::1]:{port}', '127.8.9.10:80'])('signs in for Host %s', async (host) => {
    const node = await startDevNode();
    const port = new URL(node.url).port;
    const answer = await login(node, { Host: host.replace('{port}', port) });
    expect(answer.status, answer.text).toBe(200);
    expect(String(answer.headers['set-cookie'])).toMatch(/^herald_token=/);
  });

  it.each(['evil.example:{port}', 'evil.example', 'localhost.evil.example:{port}', '127.0.0.1.nip.io:{port}', '10.0.0.5:{port}', '[::2]:{port}'])(
    'refuses Host %s with 403 dev_loopback_only and sets no cookie (DNS rebinding)',
    async (host) => {
      const node = await startDevNode();
      const answer = await login(node, { Host: host.replace('{port}', new URL(node.url).port) });
      expectRefused(answer);
    },
  );

  it.each([
    ['X-Forwarded-For', '203.0.113.7'],
    ['Forwarded', 'for=203.0.113.7;proto=https'],
    ['X-Real-IP', '203.0.113.7'],
    ['x-forwarded-for', '127.0.0.1'],
  ])('refuses a request carrying %s, even for a loopback Host: a proxy relayed it', async (name, value) => {
    const node = await startDevNode();
    const answer = await login(node, { Host: new URL(node.url).host, [name]: value });
    expectRefused(answer);
  });

  it('guards every dev route, the demo page and a wrong method included', async () => {
    const node = await startDevNode();
    const host = { Host: 'evil.example' };
    for (const [method, path] of [
      ['GET', '/'],
      ['GET', '/demo.js'],
      ['GET', '/dev/me'],
      ['POST', '/dev/send'],
      ['POST', '/dev/logout'],
      ['GET', '/dev/login'],
    ] as const) {
      expectRefused(await rawRequest(node.url, { method, path, headers: host }));
    }
  });

  it('leaves the other paths alone: the stream, the health check', async () => {
    const node = await startDevNode();
    const proxied = { Host: 'push.example.com', 'X-Forwarded-For': '203.0.113.7' };
    expect((await rawRequest(node.url, { method: 'GET', path: '/healthz', headers: proxied })).status).toBe(200);
    const events = await rawRequest(node.url, { method: 'GET', path: '/events', headers: { ...proxied, Accept: 'application/json' } });
    expect(events.json).toMatchObject({ error: 'token_missing' });
  });
});
