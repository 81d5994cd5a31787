/**
 * Real `redis-server` processes for `npm run cluster -- --redis`, the Redis
 * tests and the benchmark: one server, or a Redis Cluster of three masters.
 * Each runs without persistence in a temp dir of its own, on 127.0.0.1, and
 * is stopped by its pid.
 *
 * Redis refuses `--port 0`, so a port is picked by binding a throwaway server
 * to port 0 and closing it; another process may take it in between, so a
 * server that exits before answering PING is started again on another port.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

export const REDIS_SERVER = process.env.HERALD_REDIS_SERVER ?? '/usr/bin/redis-server';
export const REDIS_CLI = process.env.HERALD_REDIS_CLI ?? '/usr/bin/redis-cli';

const HOST = '127.0.0.1';
const START_ATTEMPTS = 5;
const READY_TIMEOUT_MS = 10_000;
/** A cluster node also listens on its port + 10000 (the cluster bus). */
const CLUSTER_BUS_OFFSET = 10_000;

export interface RedisServer {
  readonly port: number;
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  readonly pid: number;
  /** Kills the server (SIGKILL: nothing to save) and waits for it to exit. Idempotent. */
  stop(): Promise<void>;
  /** Stops it and starts a new, empty one on the same port: a restart without persistence. */
  restart(): Promise<void>;
  /** Kills the server (SIGKILL) and waits for it to exit, keeping its port for `start()`: an outage. */
  kill(): Promise<void>;
  /** After `kill()`: a new, empty server on the same port. */
  start(): Promise<void>;
}

export interface RedisClusterServers {
  /** The masters' URLs, to seed a cluster client. */
  readonly urls: readonly string[];
  readonly servers: readonly RedisServer[];
  stop(): Promise<void>;
}

interface StartOptions {
  readonly cluster?: boolean;
  /** `--requirepass` (and `--masterauth`, for a cluster): clients must AUTH with it. */
  readonly password?: string;
  /**
   * In a process group of its own, so a Ctrl-C in the terminal reaches only
   * the script that started it, which stops it after the nodes have drained. @default false
   */
  readonly detached?: boolean;
}

/** Every server this process started and has not stopped, killed if the process exits first. */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** A port that was free a moment ago (and whose cluster bus port, for a cluster node, is below 65536). */
async function freePort(cluster: boolean): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const probe = createServer();
      probe.once('error', reject);
      probe.listen(0, HOST, () => {
        const { port: picked } = probe.address() as AddressInfo;
        probe.close(() => resolve(picked));
      });
    });
    if (!cluster || port + CLUSTER_BUS_OFFSET < 65_536) return port;
  }
}

/**
 * Sends one command inline and resolves with the raw reply text once a full
 * line (or bulk) has arrived. With a password, AUTH goes first and its `+OK`
 * is left out of the reply.
 */
export function rawCommand(port: number, command: string, timeoutMs = 1_000, password?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: HOST, port });
    let text = '';
    const timer = setTimeout(() => fail(new Error(`no answer to ${command} on port ${port} within ${timeoutMs} ms`)), timeoutMs);
    function fail(error: Error): void {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    }
    socket.setEncoding('utf8');
    socket.on('error', fail);
    socket.on('connect', () => socket.write(password === undefined ? `${command}\r\n` : `AUTH ${password}\r\n${command}\r\n`));
    let authenticated = password === undefined;
    socket.on('data', (chunk: string) => {
      text += chunk;
      if (!authenticated) {
        if (!text.includes('\r\n')) return;
        if (!text.startsWith('+OK\r\n')) return fail(new Error(`AUTH on port ${port} answered ${text.trim()}`));
        text = text.slice('+OK\r\n'.length);
        authenticated = true;
      }
      const bulk = /^\$(\d+)\r\n/.exec(text);
      const complete = bulk ? text.length >= bulk[0].length + Number(bulk[1]) + 2 : text.includes('\r\n');
      if (!complete) return;
      clearTimeout(timer);
      socket.end();
      resolve(text);
    });
  });
}

async function waitUntil(check: () => Promise<boolean>, exited: () => boolean, label: string): Promise<void> {
  const until = Date.now() + READY_TIMEOUT_MS;
  while (!exited()) {
    if (await check().catch(() => false)) return;
    if (Date.now() > until) throw new Error(`timed out after ${READY_TIMEOUT_MS} ms waiting for ${label}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`${label}: the server exited`);
}

/** One attempt: resolves with the child once it answers PING, rejects if it exits first (port taken, say). */
async function launch(port: number, dir: string, options: StartOptions): Promise<ChildProcess> {
  const args = ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', ''];
  if (options.password !== undefined) args.push('--requirepass', options.password, '--masterauth', options.password);
  if (options.cluster === true) args.push('--cluster-enabled', 'yes', '--cluster-config-file', join(dir, 'nodes.conf'), '--cluster-node-timeout', '5000');
  const child = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: options.detached ?? false });
  running.add(child);
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-4_000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let exited = false;
  child.once('exit', () => {
    exited = true;
    running.delete(child);
  });
  const spawnError = new Promise<never>((_, reject) => child.once('error', reject));
  try {
    await Promise.race([
      spawnError,
      waitUntil(async () => (await rawCommand(port, 'PING', 1_000, options.password)).startsWith('+PONG'), () => exited, `redis-server on port ${port} to answer PING`),
    ]);
    return child;
  } catch (error) {
    child.kill('SIGKILL');
    throw new Error(`redis-server on port ${port} did not start: ${error instanceof Error ? error.message : String(error)}\n${output}`, { cause: error });
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // By pid, as the tests' own rule says; SIGKILL because there is nothing to flush.
  if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
  await exited;
}

/** Starts `redis-server` on a free port in a temp dir, and waits until it answers PING. */
export async function startRedisServer(options: StartOptions = {}): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'herald-redis-'));
  let child: ChildProcess | undefined;
  let port = 0;
  let lastError: unknown;
  for (let attempt = 0; attempt < START_ATTEMPTS && child === undefined; attempt++) {
    port = await freePort(options.cluster === true);
    try {
      child = await launch(port, dir, options);
    } catch (error) {
      lastError = error;
    }
  }
  if (child === undefined) {
    rmSync(dir, { recursive: true, force: true });
    throw lastError instanceof Error ? lastError : new Error('redis-server did not start');
  }
  let current: ChildProcess = child;
  let stopped = false;
  const credentials = options.password === undefined ? '' : `:${encodeURIComponent(options.password)}@`;
  const kill = async (): Promise<void> => {
    if (stopped) throw new Error('this redis-server was stopped');
    await stopChild(current);
  };
  const start = async (): Promise<void> => {
    if (stopped) throw new Error('this redis-server was stopped');
    if (current.exitCode === null && current.signalCode === null) throw new Error(`redis-server on port ${port} is still running`);
    // The port is ours again only as long as nobody took it meanwhile: retry a few times.
    let error: unknown;
    for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
      try {
        current = await launch(port, dir, options);
        return;
      } catch (failed) {
        error = failed;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    throw error instanceof Error ? error : new Error(`redis-server did not restart on port ${port}`);
  };
  return {
    port,
    url: `redis://${credentials}${HOST}:${port}`,
    get pid(): number {
      return current.pid!;
    },
    async stop(): Promise<void> {
      if (stopped) return;
      stopped = true;
      await stopChild(current);
      rmSync(dir, { recursive: true, force: true });
    },
    async restart(): Promise<void> {
      await kill();
      await start();
    },
    kill,
    start,
  };
}

const execFileAsync = promisify(execFile);

/**
 * Three masters and no replicas, the slots spread by `redis-cli --cluster
 * create`; resolves once every master reports `cluster_state:ok`.
 */
export async function startRedisCluster(masters = 3, options: { readonly password?: string } = {}): Promise<RedisClusterServers> {
  const servers: RedisServer[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(servers.map((s) => s.stop()));
  };
  try {
    for (let i = 0; i < masters; i++) servers.push(await startRedisServer({ cluster: true, ...options }));
    const addresses = servers.map((s) => `${HOST}:${s.port}`);
    // REDISCLI_AUTH rather than -a: redis-cli warns about a password on its command line.
    const env = options.password === undefined ? process.env : { ...process.env, REDISCLI_AUTH: options.password };
    await execFileAsync(REDIS_CLI, ['--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes'], { timeout: 30_000, env });
    for (const server of servers) {
      await waitUntil(
        async () => (await rawCommand(server.port, 'CLUSTER INFO', 1_000, options.password)).includes('cluster_state:ok'),
        () => false,
        `cluster_state:ok on port ${server.port}`,
      );
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { urls: servers.map((s) => s.url), servers, stop };
}
