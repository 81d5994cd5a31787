import { Hono, type MiddlewareHandler } from 'hono';
import type { HttpBindings } from '@hono/node-server';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { describe, expect, it } from 'vitest';
import { isHeraldError } from '../../protocol/errors';
import { lastEventIdOf, refuseHead, refuseIdentityInUrl, refuseOtherFetchDest, requireOwnSocket, stopReplacedTab } from './events-checks';

type Env = { Bindings: HttpBindings };

/** `GET /events` behind one check, answering `through` (and the position it read) when the check lets it through; refusals as the app answers them. */
function behind(check: MiddlewareHandler<Env>): Hono<Env> {
  const app = new Hono<Env>();
  app.get('/events', check, (c) => c.text(`through ${lastEventIdOf(c) ?? '-'}`));
  app.onError((error, c) => {
    if (!isHeraldError(error)) throw error;
    return c.json(error.toJSON(), error.status as ContentfulStatusCode);
  });
  return app;
}

/** `c.env` as the Node adapter gives it: the request's and the response's sockets. */
function bindings(httpVersion: string, requestSocket: object, responseSocket: object | null): HttpBindings {
  return { incoming: { httpVersion, socket: requestSocket }, outgoing: { socket: responseSocket } } as unknown as HttpBindings;
}

describe('refuseHead', () => {
  it('refuses HEAD with 405, naming GET', async () => {
    const response = await behind(refuseHead).request('/events', { method: 'HEAD' });
    expect([response.status, response.headers.get('allow')]).toEqual([405, 'GET']);
  });

  it('lets GET through', async () => {
    expect((await behind(refuseHead).request('/events')).status).toBe(200);
  });
});

describe('refuseOtherFetchDest', () => {
  it.each(['document', 'image', 'iframe', 'script'])('refuses Sec-Fetch-Dest: %s with 403 fetch_dest_refused', async (destination) => {
    const response = await behind(refuseOtherFetchDest).request('/events', { headers: { 'Sec-Fetch-Dest': destination } });
    expect(response.status).toBe(403);
    expect(await response.json()).toMatchObject({ error: 'fetch_dest_refused' });
  });

  it.each([['empty'], ['EMPTY'], [undefined]])('lets Sec-Fetch-Dest %s through', async (destination) => {
    const headers: Record<string, string> = destination === undefined ? {} : { 'Sec-Fetch-Dest': destination };
    expect((await behind(refuseOtherFetchDest).request('/events', { headers })).status).toBe(200);
  });
});

describe('stopReplacedTab', () => {
  it('answers 204 to a tab presenting the id of its replaced event, in the header or the query', async () => {
    const fromHeader = await behind(stopReplacedTab).request('/events', { headers: { 'Last-Event-ID': 'replaced:abc' } });
    const fromQuery = await behind(stopReplacedTab).request('/events?lastEventId=replaced:abc');
    expect([fromHeader.status, fromQuery.status]).toEqual([204, 204]);
    expect(await fromHeader.text()).toBe('');
  });

  it('lets any other position through, the header before the query', async () => {
    const response = await behind(stopReplacedTab).request('/events?lastEventId=fromQuery', { headers: { 'Last-Event-ID': 'fromHeader' } });
    expect([response.status, await response.text()]).toEqual([200, 'through fromHeader']);
    const fromQuery = await behind(stopReplacedTab).request('/events?lastEventId=fromQuery', { headers: { 'Last-Event-ID': '' } });
    expect(await fromQuery.text()).toBe('through fromQuery');
    expect(await (await behind(stopReplacedTab).request('/events')).text()).toBe('through -');
  });
});

describe('refuseIdentityInUrl', () => {
  it.each(['userId', 'user', 'UID', 'user_id', 'sub', 'token', 'access_token', 'jwt', 'Authorization'])('refuses ?%s= with 400 identity_in_url naming it', async (name) => {
    const response = await behind(refuseIdentityInUrl).request(`/events?lastEventId=x&${name}=alice`);
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: 'identity_in_url', field: name });
  });

  it('lets other parameters through', async () => {
    expect((await behind(refuseIdentityInUrl).request('/events?lastEventId=x&tab=2')).status).toBe(200);
  });
});

describe('requireOwnSocket', () => {
  const socket = {};

  it('lets an HTTP/1.1 request through whose response has its socket', async () => {
    expect((await behind(requireOwnSocket).request('/events', {}, bindings('1.1', socket, socket))).status).toBe(200);
  });

  it.each([
    ['HTTP/1.0', bindings('1.0', socket, socket)],
    ['HTTP/2', bindings('2.0', socket, socket)],
    ['a response with no socket yet (pipelined)', bindings('1.1', socket, null)],
    ['a response on another socket', bindings('1.1', socket, {})],
  ])('refuses %s with 400 bad_request', async (_case, env) => {
    const response = await behind(requireOwnSocket).request('/events', {}, env);
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: 'bad_request' });
  });
});
