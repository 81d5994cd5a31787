import { Agent, createServer, request, type IncomingHttpHeaders, type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * A small reverse proxy standing in for the ALB in front of a local cluster
 * (`npm run cluster`, test/aws/cluster-*.test.ts):
 *
 * - each new request goes to the next healthy target, round robin;
 * - a target is healthy while its `GET /healthz` answers 200 (checked every
 *   `healthCheckIntervalMs`), and is taken out at once when a connection to it
 *   is refused or it answers 503 (a draining node); a request with no body is
 *   then tried on the next one (the ALB would answer 502 until its health
 *   checks caught up, and stops routing to a deregistering target at once;
 *   here a killed or draining node's clients find a live one on their first
 *   reconnect);
 * - responses are streamed chunk by chunk as they arrive (SSE must flow), and
 *   a response cut by its target is cut for the client too, so a stream that
 *   died on a node ends in the browser as well;
 * - `X-Forwarded-For` gets the client's address appended, as the ALB does
 *   (the node takes the last hop when `HERALD_TRUST_PROXY` is on);
 * - idle connections are closed after `idleTimeoutMs` (the ALB's idle
 *   timeout, long: heartbeats keep a stream busy well inside it).
 */
export interface AlbProxyOptions {
  /** Base URLs of the targets, e.g. `http://127.0.0.1:8091`. */
  readonly targets: readonly string[];
  /** @default 0 (a free port) */
  readonly port?: number;
  /** @default '127.0.0.1' */
  readonly host?: string;
  /** @default 1000 */
  readonly healthCheckIntervalMs?: number;
  /** @default 1000 */
  readonly healthCheckTimeoutMs?: number;
  /** @default 3_600_000 (one hour; the ALB allows up to 4,000 s) */
  readonly idleTimeoutMs?: number;
  /** Called on routing events: a target going unhealthy or healthy again. */
  readonly onEvent?: (event: string, fields: Record<string, unknown>) => void;
  /**
   * Paths answered by the proxy's own process rather than a target, as an ALB
   * listener rule would send them to another target group: `npm run cluster`
   * serves the demo page and its sign-in there.
   */
  readonly local?: { readonly paths: ReadonlySet<string>; readonly listener: RequestListener };
}

export interface AlbProxy {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** Targets whose last health check (or connection) succeeded. */
  healthy(): string[];
  /** Runs one round of health checks now. */
  checkNow(): Promise<void>;
  close(): Promise<void>;
}

/** Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection and are not forwarded. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

function forwardable(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  }
  return out;
}

/** Errors that mean the request never reached a process: safe to try another target. */
function neverArrived(error: NodeJS.ErrnoException): boolean {
  return error.code === 'ECONNREFUSED' || error.code === 'EHOSTUNREACH' || error.code === 'ENETUNREACH';
}

interface Target {
  readonly url: URL;
  healthy: boolean;
}

export async function startAlbProxy(options: AlbProxyOptions): Promise<AlbProxy> {
  const targets: Target[] = options.targets.map((t) => ({ url: new URL(t), healthy: false }));
  const idleTimeoutMs = options.idleTimeoutMs ?? 3_600_000;
  const onEvent = options.onEvent ?? ((): void => undefined);
  const agent = new Agent({ keepAlive: true, maxSockets: Infinity, timeout: idleTimeoutMs });
  let cursor = 0;

  const setHealth = (target: Target, healthy: boolean, why: string): void => {
    if (target.healthy === healthy) return;
    target.healthy = healthy;
    onEvent(healthy ? 'target.healthy' : 'target.unhealthy', { target: target.url.origin, why });
  };

  /** The next healthy target after the last one used, skipping those already tried for this request. */
  const pick = (tried: ReadonlySet<Target>): Target | undefined => {
    for (let i = 0; i < targets.length; i++) {
      const target = targets[(cursor + i) % targets.length]!;
      if (target.healthy && !tried.has(target)) {
        cursor = (cursor + i + 1) % targets.length;
        return target;
      }
    }
    return undefined;
  };

  const refuse = (res: ServerResponse, status: number, error: string, message: string): void => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.writeHead(status, { 'Content-Type': 'application/json', 'Retry-After': '1' });
    res.end(JSON.stringify({ error, message }));
  };

  const forward = (req: IncomingMessage, res: ServerResponse, tried: Set<Target>): void => {
    const target = pick(tried);
    if (!target) {
      refuse(res, 503, 'unavailable', 'no healthy target');
      return;
    }
    tried.add(target);
    const headers = forwardable(req.headers);
    const client = req.socket.remoteAddress ?? 'unknown';
    const prior = req.headers['x-forwarded-for'];
    headers['x-forwarded-for'] = prior ? `${Array.isArray(prior) ? prior.join(', ') : prior}, ${client}` : client;
    headers['x-forwarded-proto'] = 'http';
    headers['x-forwarded-port'] = String(req.socket.localPort ?? '');
    const hasBody = req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');

    const upstream = request(new URL(req.url ?? '/', target.url), { method: req.method, headers, agent }, (response) => {
      // A draining node refuses new streams with 503 before its health check fails; the ALB
      // stops routing to a deregistering target at once, so a request without a body moves on.
      if (response.statusCode === 503 && !hasBody && targets.some((t) => t.healthy && t !== target && !tried.has(t))) {
        response.resume();
        setHealth(target, false, 'answered 503');
        forward(req, res, tried);
        return;
      }
      res.writeHead(response.statusCode ?? 502, response.statusMessage, forwardable(response.headers));
      // Headers now, not with the first chunk: an SSE response may wait long for its first event.
      res.flushHeaders();
      response.pipe(res);
      // The target died mid-response (a killed node): the client must see its stream end, not hang.
      response.on('close', () => {
        if (!response.complete) res.destroy();
      });
      response.on('error', () => res.destroy());
    });
    upstream.on('error', (error: NodeJS.ErrnoException) => {
      if (neverArrived(error)) setHealth(target, false, error.code ?? 'connect failed');
      if (neverArrived(error) && !hasBody && !res.headersSent) {
        forward(req, res, tried);
        return;
      }
      refuse(res, 502, 'bad_gateway', `the target failed: ${error.code ?? error.message}`);
    });
    // The client went away: so does the upstream request, which ends the stream on the node.
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    if (hasBody) req.pipe(upstream);
    else upstream.end();
  };

  const local = options.local;
  const server = createServer({ noDelay: true }, (req, res) => {
    const path = new URL(req.url ?? '/', 'http://proxy').pathname;
    if (local?.paths.has(path)) local.listener(req, res);
    else forward(req, res, new Set());
  });
  // A stream is one long request: only the idle timeout may end it.
  server.requestTimeout = 0;
  server.headersTimeout = 30_000;
  server.keepAliveTimeout = 60_000;
  server.timeout = idleTimeoutMs;
  server.on('timeout', (socket: Socket) => socket.destroy());

  const check = async (target: Target): Promise<void> => {
    try {
      const response = await fetch(new URL('/healthz', target.url), { signal: AbortSignal.timeout(options.healthCheckTimeoutMs ?? 1000) });
      await response.body?.cancel();
      setHealth(target, response.status === 200, `healthz ${response.status}`);
    } catch (error) {
      setHealth(target, false, error instanceof Error ? error.message : String(error));
    }
  };
  const checkNow = async (): Promise<void> => {
    await Promise.all(targets.map(check));
  };
  await checkNow();
  let checking = false;
  const timer = setInterval(() => {
    if (checking) return;
    checking = true;
    void checkNow().finally(() => (checking = false));
  }, options.healthCheckIntervalMs ?? 1000);
  timer.unref();

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { address, port } = server.address() as AddressInfo;

  return {
    url: `http://${address.includes(':') ? `[${address}]` : address}:${port}`,
    healthy: () => targets.filter((t) => t.healthy).map((t) => t.url.origin),
    checkNow,
    close: async () => {
      clearInterval(timer);
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      agent.destroy();
      await closed;
    },
  };
}
