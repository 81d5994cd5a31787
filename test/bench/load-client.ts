/**
 * A load client process: holds a few thousand SSE streams on raw `node:net`
 * sockets, all from one 127.0.0.x source address, and reports over IPC.
 *
 * Parsing is deliberately minimal, cheap enough that one process keeps up with
 * thousands of streams: it splits on LF (chunked-encoding size lines end in
 * CRLF and are simply ignored, since every SSE frame ends in LF), counts
 * `event:` names, and reads the bench's own data, `{"b":"<tag>","t":<ns>}`,
 * where `t` is the publisher's `process.hrtime.bigint()` minus the shared
 * epoch. CLOCK_MONOTONIC is one clock for every process on Linux, so `now - t`
 * is the publish→read latency across processes.
 *
 * Another server's streams (`--compare nchan`) are opened as the open command's
 * `stream` says: its path, with or without a JWT, and the line that makes one
 * ready. Nchan's EventSource frames are `id:` and `data:` lines whose data is
 * exactly what was POSTed, the same `{"b":…,"t":…}`, so the parsing is shared.
 */
import { connect, type Socket } from 'node:net';
import { SignJWT } from 'jose';
import { serve, type ClientReport, type OpenCommand, type OpenResult, type ReconnectCommand, type StreamSpec, type TagReport } from './ipc';
import { LatencyHistogram } from './stats';

interface Stream {
  readonly user: number;
  readonly socket: Socket;
  /** Where and as whom it connected: what a reconnect uses again. */
  readonly url: URL;
  readonly token: string;
  /** The last `id:` read: the reconnect's `Last-Event-ID`. */
  lastId: string | undefined;
  /** Closed by the client itself to reconnect: not a loss. */
  leaving: boolean;
  phase: 'head' | 'refused' | 'live';
  rest: string;
  status: number;
  error: string | undefined;
  /** Set until the stream is ready or has failed to open. */
  settle: ((outcome: string) => void) | undefined;
}

interface TagState {
  count: number;
  lastArrivalNs: number;
  readonly latency: LatencyHistogram;
}

const DATA_PREFIX = 'data: {"b":"';
const streams = new Set<Stream>();
const tags = new Map<string, TagState>();
const events: Record<string, number> = {};
const lost: Record<string, number> = {};
let epochNs = 0n;
let closing = false;
/** Set by the open command when the streams are not a Herald node's. */
let spec: StreamSpec | undefined;

function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

function record(tag: string, sentNs: number, nowNs: number): void {
  let state = tags.get(tag);
  if (!state) {
    state = { count: 0, lastArrivalNs: 0, latency: new LatencyHistogram() };
    tags.set(tag, state);
  }
  state.count++;
  if (nowNs > state.lastArrivalNs) state.lastArrivalNs = nowNs;
  state.latency.record((nowNs - sentNs) / 1000);
}

function onLine(stream: Stream, text: string, start: number, end: number, nowNs: number): void {
  const first = text.charCodeAt(start);
  if (first === 100 /* d */ && text.startsWith(DATA_PREFIX, start)) {
    const tagStart = start + DATA_PREFIX.length;
    const tagEnd = text.indexOf('"', tagStart);
    const t = text.indexOf('"t":', tagEnd);
    if (tagEnd < 0 || t < 0 || t > end) return;
    record(text.slice(tagStart, tagEnd), parseInt(text.slice(t + 4, end), 10), nowNs);
  } else if (first === 105 /* i */ && text.startsWith('id: ', start)) {
    stream.lastId = text.slice(start + 4, end);
  } else if (first === 101 /* e */ && text.startsWith('event: ', start)) {
    const name = text.slice(start + 7, end);
    bump(events, name);
    if (name === 'ready' && stream.settle && !spec) {
      stream.settle('ready');
      stream.settle = undefined;
    }
  }
  if (spec && stream.settle && end - start === spec.readyLine.length && text.startsWith(spec.readyLine, start)) {
    stream.settle('ready');
    stream.settle = undefined;
  }
}

function onData(stream: Stream, chunk: string): void {
  const text = stream.rest + chunk;
  let start = 0;
  if (stream.phase !== 'live') {
    const headEnd = text.indexOf('\r\n\r\n');
    if (stream.phase === 'refused' || headEnd < 0) {
      stream.rest = text.length > 64 * 1024 ? '' : text;
      return;
    }
    stream.status = Number(text.slice(9, 12));
    if (stream.status !== 200) {
      // Keep reading: the JSON body says which refusal it was.
      stream.phase = 'refused';
      stream.rest = text;
      return;
    }
    stream.phase = 'live';
    start = headEnd + 4;
  }
  const nowNs = Number(process.hrtime.bigint() - epochNs);
  for (let nl = text.indexOf('\n', start); nl >= 0; nl = text.indexOf('\n', start)) {
    if (nl > start) onLine(stream, text, start, nl, nowNs);
    start = nl + 1;
  }
  stream.rest = start >= text.length ? '' : text.slice(start);
}

function onClose(stream: Stream): void {
  streams.delete(stream);
  const reason =
    stream.phase === 'refused'
      ? `http ${stream.status} ${/"error":"([a-z_]+)"/.exec(stream.rest)?.[1] ?? ''}`.trim()
      : (stream.error ?? (stream.phase === 'live' ? 'closed by server' : 'closed before response'));
  if (stream.settle) {
    stream.settle(reason);
    stream.settle = undefined;
  } else if (!closing && !stream.leaving) {
    bump(lost, reason);
  }
}

function openOne(url: URL, token: string, user: number, command: { localAddress: string; timeoutMs: number }, lastEventId?: string): Promise<string> {
  return new Promise<string>((resolve) => {
    const socket = connect({ host: url.hostname, port: Number(url.port), localAddress: command.localAddress });
    socket.setEncoding('latin1');
    socket.setNoDelay(true);
    const timer = setTimeout(() => {
      stream.error = 'timeout';
      socket.destroy();
    }, command.timeoutMs);
    const stream: Stream = {
      user,
      socket,
      url,
      token,
      lastId: lastEventId,
      leaving: false,
      phase: 'head',
      rest: '',
      status: 0,
      error: undefined,
      settle: (outcome) => {
        clearTimeout(timer);
        resolve(outcome);
      },
    };
    streams.add(stream);
    const resume = lastEventId === undefined ? '' : `Last-Event-ID: ${lastEventId}\r\n`;
    const path = spec ? spec.path.replaceAll('{user}', `u${user}`) : '/events';
    const auth = spec && !spec.jwt ? '' : `Authorization: Bearer ${token}\r\n`;
    socket.write(`GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\nAccept: text/event-stream\r\n${auth}${resume}\r\n`);
    socket.on('data', (chunk: string) => onData(stream, chunk));
    socket.on('error', (error: NodeJS.ErrnoException) => (stream.error ??= error.code ?? error.message));
    socket.on('close', () => onClose(stream));
  });
}

async function openAll(command: OpenCommand): Promise<OpenResult> {
  epochNs = command.epochNs;
  localAddress = command.localAddress;
  spec = command.stream;
  const urls = (command.urls && command.urls.length > 0 ? command.urls : [command.url]).map((u) => new URL(u));
  const secret = new TextEncoder().encode(command.secret);
  const expires = Math.floor(Date.now() / 1000) + 3600;
  const startedMs = performance.now();
  const opened: number[] = [];
  const failures: Record<string, number> = {};
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < command.count) {
      const user = command.first + next++;
      // Each connection is a distinct user, as an identity provider would sign it.
      const token = spec && !spec.jwt ? '' : await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(`u${user}`).setIssuedAt().setExpirationTime(expires).sign(secret);
      const outcome = await openOne(urls[user % urls.length]!, token, user, command);
      if (outcome === 'ready') opened.push(user);
      else bump(failures, outcome);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(command.concurrency, command.count)) }, worker));
  return { opened: opened.sort((a, b) => a - b), failures, ms: performance.now() - startedMs };
}

let localAddress = '127.0.0.1';

/** Closes each chosen stream, waits for the close, and opens it again from its last id. */
async function reconnect(command: ReconnectCommand): Promise<OpenResult> {
  const startedMs = performance.now();
  const chosen = [...streams].filter((s) => s.phase === 'live' && !s.settle).slice(0, command.count);
  const reopened: number[] = [];
  const failures: Record<string, number> = {};
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < chosen.length) {
      const old = chosen[next++]!;
      old.leaving = true;
      await new Promise<void>((resolve) => {
        old.socket.once('close', () => resolve());
        old.socket.destroy();
      });
      const outcome = await openOne(old.url, old.token, old.user, { localAddress, timeoutMs: command.timeoutMs }, old.lastId);
      if (outcome === 'ready') reopened.push(old.user);
      else bump(failures, outcome);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(command.concurrency, chosen.length)) }, worker));
  return { opened: reopened.sort((a, b) => a - b), failures, ms: performance.now() - startedMs };
}

function report(wanted: readonly string[]): ClientReport {
  const out: Record<string, TagReport> = {};
  for (const tag of wanted) {
    const state = tags.get(tag) ?? { count: 0, lastArrivalNs: 0, latency: new LatencyHistogram() };
    out[tag] = { count: state.count, lastArrivalNs: state.lastArrivalNs, latency: state.latency.toData() };
  }
  let open = 0;
  for (const stream of streams) if (stream.phase === 'live' && !stream.settle) open++;
  const cpu = process.cpuUsage();
  return { open, lost: { ...lost }, events: { ...events }, tags: out, cpuUs: cpu.user + cpu.system };
}

serve(
  {
    open: (request) => openAll(request as unknown as OpenCommand),
    report: (request) => report(request.tags as string[]),
    reconnect: (request) => reconnect(request as unknown as ReconnectCommand),
    close: () => {
      closing = true;
      for (const stream of streams) stream.socket.destroy();
      return streams.size;
    },
  },
  {},
);
