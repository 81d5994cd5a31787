/**
 * The servers `http-floor.ts` measures, each run in its own child process.
 * Every one answers `GET /events` with a stream's headers and a `ready` frame
 * and holds the stream, and turns a `POST /publish` for one user into one
 * frame on that user's stream and a 202 with a small JSON body: the least a
 * server does for Herald's two hot paths, below Herald's own checks. They
 * verify nothing: a floor stream names its user in an `X-User` header, which
 * Herald would never trust; the Herald node verifies each stream's JWT and
 * the publisher token as it does in production.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { Hono } from 'hono';
import { getRequestListener, type HttpBindings } from '@hono/node-server';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { loadConfig } from '../../services/node/config';
import { chunk } from '../../services/node/http-stream-sink';
import { STREAM_HEADERS } from '../../services/node/open-stream';
import { composeLocal } from '../../services/node/compose';
import { startHerald } from '../../services/node/server';
import { createLogger } from '../../services/shared/log';

export const FLOOR_MODES = ['net', 'http', 'hono', 'herald'] as const;
export type FloorMode = (typeof FLOOR_MODES)[number];

export const FLOOR_SECRET = 'http-floor-secret-of-at-least-32-bytes';
export const FLOOR_PUBLISH_TOKEN = 'http-floor-publish-token-of-at-least-32-bytes';

/** Herald's own stream headers and chunk framing, so the floors write what a node writes. */
const HEADERS = STREAM_HEADERS;
const READY = 'retry: 1000\nevent: ready\ndata: {"connectionId":"AAAAAAAAAAAA","nodeId":"floor"}\n\n';
const READY_CHUNK = chunk(READY);

/** As Herald's opener writes a stream's start: headers through the response, the first chunk on the corked socket. */
function answer(res: ServerResponse): void {
  const socket = res.socket!;
  socket.cork();
  res.writeHead(200, HEADERS);
  res.flushHeaders();
  socket.write(READY_CHUNK);
  socket.uncork();
}

interface Notification {
  readonly to: { readonly users: readonly string[] };
  readonly event: string;
  readonly data: unknown;
}

let lastId = 0;

/**
 * What every floor does with a publish body: parse it, number it, frame it
 * once and write it to the user's stream. Returns the 202's body. A counter,
 * not random bytes, for the id: the least an id can cost.
 */
function deliver(streams: ReadonlyMap<string, Socket>, body: string): string {
  const notification = JSON.parse(body) as Notification;
  const id = (++lastId).toString(36);
  const stream = streams.get(notification.to.users[0]!);
  stream?.write(chunk(`id: ${id}\nevent: ${notification.event}\ndata: ${JSON.stringify(notification.data)}\n\n`));
  return JSON.stringify({ id, status: 'accepted' });
}

function readAll(req: IncomingMessage, done: (body: string) => void): void {
  const parts: Buffer[] = [];
  req.on('data', (part: Buffer) => parts.push(part));
  req.on('end', () => done(Buffer.concat(parts).toString('utf8')));
}

/** A Herald node in the local shape, as node-under-test.ts starts one, with the caps out of the way of one client address. */
async function serveHerald(): Promise<number> {
  const config = loadConfig({
    HERALD_MODE: 'local',
    HERALD_HOST: '127.0.0.1',
    HERALD_PORT: '0',
    HERALD_JWT_SECRET: FLOOR_SECRET,
    HERALD_PUBLISH_TOKEN: FLOOR_PUBLISH_TOKEN,
    HERALD_LOG_LEVEL: 'warn',
    HERALD_DRAIN_MS: '0',
    HERALD_MAX_CONNECTIONS: '20000',
    HERALD_MAX_CONNECTIONS_PER_IP: '20000',
    HERALD_CONNECT_RATE_PER_IP: '1000000',
    HERALD_CONNECT_BURST_PER_IP: '1000000',
    HERALD_PUBLISH_RATE: '10000000',
  });
  const log = createLogger({ level: config.logLevel });
  const herald = await startHerald({ config, ports: composeLocal(config, log), log, nodeId: 'floor' });
  return Number(new URL(herald.url).port);
}

function headerValue(head: string, name: string): string | undefined {
  const match = new RegExp(`\\r\\n${name}:\\s*([^\\r]*)`, 'i').exec(head);
  return match?.[1];
}

/**
 * No HTTP server at all: a `node:net` server that splits requests by their
 * head and `Content-Length`, keeps connections alive, and writes each
 * response as one buffer. What Node costs below its HTTP parser, the least a
 * Node server can pay; it checks nothing, so it is a bound, not a server.
 */
function serveNet(): Promise<number> {
  const streams = new Map<string, Socket>();
  const rawStream = Buffer.concat([
    Buffer.from(`HTTP/1.1 200 OK\r\n${Object.entries(HEADERS).map(([name, value]) => `${name}: ${value}\r\n`).join('')}Transfer-Encoding: chunked\r\n\r\n`),
    READY_CHUNK,
  ]);
  const server = createNetServer((socket) => {
    socket.setNoDelay(true);
    let pending = '';
    const onData = (data: Buffer): void => {
      pending += data.toString('latin1');
      for (;;) {
        const end = pending.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = pending.slice(0, end);
        if (head.startsWith('GET')) {
          socket.off('data', onData);
          streams.set(headerValue(head, 'x-user') ?? '', socket);
          socket.write(rawStream);
          return;
        }
        const length = Number(headerValue(head, 'content-length') ?? 0);
        if (pending.length < end + 4 + length) return;
        const body = Buffer.from(pending.slice(end + 4, end + 4 + length), 'latin1').toString('utf8');
        pending = pending.slice(end + 4 + length);
        const reply = deliver(streams, body);
        socket.write(`HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(reply)}\r\n\r\n${reply}`);
      }
    };
    socket.on('data', onData);
  });
  return listen(server);
}

function serveHttp(): Promise<number> {
  const streams = new Map<string, Socket>();
  const server = createServer((req, res) => {
    if (req.method === 'GET') {
      streams.set(String(req.headers['x-user']), res.socket!);
      answer(res);
      return;
    }
    readAll(req, (body) => {
      const reply = deliver(streams, body);
      res.writeHead(202, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(reply) });
      res.end(reply);
    });
  });
  return listen(server);
}

function serveHono(): Promise<number> {
  const streams = new Map<string, Socket>();
  const app = new Hono<{ Bindings: HttpBindings }>()
    .get('/events', (c) => {
      streams.set(c.req.header('x-user') ?? '', c.env.outgoing.socket!);
      answer(c.env.outgoing);
      return RESPONSE_ALREADY_SENT;
    })
    .post('/publish', async (c) => {
      const body = await new Promise<string>((resolve) => readAll(c.env.incoming, resolve));
      return c.body(deliver(streams, body), 202, { 'Content-Type': 'application/json' });
    });
  return listen(createServer(getRequestListener(app.fetch)));
}

function listen(server: { listen(port: number, host: string, done: () => void): unknown; address(): unknown }): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

/** Runs one server in this process: reports its port, then its CPU whenever asked, and exits when the parent goes. */
export function serveFloor(mode: FloorMode): void {
  const start = { net: serveNet, http: serveHttp, hono: serveHono, herald: serveHerald }[mode];
  void start().then((port) => process.send?.({ port }));
  process.on('message', () => {
    const cpu = process.cpuUsage();
    process.send?.({ userUs: cpu.user, systemUs: cpu.system });
  });
  process.on('disconnect', () => process.exit(0));
}
