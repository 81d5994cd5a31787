/**
 * nginx with the Nchan module (Debian's `nginx` and `libnginx-mod-nchan`), as
 * a target for the same phases as a Herald node: `--compare nchan` (side by
 * side with the local shape, in one run) or `--shape nchan` (alone).
 *
 * The config is written into a temp dir (its own pid file, error log and temp
 * paths), nginx runs in the foreground (`daemon off`) with one worker, the
 * counterpart of the node's one thread, on a free port on 127.0.0.1, and is
 * stopped by its pid like every other process of the bench (its worker too:
 * a worker outlives a killed master).
 *
 * Each stream subscribes to its user's channel and to the broadcast channel
 * over one EventSource connection (Nchan's channel multiplexing); a unicast is
 * `POST /pub?user=u<i>`, a broadcast `POST /pub/all`, one message per request.
 * Messages are kept for replay as Herald's history keeps them by default: 100
 * per channel, for an hour. Nchan has no authentication here: Herald's figures
 * include verifying a JWT per stream and the publisher's token, Nchan's do not.
 *
 * CPU and memory are read from /proc (master and worker): utime + stime in
 * clock ticks (10 ms), VmRSS, and Pss.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { childrenOf, clockTicksPerSecond, readProcMemory, readProcStat, type ProcStat } from './proc-stat';
import { track, trackPid, untrackPid } from './processes';
import { freePorts } from './node-fleet';
import { KeepAlivePoster, getText, type PublishOutcome } from './publisher';
import type { CpuSample, MemorySample, NodeUnderTest, Notification, PublishBody, ShapeOptions } from './shape';

const root = new URL('../../', import.meta.url).pathname;

/** As scripts/ensure-nchan.mjs finds them (it installs the packages when they are missing). */
const NGINX_PATH = process.env.HERALD_NGINX ?? '/usr/sbin/nginx';
const NCHAN_MODULE_PATH = process.env.HERALD_NCHAN_MODULE ?? '/usr/lib/nginx/modules/ngx_nchan_module.so';

/** Herald's defaults (HERALD_HISTORY_SIZE, HERALD_HISTORY_TTL_SECONDS, HERALD_HEARTBEAT_MS), so both keep and ping alike. */
export const NCHAN_SETTINGS = { bufferLength: 100, messageTimeoutS: 3600, pingIntervalS: 15 } as const;

/** The streams' path and when they are ready: Nchan sends `: hi` once the subscriber is enqueued. */
export const NCHAN_STREAM = { path: '/sub?user={user}', jwt: false, readyLine: ': hi' } as const;

export interface NginxConfOptions {
  /** Absolute path of the temp dir: pid file, error log and temp paths go under it. */
  readonly prefix: string;
  readonly port: number;
  readonly modulePath: string;
  /** worker_rlimit_nofile. */
  readonly nofile: number;
  readonly workerConnections: number;
  readonly bufferLength: number;
  readonly messageTimeoutS: number;
  readonly pingIntervalS: number;
  readonly sharedMemoryMb: number;
}

/** The whole nginx.conf, from its options alone (no I/O), so the text can be read and checked apart from nginx. */
export function renderNginxConf(o: NginxConfOptions): string {
  const publisher = (channel: string): string[] => [
    '      nchan_publisher http;',
    `      nchan_channel_id ${channel};`,
    `      nchan_message_buffer_length ${o.bufferLength};`,
    `      nchan_message_timeout ${o.messageTimeoutS}s;`,
  ];
  return [
    '# Written by test/bench/nchan-target.ts for `npm run bench -- --compare nchan`.',
    `load_module ${o.modulePath};`,
    'daemon off;',
    'master_process on;',
    '# One worker: the counterpart of the node\'s one thread.',
    'worker_processes 1;',
    `worker_rlimit_nofile ${o.nofile};`,
    `pid ${o.prefix}/nginx.pid;`,
    `error_log ${o.prefix}/error.log warn;`,
    'events {',
    `  worker_connections ${o.workerConnections};`,
    '}',
    'http {',
    '  access_log off;',
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((name) => `  ${name}_temp_path ${o.prefix}/tmp/${name};`),
    '  # The publishers\' keep-alive connections stay open for the whole run.',
    '  keepalive_requests 10000000;',
    `  nchan_shared_memory_size ${o.sharedMemoryMb}M;`,
    '  server {',
    `    listen 127.0.0.1:${o.port};`,
    '    location = /healthz {',
    '      return 200 "ok\\n";',
    '    }',
    '    # One EventSource connection per user, subscribed to its own channel and to the broadcast channel.',
    '    location = /sub {',
    '      nchan_subscriber eventsource;',
    '      nchan_channel_id "user_$arg_user" "broadcast";',
    '      # As a Herald stream opened without Last-Event-ID: only what is published from now on.',
    '      nchan_subscriber_first_message newest;',
    `      nchan_eventsource_ping_interval ${o.pingIntervalS};`,
    '      nchan_eventsource_ping_data "{}";',
    '    }',
    '    location = /pub {',
    ...publisher('"user_$arg_user"'),
    '    }',
    '    location = /pub/all {',
    ...publisher('"broadcast"'),
    '    }',
    '    location = /nchan_stub_status {',
    '      nchan_stub_status;',
    '    }',
    '  }',
    '}',
    '',
  ].join('\n');
}

/** `nchan_stub_status` as numbers: `shared memory used: 1824K` → 1867776; lines that are not numbers are left out. */
export function parseStubStatus(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^([a-z ]+): (\d+(?:\.\d+)?)([KMG]?)$/.exec(line.trim());
    if (!match) continue;
    const scale = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[match[3] as '' | 'K' | 'M' | 'G'];
    out.set(match[1]!, Number(match[2]) * scale);
  }
  return out;
}

/** The hard limit on open files (`Max open files` in /proc/self/limits), which nginx may raise its worker to. */
function openFilesHardLimit(): number {
  const match = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  const hard = match?.[2] === 'unlimited' ? 1_048_576 : Number(match?.[2]);
  return Number.isFinite(hard) && hard > 0 ? hard : 1024;
}

/**
 * Measured here: with these streams nginx logs "worker_connections are not
 * enough, reusing connections" (and closes idle keep-alive publishers and new
 * streams) at about 94 % of worker_connections held, at 1,000 and at 18,000
 * alike. So 10 % of headroom above the streams and the publishers, within the
 * open-files limit the worker may raise itself to.
 */
export function nginxWorkerConnections(streams: number, publishers: number, hardNofile: number): number {
  const wanted = Math.ceil(streams * 1.1) + publishers + 256;
  const most = hardNofile - 64;
  if (Math.ceil(streams * 1.07) + publishers + 16 > most) {
    throw new Error(
      `nginx's worker may open at most ${hardNofile} files here and runs out of connections at about 94 % of worker_connections: ` +
        `at most ${Math.floor((most - publishers - 16) / 1.07)} streams with ${publishers} publishers`,
    );
  }
  return Math.min(wanted, most);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Already gone.
  }
}

/** Installs the packages when missing (as root), or fails naming them: scripts/ensure-nchan.mjs, output on stderr. */
function ensurePackages(): void {
  const result = spawnSync(process.execPath, [join(root, 'scripts/ensure-nchan.mjs')], { stdio: ['ignore', 2, 2] });
  if (result.status !== 0) throw new Error(`scripts/ensure-nchan.mjs failed (exit ${result.status ?? result.signal ?? 'unknown'}): see the message above`);
  for (const path of [NGINX_PATH, NCHAN_MODULE_PATH]) if (!existsSync(path)) throw new Error(`${path} is missing after scripts/ensure-nchan.mjs`);
}

/** One POST per notification: Nchan publishes one message to one channel per request. */
function nchanRequest(notification: Notification): { path: string; body: string; headers: Record<string, string> } {
  const to = notification.to;
  let path: string;
  if ('all' in to) path = '/pub/all';
  else if (to.users.length === 1) path = `/pub?user=${encodeURIComponent(to.users[0]!)}`;
  else throw new Error('the Nchan target publishes to one user per request');
  // The `event:` line Herald frames with, so both streams carry the same frame.
  return { path, body: JSON.stringify(notification.data), headers: { 'X-EventSource-Event': notification.event } };
}

/**
 * What starting the target needs, checked before anything runs (`--compare`
 * runs Herald first): the packages, installed if missing, and room for the streams.
 */
export function nchanPreflight(connections: number, publishers: number): void {
  ensurePackages();
  nginxWorkerConnections(connections, publishers, openFilesHardLimit());
}

export async function startNchanTarget(options: ShapeOptions): Promise<NodeUnderTest> {
  ensurePackages();
  const hardNofile = openFilesHardLimit();
  const workerConnections = nginxWorkerConnections(options.connections, options.publishers, hardNofile);
  const prefix = mkdtempSync(join(tmpdir(), 'herald-nchan-'));
  // Started as root, the master runs its worker as `nobody`, which must reach the temp paths under it.
  chmodSync(prefix, 0o755);
  mkdirSync(join(prefix, 'tmp'));
  const removePrefix = (): void => rmSync(prefix, { recursive: true, force: true });
  process.once('exit', removePrefix);
  const port = (await freePorts(1))[0]!;
  const confPath = join(prefix, 'nginx.conf');
  const errorLog = join(prefix, 'error.log');
  writeFileSync(
    confPath,
    renderNginxConf({ prefix, port, modulePath: NCHAN_MODULE_PATH, nofile: hardNofile, workerConnections, sharedMemoryMb: 256, ...NCHAN_SETTINGS }),
  );
  /** What nginx complained about during the run (alerts, errors), on stderr before its temp dir goes: counted by message. */
  const reportErrorLog = (): void => {
    let text: string;
    try {
      text = readFileSync(errorLog, 'utf8');
    } catch {
      return;
    }
    const counts = new Map<string, number>();
    for (const line of text.split('\n')) {
      // `2026/12/04 16:01:39 [alert] 28954#28954: *123 message, client: …`: the level and the message, without time, pids and connection.
      const match = /^\S+ \S+ \[(\w+)\] \d+#\d+: (?:\*\d+ )?(.*?)(?:, client: .*)?$/.exec(line);
      if (!match || match[1] === 'notice' || match[1] === 'info') continue;
      const key = `[${match[1]!}] ${match[2]!}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    if (counts.size === 0) return;
    process.stderr.write(`[bench] nginx's error log (${errorLog}), by message:\n${[...counts].map(([line, n]) => `  ${n} × ${line}`).join('\n')}\n`);
  };
  const errorLogTail = (): string => {
    try {
      return readFileSync(errorLog, 'utf8').trim().split('\n').slice(-10).join('\n');
    } catch {
      return '';
    }
  };

  // -e: the error log from the first line on (Debian's default is stderr).
  const master = spawn(NGINX_PATH, ['-p', `${prefix}/`, '-c', confPath, '-e', errorLog], { stdio: ['ignore', 'ignore', 'pipe'] });
  track(master);
  let stderr = '';
  master.stderr.setEncoding('utf8');
  master.stderr.on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-4000)));
  let exited: string | undefined;
  master.once('exit', (code, signal) => (exited = `code ${code}, signal ${signal}`));
  master.once('error', (error) => (exited ??= error.message));
  const running = (): boolean => master.exitCode === null && master.signalCode === null;
  const url = `http://127.0.0.1:${port}`;
  const masterPid = master.pid;
  if (masterPid === undefined) throw new Error(`could not start ${NGINX_PATH}`);

  let worker: ProcStat | undefined;
  const isStill = (stat: ProcStat) => (pid: number): boolean => readProcStat(pid)?.startTicks === stat.startTicks;
  const stopNginx = async (): Promise<void> => {
    if (running()) {
      const gone = new Promise<void>((resolve) => master.once('exit', () => resolve()));
      // SIGTERM: nginx's fast shutdown; the master waits for its worker, then exits.
      signal(masterPid, 'SIGTERM');
      await Promise.race([gone, sleep(5000)]);
      if (running()) {
        signal(masterPid, 'SIGKILL');
        await gone;
      }
    }
    if (worker) {
      if (isStill(worker)(worker.pid)) signal(worker.pid, 'SIGKILL');
      untrackPid(worker.pid);
    }
  };

  try {
    const deadline = performance.now() + 15_000;
    for (;;) {
      if (exited !== undefined) throw new Error(`nginx exited during start (${exited}):\n${stderr}${errorLogTail()}`);
      if (performance.now() > deadline) throw new Error(`nginx did not answer ${url}/healthz within 15 s:\n${stderr}${errorLogTail()}`);
      const ok = await getText(`${url}/healthz`).then(() => true, () => false);
      worker = childrenOf(masterPid).find((child) => child.comm === 'nginx');
      if (ok && worker) break;
      await sleep(50);
    }
  } catch (error) {
    await stopNginx();
    removePrefix();
    throw error;
  }
  const theWorker = worker;
  trackPid(theWorker.pid, isStill(theWorker));

  /** The master and its worker; fails if the worker is no longer the one that started (it crashed and was respawned). */
  const processes = (): { master: ProcStat; worker: ProcStat } => {
    const m = readProcStat(masterPid);
    const w = readProcStat(theWorker.pid);
    if (!m || !w || w.startTicks !== theWorker.startTicks || w.ppid !== masterPid) {
      throw new Error(`nginx's worker (pid ${theWorker.pid}) is gone: its CPU and memory can no longer be read.\n${errorLogTail()}`);
    }
    return { master: m, worker: w };
  };
  const ticks = clockTicksPerSecond();
  const poster = new KeepAlivePoster(url, options.publishers);
  const stubStatus = async (): Promise<Map<string, number>> => parseStubStatus(await getText(`${url}/nchan_stub_status`));

  const publishOne = async (notification: Notification): Promise<PublishOutcome> => {
    const { path, body, headers } = nchanRequest(notification);
    const outcome = await poster.post(path, body, headers);
    // 201: published to a channel with subscribers, 202: without. Both are what Herald's 202 is.
    return outcome.status === 201 || outcome.status === 202 ? { status: 202, body: outcome.body } : outcome;
  };

  return {
    url,
    stream: NCHAN_STREAM,
    maxBatch: 1,
    description: `nginx ${nginxVersion()} + Nchan (Debian's packages), master pid ${masterPid}, worker pid ${theWorker.pid}, 1 worker, memory store, config ${confPath}`,
    notes: [
      'nginx + Nchan: no authentication (Herald verifies a JWT per stream and the publisher\'s token); one message per POST (Nchan cannot put messages to different channels in one request)',
      `nginx + Nchan: CPU is utime + stime of master and worker from /proc/<pid>/stat, in ${1000 / ticks} ms clock ticks; memory is VmRSS of master and worker (no GC to force)`,
      `nginx + Nchan: each stream subscribes to its user's channel and the broadcast channel (multiplexed); ${NCHAN_SETTINGS.bufferLength} messages kept per channel for ${NCHAN_SETTINGS.messageTimeoutS} s, a ping every ${NCHAN_SETTINGS.pingIntervalS} s, as Herald's defaults`,
    ],
    publish: async (body: PublishBody): Promise<PublishOutcome> => {
      if ('notifications' in body) {
        if (body.notifications.length !== 1) throw new Error('the Nchan target takes one notification per publish (--batch 1)');
        return publishOne(body.notifications[0]!);
      }
      return publishOne(body);
    },
    memory: async (): Promise<MemorySample> => {
      const { master: m, worker: w } = processes();
      const mm = readProcMemory(m.pid);
      const wm = readProcMemory(w.pid);
      if (!mm || !wm) throw new Error('cannot read nginx\'s memory from /proc');
      const status = await stubStatus().catch(() => new Map<string, number>());
      const shm = status.get('shared memory used');
      return {
        rss: mm.rss + wm.rss,
        heapUsed: NaN,
        afterGc: false,
        parts: {
          'worker RSS': wm.rss,
          'master RSS': mm.rss,
          ...(wm.pss !== undefined && mm.pss !== undefined ? { 'master + worker Pss': wm.pss + mm.pss } : {}),
          ...(shm === undefined ? {} : { 'Nchan shared memory used': shm }),
        },
      };
    },
    cpu: (): Promise<CpuSample> => {
      const { master: m, worker: w } = processes();
      const us = (t: number): number => (t * 1e6) / ticks;
      return Promise.resolve({ totalUs: us(m.utimeTicks + m.stimeTicks + w.utimeTicks + w.stimeTicks), systemUs: us(m.stimeTicks + w.stimeTicks) });
    },
    counters: stubStatus,
    stop: async () => {
      poster.close();
      await stopNginx();
      reportErrorLog();
      removePrefix();
    },
  };
}

function nginxVersion(): string {
  const result = spawnSync(NGINX_PATH, ['-v'], { encoding: 'utf8' });
  return /nginx\/(\S+)/.exec(`${result.stderr}${result.stdout}`)?.[1] ?? '?';
}
