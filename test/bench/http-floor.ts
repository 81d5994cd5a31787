/**
 * The floors under Herald's two hot paths, each server in its own child
 * process (`floor-servers.ts`), measured by the same raw-socket client in one
 * run:
 *
 * - accept (`--phase accept`): server CPU per accepted stream while N streams
 *   open, 64 at a time: connect, `GET /events`, headers and a `ready` frame.
 * - publish (`--phase publish`): server CPU per `POST /publish` for one user,
 *   1 notification per POST, over 4 keep-alive connections in a closed loop,
 *   with N streams open, each delivery checked at its stream.
 *
 * The servers: `node:net` with no HTTP parser (a bound, not a server), bare
 * `node:http`, Hono on `node:http`, a Herald node in the local shape, and
 * nginx + Nchan as `--compare nchan` runs it (its own paths, a message per
 * POST, no authentication; only when `--servers` names it). What Herald costs above serving HTTP
 * with Node and Hono at all, what Node costs below its HTTP server, and where
 * Nchan sits among them, in one run.
 *
 *   npx tsx test/bench/http-floor.ts [--phase accept|publish] [--connections N] [--posts N] [--runs N] [--servers net,http,hono,herald,nchan]
 *
 * The parent stops each child (and nginx) by its pid. `HTTP_FLOOR_CPU_PROF=<dir>`
 * writes each Node server's V8 CPU profile there.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { SignJWT } from 'jose';
import { FLOOR_MODES, FLOOR_PUBLISH_TOKEN, FLOOR_SECRET, serveFloor, type FloorMode } from './floor-servers';
import { nchanPreflight, startNchanTarget } from './nchan-target';
import { intFlag } from './options';
import { installExitGuards } from './processes';

const PHASES = ['accept', 'publish'] as const;
const TARGETS = [...FLOOR_MODES, 'nchan'] as const;
type TargetName = (typeof TARGETS)[number];
type Phase = (typeof PHASES)[number];
/** Publish bodies carry this event name; each stream counts the frames that name it. */
const EVENT = 'floor';
const MARK = `event: ${EVENT}\n`;

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

/** One bearer token per stream: user i's JWT (Herald verifies it; the floors read `X-User`). */
async function tokens(count: number): Promise<string[]> {
  const key = new TextEncoder().encode(FLOOR_SECRET);
  const exp = Math.floor(Date.now() / 1000) + 3600;
  return Promise.all(Array.from({ length: count }, (_, i) => new SignJWT({ sub: `u${i}`, exp }).setProtectedHeader({ alg: 'HS256' }).sign(key)));
}

interface OpenStreams {
  readonly sockets: Socket[];
  /** Frames naming {@link EVENT} read on all streams so far. */
  delivered(): number;
}

/** Opens one stream per token, 64 at a time, each a request like the load clients', and counts the publish frames each then reads. */
async function openStreams(target: Target, bearers: readonly string[]): Promise<OpenStreams> {
  const { port } = target;
  const count = bearers.length;
  const request = (i: number): string =>
    `GET ${target.streamPath(i)} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\nAuthorization: Bearer ${bearers[i]}\r\nX-User: u${i}\r\n\r\n`;
  const sockets: Socket[] = [];
  let delivered = 0;
  let started = 0;
  let open = 0;
  await new Promise<void>((resolve, reject) => {
    const next = (): void => {
      if (started === count) return;
      const index = started++;
      const socket = connect(port, '127.0.0.1', () => socket.write(request(index)));
      sockets.push(socket);
      socket.once('error', reject);
      let answered = false;
      socket.once('close', () => {
        if (!answered) reject(new Error(`the server closed stream ${index} before answering it`));
      });
      // A mark split across two reads is found in the carried tail.
      let tail = '';
      socket.on('data', (data: Buffer) => {
        const text = tail + data.toString('latin1');
        for (let at = text.indexOf(MARK); at >= 0; at = text.indexOf(MARK, at + MARK.length)) delivered++;
        tail = text.slice(-(MARK.length - 1));
      });
      socket.once('data', () => {
        answered = true;
        open++;
        if (open === count) resolve();
        else next();
      });
    };
    for (let i = 0; i < 64; i++) next();
  });
  return { sockets, delivered: () => delivered };
}

/** Where a whole response ends in `buffer`, or -1 while it is incomplete (Content-Length or chunked bodies). */
function responseEnd(buffer: string): number {
  const headEnd = buffer.indexOf('\r\n\r\n');
  if (headEnd < 0) return -1;
  const head = buffer.slice(0, headEnd);
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  if (length) {
    const end = headEnd + 4 + Number(length[1]);
    return buffer.length >= end ? end : -1;
  }
  const last = buffer.indexOf('\r\n0\r\n\r\n', headEnd);
  return last < 0 ? -1 : last + 7;
}

/** `posts` POSTs for random users over `connections` keep-alive sockets, each waiting for its answer: the statuses seen. */
async function publishAll(target: Target, users: number, posts: number, connections: number): Promise<Map<string, number>> {
  const { port } = target;
  const statuses = new Map<string, number>();
  let sent = 0;
  const one = (): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      socket.setNoDelay(true);
      let buffer = '';
      const post = (): void => {
        if (sent === posts) {
          socket.end();
          resolve();
          return;
        }
        sent++;
        const { path, headers, body } = target.publishRequest(Math.floor(Math.random() * users), { n: sent });
        socket.write(`POST ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${headers}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      };
      socket.on('data', (data: Buffer) => {
        buffer += data.toString('latin1');
        for (let end = responseEnd(buffer); end >= 0; end = responseEnd(buffer)) {
          const status = buffer.slice(9, 12);
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
          buffer = buffer.slice(end);
          post();
        }
      });
      socket.once('error', reject);
      // After the last answer this is a no-op; before it, the run would otherwise wait for ever.
      socket.once('close', () => reject(new Error(`the server closed a publishing connection after ${sent} of ${posts} POSTs`)));
      socket.once('connect', post);
    });
  await Promise.all(Array.from({ length: connections }, one));
  return statuses;
}

interface Measured {
  readonly totalUs: number;
  readonly systemUs: number;
  readonly detail: string;
}

/** A server under measure: where it listens, its CPU so far, its paths, and how to stop it. */
interface Target {
  readonly port: number;
  cpu(): Promise<CpuReport>;
  streamPath(user: number): string;
  /** A POST for one user's stream: the path, header lines (each ending in CRLF) and the body. */
  publishRequest(user: number, data: unknown): { path: string; headers: string; body: string };
  stop(): Promise<void>;
}

/** A floor server or a Herald node, in a child process of this file: `POST /publish` with the publisher token. */
async function startChild(mode: FloorMode): Promise<Target> {
  const profile = process.env.HTTP_FLOOR_CPU_PROF;
  const child = fork(new URL(import.meta.url).pathname, ['--serve', mode], { execArgv: ['--import', 'tsx', ...(profile ? ['--cpu-prof', `--cpu-prof-dir=${profile}`] : [])] });
  const { port } = await new Promise<{ port: number }>((resolve) => child.once('message', (m) => resolve(m as { port: number })));
  const headers = `Authorization: Bearer ${FLOOR_PUBLISH_TOKEN}\r\nContent-Type: application/json\r\n`;
  return {
    port,
    cpu: () => ask<CpuReport>(child),
    streamPath: () => '/events',
    publishRequest: (user, data) => ({ path: '/publish', headers, body: JSON.stringify({ to: { users: [`u${user}`] }, event: EVENT, data }) }),
    stop: () => stop(child),
  };
}

/** nginx + Nchan as `--compare nchan` configures it: a stream per user channel, a message per POST, the event name in a header. */
async function startNchan(streams: number): Promise<Target> {
  const nchan = await startNchanTarget({ connections: streams, publishers: PUBLISH_CONNECTIONS, secret: '', publishToken: '', buildDir: '', nodes: 1, publishVia: 'http' });
  return {
    port: Number(new URL(nchan.url).port),
    cpu: async () => {
      const { totalUs, systemUs = 0 } = await nchan.cpu();
      return { userUs: totalUs - systemUs, systemUs };
    },
    streamPath: (user) => `/sub?user=u${user}`,
    publishRequest: (user, data) => ({ path: `/pub?user=u${user}`, headers: `X-EventSource-Event: ${EVENT}\r\n`, body: JSON.stringify(data) }),
    stop: () => nchan.stop(),
  };
}

async function measure(name: TargetName, phase: Phase, bearers: readonly string[], posts: number): Promise<Measured> {
  const count = bearers.length;
  const target = name === 'nchan' ? await startNchan(count) : await startChild(name);
  try {
    const cpuDelta = (before: CpuReport, after: CpuReport, per: number): { totalUs: number; systemUs: number } => ({
      totalUs: (after.userUs + after.systemUs - before.userUs - before.systemUs) / per,
      systemUs: (after.systemUs - before.systemUs) / per,
    });
    if (phase === 'accept') {
      const before = await target.cpu();
      const streams = await openStreams(target, bearers);
      const after = await target.cpu();
      for (const socket of streams.sockets) socket.destroy();
      return { ...cpuDelta(before, after, count), detail: `${count} streams` };
    }
    const streams = await openStreams(target, bearers);
    const before = await target.cpu();
    const statuses = await publishAll(target, count, posts, PUBLISH_CONNECTIONS);
    const after = await target.cpu();
    // Every delivery was written before its answer: a short wait is for the reading side only.
    const settleBy = Date.now() + 2_000;
    while (streams.delivered() < posts && Date.now() < settleBy) await new Promise((resolve) => setTimeout(resolve, 20));
    for (const socket of streams.sockets) socket.destroy();
    const answered = [...statuses].map(([status, n]) => `${n} × ${status}`).join(', ');
    return { ...cpuDelta(before, after, posts), detail: `${posts} POSTs to ${count} streams: ${answered}; ${streams.delivered()} delivered` };
  } finally {
    await target.stop();
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

/** The publish phase's keep-alive connections, as many as the bench's publisher uses. */
const PUBLISH_CONNECTIONS = 4;

const { values } = parseArgs({
  options: { serve: { type: 'string' }, phase: { type: 'string' }, connections: { type: 'string' }, posts: { type: 'string' }, runs: { type: 'string' }, servers: { type: 'string' } },
});
if (values.serve !== undefined) {
  if (!FLOOR_MODES.includes(values.serve as FloorMode)) throw new Error(`--serve takes ${FLOOR_MODES.join(' or ')}`);
  serveFloor(values.serve as FloorMode);
} else {
  const phases = values.phase === undefined ? PHASES : [values.phase as Phase];
  if (!phases.every((phase) => PHASES.includes(phase))) throw new Error(`--phase takes ${PHASES.join(' or ')}`);
  const count = intFlag(values, 'connections', 10_000, 1, 19_000);
  const posts = intFlag(values, 'posts', 20_000, 1, 1_000_000);
  const runs = intFlag(values, 'runs', 3, 1, 20);
  const targets = (values.servers?.split(',') ?? FLOOR_MODES) as TargetName[];
  if (targets.length === 0 || !targets.every((name) => TARGETS.includes(name))) throw new Error(`--servers takes a comma-separated list of ${TARGETS.join(', ')}`);
  if (targets.includes('nchan')) {
    installExitGuards((line) => console.error(`[http-floor] ${line}`));
    nchanPreflight(count, PUBLISH_CONNECTIONS);
  }
  const bearers = await tokens(count);
  const label = { net: 'node:net, no HTTP server', http: 'node:http', hono: 'Hono on node:http', herald: 'Herald (local shape)', nchan: 'nginx + Nchan' } as const;
  const per = { accept: 'accepted stream', publish: 'POST (1 delivery each)' } as const;
  for (let run = 1; run <= runs; run++) {
    for (const phase of phases) {
      for (const name of targets) {
        const { totalUs, systemUs, detail } = await measure(name, phase, bearers, posts);
        console.log(`run ${run}, ${phase}, ${label[name]}: ${totalUs.toFixed(0)} µs of server CPU per ${per[phase]} (${systemUs.toFixed(0)} µs in the kernel); ${detail}`);
      }
    }
  }
}
