import type { MiddlewareHandler } from 'hono';
import { HeraldError } from '../protocol/errors';

/**
 * What a request says when it names this machine: `localhost`, `127.x.x.x` or
 * `[::1]`, with any port. A name that only resolves there (DNS rebinding: a
 * page on evil.example whose name now points at 127.0.0.1) keeps its own name
 * in `Host`, and so does a request relayed by a proxy on another name.
 */
const LOOPBACK_HOST = /^(?:localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::\d{1,5})?$/i;

/** Headers a reverse proxy adds: the request came from elsewhere, whatever address it arrives from. */
const FORWARDING_HEADERS = ['x-forwarded-for', 'forwarded', 'x-real-ip'];

/**
 * Dev mode trusts whoever reaches the node, which listens on loopback only:
 * its sign-in signs a token for any user name. Loopback alone does not say
 * the request is the developer's, so the dev routes (those `isDevPath` names)
 * answer only a request that names a loopback host and came through no proxy;
 * anything else is `403 dev_loopback_only`. Other paths pass.
 */
export function devGuard(isDevPath: (path: string) => boolean): MiddlewareHandler {
  return async (c, next) => {
    if (!isDevPath(c.req.path)) return next();
    if (!LOOPBACK_HOST.test(c.req.header('host') ?? '')) {
      throw new HeraldError('dev_loopback_only', 'dev routes answer requests for localhost, 127.0.0.1 or [::1] only');
    }
    for (const name of FORWARDING_HEADERS) {
      if (c.req.header(name) !== undefined) throw new HeraldError('dev_loopback_only', `dev routes answer direct requests only, not one relayed by a proxy (${name})`);
    }
    return next();
  };
}
