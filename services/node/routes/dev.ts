import { randomBytes } from 'node:crypto';
import type { Context, Hono } from 'hono';
import type { HttpBindings } from '@hono/node-server';
import { SignJWT } from 'jose';
import { HeraldError, isHeraldError } from '../../protocol/errors';
import { isValidUserId, parseEnvelope, type EnvelopeOptions, type HeraldEvent } from '../../protocol/envelope';
import type { PublishResult } from '../../publisher/publish';
import type { Logger } from '../../shared/log';
import type { Authenticator, Identity } from '../auth';
import { readBody } from '../read-body';
import { sendAsset, type WebAssetName, type WebAssets } from './client-asset';
import { requireJsonType } from './json-type';

/** A dev session lasts an hour; the stream closes with `token_expired` then, and the demo signs in again. */
export const DEV_SESSION_SECONDS = 3600;
const MAX_TEXT_LENGTH = 500;
const JOB_STEPS = 10;
const JOB_STEP_MS = 400;

/** Dev pages load only their own files; the stream and the dev API are same-origin. */
const PAGE_POLICY = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

type DevContext = Context<{ Bindings: HttpBindings }>;

/**
 * What the demo needs: the HS256 key the nodes verify with (it signs the
 * session cookie), and a way to publish. A dev-mode node gives its own; `npm
 * run cluster` gives the cluster's key and the publisher library, so the demo
 * works through the AWS shape too, served beside the proxy.
 */
export interface DevDeps {
  readonly secret: Uint8Array;
  readonly authCookie: string;
  readonly authenticate: Authenticator;
  readonly publish: (events: readonly HeraldEvent[], publisherId: string) => Promise<PublishResult[]>;
  readonly envelope: Pick<EnvelopeOptions, 'maxDataBytes' | 'defaultTtlSeconds'>;
  readonly log: Logger;
  readonly assets: WebAssets;
}

/**
 * The demo page and its dev-only API, registered only in dev mode (no
 * HERALD_JWT_SECRET, loopback only) or beside `npm run cluster`'s proxy: a
 * sign-in that sets the HttpOnly auth cookie for any user name, and a send that
 * publishes on behalf of the signed-in user through the same `publish()` as
 * `POST /publish`. Identity always comes from the verified cookie, never from a body.
 */
export function devRoutes(app: Hono<{ Bindings: HttpBindings }>, deps: DevDeps): Record<string, string> {
  const { secret, log, assets, authenticate } = deps;
  const cookie = (value: string, maxAge: number): string => `${deps.authCookie}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAge}`;

  const page = (path: string, name: WebAssetName): void => {
    app.get(path, (c) => {
      const found = assets(name);
      if (!found) throw new HeraldError('not_found', `${name} is missing`);
      return sendAsset(c, found, { 'Cache-Control': 'no-cache', 'Content-Security-Policy': PAGE_POLICY, 'Referrer-Policy': 'no-referrer' });
    });
  };
  page('/', 'index.html');
  page('/demo.css', 'demo.css');
  page('/demo.js', 'demo.js');

  const signedIn = (c: DevContext): Promise<Identity> => authenticate({ authorization: undefined, cookie: c.req.header('cookie') });

  app.post('/dev/login', async (c) => {
    const body = await readJson(c);
    const user = typeof body.user === 'string' ? body.user.trim() : undefined;
    if (!isValidUserId(user) || user === '') {
      throw new HeraldError('bad_request', 'send {"user": "<a name>"} (1-128 characters, no control characters)', { field: 'user' });
    }
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(user)
      .setIssuedAt(now)
      .setExpirationTime(now + DEV_SESSION_SECONDS)
      .sign(secret);
    log.info('dev.login', { userId: user });
    c.header('Set-Cookie', cookie(token, DEV_SESSION_SECONDS));
    c.header('Cache-Control', 'no-store');
    return c.json({ user, expiresAtMs: (now + DEV_SESSION_SECONDS) * 1000 });
  });

  app.post('/dev/logout', (c) => {
    c.header('Set-Cookie', cookie('', 0));
    return c.body(null, 204);
  });

  // Every fresh page asks this before anyone signed in; a 401 would put an error in its console each time.
  app.get('/dev/me', async (c) => {
    const identity = await signedIn(c).catch(signedOut);
    c.header('Cache-Control', 'no-store');
    return c.json(identity === undefined ? { user: null } : { user: identity.userId, expiresAtMs: identity.expiresAtMs });
  });

  app.post('/dev/send', async (c) => {
    const identity = await signedIn(c);
    const body = await readJson(c);
    const options = deps.envelope;
    const publisherId = `dev:${identity.userId}`;
    if (body.kind === 'message') {
      const text = typeof body.text === 'string' ? body.text.trim() : '';
      if (text === '' || text.length > MAX_TEXT_LENGTH) {
        throw new HeraldError('bad_request', `text is 1-${MAX_TEXT_LENGTH} characters`, { field: 'text' });
      }
      const event = parseEnvelope({ to: { users: [body.to] }, event: 'message', data: { fromUserId: identity.userId, text } }, options);
      const [result] = await deps.publish([event], publisherId);
      return c.json(result, 202);
    }
    if (body.kind === 'job') {
      const jobId = `job-${randomBytes(4).toString('hex')}`;
      const step = (n: number): Promise<unknown> => {
        const data = { jobId, step: n, steps: JOB_STEPS, percent: Math.round((100 * n) / JOB_STEPS), label: 'Exporting your report', done: n === JOB_STEPS };
        return deps.publish([parseEnvelope({ to: { users: [identity.userId] }, event: 'job.progress', data, ttl: 600 }, options)], publisherId);
      };
      await step(0);
      runJob(step, (error) => log.warn('dev.job_failed', { jobId, error }));
      return c.json({ jobId, steps: JOB_STEPS }, 202);
    }
    throw new HeraldError('bad_request', 'kind is "message" (with to and text) or "job"', { field: 'kind' });
  });

  return { '/': 'GET', '/demo.css': 'GET', '/demo.js': 'GET', '/dev/login': 'POST', '/dev/logout': 'POST', '/dev/me': 'GET', '/dev/send': 'POST' };
}

/** A missing, expired or bad cookie means nobody is signed in; any other failure (a fault) still surfaces. */
function signedOut(error: unknown): undefined {
  if (isHeraldError(error) && (error.code === 'token_missing' || error.code === 'token_expired' || error.code === 'token_invalid')) return undefined;
  throw error;
}

/** The rest of a job's steps, one every JOB_STEP_MS; the timers never hold the process open. */
function runJob(step: (n: number) => Promise<unknown>, fail: (error: unknown) => void): void {
  let n = 0;
  const next = (): void => {
    n++;
    step(n).then(() => {
      if (n < JOB_STEPS) setTimeout(next, JOB_STEP_MS).unref();
    }, fail);
  };
  setTimeout(next, JOB_STEP_MS).unref();
}

/** A small JSON object body. Requiring the JSON type also keeps out cross-site form posts, which cannot send it. */
async function readJson(c: DevContext): Promise<Record<string, unknown>> {
  requireJsonType(c.req.header('content-type'));
  const raw = await readBody(c.env.incoming, 4096);
  let body: unknown;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new HeraldError('json_invalid', 'the body is not JSON');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HeraldError('json_invalid', 'the body is a JSON object');
  return body as Record<string, unknown>;
}
