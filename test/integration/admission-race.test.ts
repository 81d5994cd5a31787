/**
 * The connection caps hold exactly while authentication is in flight: a burst
 * of stream requests that all wait on the identity provider's key set (the
 * key server below answers only when the test lets it) must not all pass the
 * caps checked before that wait.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { describe, expect, it, onTestFinished } from 'vitest';
import { startTestNode } from '../support/start-node';
import { openStream, type SseStream } from '../support/sse-client';

const ISSUER = 'https://id.example.com/';
const AUDIENCE = 'herald';
const BURST = 10;

/** A key server holding every request until `release()`: authentication waits on it. */
async function gatedKeyServer(): Promise<{ url: string; waiting: () => number; release: () => void; sign: (sub: string) => Promise<string> }> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const body = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] });
  const held: ServerResponse[] = [];
  let open = false;
  const answer = (res: ServerResponse): void => void res.writeHead(200, { 'Content-Type': 'application/json' }).end(body);
  const server = createServer((_req: IncomingMessage, res: ServerResponse) => (open ? answer(res) : held.push(res)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const { port } = server.address() as AddressInfo;
  const now = Math.floor(Date.now() / 1000);
  return {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    waiting: () => held.length,
    release: () => {
      open = true;
      for (const res of held.splice(0)) answer(res);
    },
    sign: (sub) =>
      new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setSubject(sub).setIssuer(ISSUER).setAudience(AUDIENCE).setIssuedAt(now).setExpirationTime(now + 600).sign(privateKey),
  };
}

const outcome = (stream: SseStream): string => (stream.status === 200 ? 'open' : `${stream.status} ${(JSON.parse(stream.body) as { error: string }).error}`);

/**
 * A burst of BURST stream requests that all need the key set. Held until
 * every request past the cap of `allowed` has been refused with `refused`,
 * so the admitted ones are the ones waiting on the key server.
 */
async function burst(env: Record<string, string>, allowed: number, refused: string): Promise<string[]> {
  const keys = await gatedKeyServer();
  const node = await startTestNode({ env: { HERALD_JWT_SECRET: '', HERALD_JWKS_URL: keys.url, HERALD_JWT_ISSUER: ISSUER, HERALD_JWT_AUDIENCE: AUDIENCE, ...env } });
  const tokens = await Promise.all(Array.from({ length: BURST }, (_, i) => keys.sign(`user-${i}`)));
  const streams = tokens.map((token, i) => openStream(node.url, { token, label: `user-${i}` }));
  // Every request is either refused at admission or waiting on the key set (one fetch, shared): then let it through.
  await expect.poll(() => keys.waiting(), { timeout: 5_000 }).toBeGreaterThan(0);
  await expect.poll(() => node.metric(`herald_refusals_total{code="${refused}"}`), { timeout: 5_000 }).toBe(BURST - allowed);
  keys.release();
  const settled = await Promise.all(streams);
  onTestFinished(() => settled.forEach((s) => s.close()));
  return settled.map(outcome).sort();
}

describe('admission while authentication is in flight', () => {
  it('opens exactly HERALD_MAX_CONNECTIONS streams out of a burst, and refuses the rest with node_full', async () => {
    const outcomes = await burst({ HERALD_MAX_CONNECTIONS: '3' }, 3, 'node_full');
    expect(outcomes.filter((o) => o === 'open')).toHaveLength(3);
    expect(outcomes.filter((o) => o === '503 node_full')).toHaveLength(BURST - 3);
  });

  it('opens exactly HERALD_MAX_CONNECTIONS_PER_IP streams from one address out of a burst', async () => {
    const outcomes = await burst({ HERALD_MAX_CONNECTIONS_PER_IP: '4' }, 4, 'too_many_streams');
    expect(outcomes.filter((o) => o === 'open')).toHaveLength(4);
    expect(outcomes.filter((o) => o === '429 too_many_streams')).toHaveLength(BURST - 4);
  });
});
