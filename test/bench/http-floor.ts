/**
 * The floor under Herald's "server CPU per accepted stream": what Node's HTTP
 * server alone (`http`), and with Hono's Node adapter (`hono`), costs to
 * accept a connection, parse a `GET /events` like the load clients', and
 * answer it with a stream's headers and a `ready` frame, holding it open.
 * No authentication, no claim, no hub: the part of an accept Herald cannot
 * remove while it serves HTTP through `node:http` and Hono. The same client
 * then opens the same number of streams on a Herald node in the local shape
 * (`herald`, each with its own user's JWT), so the three compare in one run.
 *
 *   npx tsx test/bench/http-floor.ts [--connections N] [--runs N]
 *
 * The server runs in a child process (this file again, with `--serve`), on
 * 127.0.0.1, and reports its own CPU; the parent opens the streams with raw
 * sockets and stops the child by its pid.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { Hono } from 'hono';
import { getRequestListener, type HttpBindings } from '@hono/node-server';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { SignJWT } from 'jose';
import { loadConfig } from '../../services/node/config';
import { composeLocal } from '../../services/node/compose';
import { startHerald } from '../../services/node/server';
import { createLogger } from '../../services/shared/log';

const MODES = ['net', 'http', 'hono', 'herald'] as const;
type Mode = (typeof MODES)[number];

const HEADERS = { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache, no-transform', 'X-Accel-Buffering': 'no' };
const READY = 'retry: 1000\nevent: ready\ndata: {"connectionId":"AAAAAAAAAAAA","nodeId":"floor"}\n\n';
const READY_CHUNK = `${Buffer.byteLength(READY).toString(16)}\r\n${READY}\r\n`;

/** As Herald's opener writes a stream's start: headers through the response, the first chunk on the corked socket. */
function answer(res: ServerResponse): void {
  const socket = res.socket!;
  socket.cork();
  res.writeHead(200, HEADERS);
  res.flushHeaders();
  socket.write(READY_CHUNK);
  socket.uncork();
}

const SECRET = 'http-floor-secret-of-at-least-32-bytes';

/** A node in the local shape, as node-under-test.ts starts one, with the caps out of the way of one client address. */
async function serveHerald(): Promise<number> {
  const config = loadConfig({
    HERALD_MODE: 'local',
    HERALD_HOST: '127.0.0.1',
    HERALD_PORT: '0',
    HERALD_JWT_SECRET: SECRET,
    HERALD_LOG_LEVEL: 'warn',
    HERALD_DRAIN_MS: '0',
    HERALD_MAX_CONNECTIONS: '20000',
    HERALD_MAX_CONNECTIONS_PER_IP: '20000',
    HERALD_CONNECT_RATE_PER_IP: '1000000',
    HERALD_CONNECT_BURST_PER_IP: '1000000',
  });
  const log = createLogger({ level: config.logLevel });
  const herald = await startHerald({ config, ports: composeLocal(config, log), log, nodeId: 'floor' });
  return Number(new URL(herald.url).port);
}

/** The same response as one buffer, for `net`: status line, headers, chunked encoding and the first chunk. */
const RAW_RESPONSE = Buffer.from(
  `HTTP/1.1 200 OK\r\n${Object.entries(HEADERS)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('')}Transfer-Encoding: chunked\r\n\r\n${READY_CHUNK}`,
);

/**
 * No HTTP server at all: a `node:net` server that waits for the end of the
 * request head and writes the response as one buffer. What an accept costs
 * Node below its HTTP parser, the least a Node server can pay; it parses and
 * checks nothing, so it is a bound, not a server.
 */
function serveNet(): void {
  const server = createNetServer((socket) => {
    socket.setNoDelay(true);
    let head = '';
    const onData = (data: Buffer): void => {
      head += data.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      socket.write(RAW_RESPONSE);
    };
    socket.on('data', onData);
  });
  server.listen(0, '127.0.0.1', () => process.send?.({ port: (server.address() as AddressInfo).port }));
}

function serve(mode: Mode): void {
  if (mode === 'net' || mode === 'herald') {
    if (mode === 'net') serveNet();
    else void serveHerald().then((port) => process.send?.({ port }));
    process.on('message', () => {
      const cpu = process.cpuUsage();
      process.send?.({ userUs: cpu.user, systemUs: cpu.system });
    });
    process.on('disconnect', () => process.exit(0));
    return;
  }
  const onRequest =
    mode === 'http'
      ? (_req: IncomingMessage, res: ServerResponse): void => answer(res)
      : getRequestListener(
          new Hono<{ Bindings: HttpBindings }>().get('/events', (c) => {
            answer(c.env.outgoing);
            return RESPONSE_ALREADY_SENT;
          }).fetch,
        );
  const server = createServer(onRequest);
  server.listen(0, '127.0.0.1', () => process.send?.({ port: (server.address() as AddressInfo).port }));
  process.on('message', () => {
    const cpu = process.cpuUsage();
    process.send?.({ userUs: cpu.user, systemUs: cpu.system });
  });
  process.on('disconnect', () => process.exit(0));
}

interface CpuReport {
  readonly userUs: number;
  readonly systemUs: number;
}

function ask<T>(child: ChildProcess): Promise<T> {
  return new Promise((resolve) => {
    child.once('message', (message) => resolve(message as T));
    child.send('cpu');
  });
}

/** One bearer token per stream: user i's JWT (Herald verifies it; the other two servers only carry it). */
async function tokens(count: number): Promise<string[]> {
  const key = new TextEncoder().encode(SECRET);
  const exp = Math.floor(Date.now() / 1000) + 3600;
  return Promise.all(Array.from({ length: count }, (_, i) => new SignJWT({ sub: `u${i}`, exp }).setProtectedHeader({ alg: 'HS256' }).sign(key)));
}

/** Opens one stream per token, 64 at a time, each a request like the load clients'. */
async function openStreams(port: number, bearers: readonly string[]): Promise<Socket[]> {
  const count = bearers.length;
  const request = (i: number): string => `GET /events HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\nAuthorization: Bearer ${bearers[i]}\r\n\r\n`;
  const sockets: Socket[] = [];
  let started = 0;
  let open = 0;
  await new Promise<void>((resolve, reject) => {
    const next = (): void => {
      if (started === count) return;
      const index = started++;
      const socket = connect(port, '127.0.0.1', () => socket.write(request(index)));
      sockets.push(socket);
      socket.once('error', reject);
      socket.once('data', () => {
        open++;
        if (open === count) resolve();
        else next();
      });
    };
    for (let i = 0; i < 64; i++) next();
  });
  return sockets;
}

async function measure(mode: Mode, bearers: readonly string[]): Promise<{ totalUs: number; systemUs: number }> {
  const count = bearers.length;
  const child = fork(new URL(import.meta.url).pathname, ['--serve', mode], { execArgv: ['--import', 'tsx', ...(process.env.HTTP_FLOOR_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.HTTP_FLOOR_CPU_PROF}`] : [])] });
  try {
    const { port } = await new Promise<{ port: number }>((resolve) => child.once('message', (m) => resolve(m as { port: number })));
    const before = await ask<CpuReport>(child);
    const sockets = await openStreams(port, bearers);
    const after = await ask<CpuReport>(child);
    for (const socket of sockets) socket.destroy();
    return {
      totalUs: (after.userUs + after.systemUs - before.userUs - before.systemUs) / count,
      systemUs: (after.systemUs - before.systemUs) / count,
    };
  } finally {
    await stop(child);
  }
}

/** Asks the child to exit (it writes its CPU profile, if any, on the way), and kills it by pid if it has not within 5 s. */
async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  if (child.connected) child.disconnect();
  const timer = setTimeout(() => {
    if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
  }, 5_000);
  await exited;
  clearTimeout(timer);
}

const { values } = parseArgs({ options: { serve: { type: 'string' }, connections: { type: 'string' }, runs: { type: 'string' } } });
if (values.serve !== undefined) {
  if (!MODES.includes(values.serve as Mode)) throw new Error(`--serve takes ${MODES.join(' or ')}`);
  serve(values.serve as Mode);
} else {
  const count = Number(values.connections ?? 10_000);
  const runs = Number(values.runs ?? 3);
  if (!Number.isInteger(count) || count < 1 || count > 19_000) throw new Error('--connections must be a whole number from 1 to 19000');
  if (!Number.isInteger(runs) || runs < 1 || runs > 20) throw new Error('--runs must be a whole number from 1 to 20');
  const bearers = await tokens(count);
  const label = { net: 'node:net, no HTTP server', http: 'node:http', hono: 'Hono on node:http', herald: 'Herald (local shape)' } as const;
  for (let run = 1; run <= runs; run++) {
    for (const mode of MODES) {
      const { totalUs, systemUs } = await measure(mode, bearers);
      console.log(`run ${run}, ${label[mode]}: ${totalUs.toFixed(0)} µs of server CPU per accepted stream (${systemUs.toFixed(0)} µs in the kernel), ${count} streams`);
    }
  }
}
