import { describe, expect, it } from 'vitest';
import { startTestNode } from '../support/start-node';
import { openStream } from '../support/sse-client';

describe('GET /events never takes identity from the URL', () => {
  it.each(['userId', 'user', 'uid', 'user_id', 'token', 'USERID', 'access_token'])(
    'refuses ?%s= with 400 identity_in_url, even with a valid token',
    async (name) => {
      const node = await startTestNode();
      const stream = await openStream(node.url, { token: await node.token('alice'), query: { [name]: 'alice' } });
      expect(stream.status).toBe(400);
      expect(stream.headers['content-type']).toMatch(/^application\/json/);
      expect(JSON.parse(stream.body)).toMatchObject({ error: 'identity_in_url', field: name });
    },
  );

  it('refuses an identity parameter before looking at the token, so no stream is opened', async () => {
    const node = await startTestNode();
    const stream = await openStream(node.url, { query: { token: await node.token('alice') } });
    expect(stream.status).toBe(400);
    expect(JSON.parse(stream.body)).toMatchObject({ error: 'identity_in_url', field: 'token' });
    expect(await node.metric('herald_connections_opened_total')).toBe(0);
  });

  it('accepts other query parameters, such as lastEventId', async () => {
    const node = await startTestNode();
    const stream = await openStream(node.url, { token: await node.token('alice'), query: { lastEventId: 'x', v: '2' } });
    expect(stream.status).toBe(200);
    await stream.next('ready');
  });
});
