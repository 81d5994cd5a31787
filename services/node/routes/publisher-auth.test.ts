import { Hono } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { describe, expect, it } from 'vitest';
import { isHeraldError } from '../../protocol/errors';
import { publisherAuth } from './publisher-auth';

const TOKEN = 'publisher-token-0123456789';

function app(token = TOKEN): Hono {
  const hono = new Hono();
  hono.post('/publish', publisherAuth(token), (c) => c.text('through'));
  hono.onError((error, c) => {
    if (!isHeraldError(error)) throw error;
    return c.json(error.toJSON(), error.status as ContentfulStatusCode);
  });
  return hono;
}

async function post(authorization: string | undefined, token = TOKEN): Promise<Response> {
  return app(token).request('/publish', { method: 'POST', headers: authorization === undefined ? {} : { Authorization: authorization } });
}

describe('publisherAuth', () => {
  it('compares a configured token longer than the usual compared length in full', async () => {
    const long = 'L'.repeat(700);
    expect((await post(`Bearer ${long}`, long)).status).toBe(200);
    expect((await post(`Bearer ${long.slice(1)}x`, long)).status).toBe(401);
    expect((await post(`Bearer ${long}L`, long)).status).toBe(401);
  });

  it.each([`Bearer ${TOKEN}`, `bearer ${TOKEN}`, `Bearer   ${TOKEN}  `])('lets %j through', async (authorization) => {
    const response = await post(authorization);
    expect([response.status, await response.text()]).toEqual([200, 'through']);
  });

  it.each([
    ['no Authorization', undefined],
    ['another token', 'Bearer not-the-token'],
    ['the token with more after it', `Bearer ${TOKEN}x`],
    ['a prefix of the token', `Bearer ${TOKEN.slice(0, -1)}`],
    ['another scheme', `Basic ${TOKEN}`],
    ['the token alone', TOKEN],
    ['an empty bearer', 'Bearer '],
    ['two tokens', `Bearer ${TOKEN} ${TOKEN}`],
    ['the token padded out past the compared length', `Bearer ${TOKEN}${'x'.repeat(600)}`],
    ['a token longer than any compared', `Bearer ${'t'.repeat(5000)}`],
    ['a token of the same length with other bytes', `Bearer ${'p'.repeat(TOKEN.length)}`],
  ])('refuses %s with 401 publisher_unauthorized', async (_case, authorization) => {
    const response = await post(authorization);
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ error: 'publisher_unauthorized' });
  });
});
