import { createHash } from 'node:crypto';
import { createClient, createCluster } from 'redis';
import { unavailable } from '../../protocol/faults';
import { isNoScript, redisFault } from './redis-faults';

/**
 * A reply as RESP2 gives it with no type mapping: bulk and simple strings,
 * integers, nil, and arrays of those. Lua tables come back as arrays, Lua
 * `false` as nil. Error replies reject instead.
 */
export type RedisReply = string | number | null | readonly RedisReply[];

/** A Lua script with its SHA1, sent by EVALSHA and loaded on NOSCRIPT. */
export interface LuaScript {
  /** For logs and error messages. */
  readonly name: string;
  readonly source: string;
  readonly sha1: string;
}

export function luaScript(name: string, source: string): LuaScript {
  return { name, source, sha1: createHash('sha1').update(source).digest('hex') };
}

/**
 * The few things the Redis adapters ask of a server or a cluster. Every
 * command names a key: a cluster sends it to the shard that owns the key's
 * slot, a single server ignores it. A command or script on several keys must
 * keep them in one slot (hash tags, see redis-keys.ts).
 */
export interface RedisCommands {
  command(key: string, args: readonly string[]): Promise<RedisReply>;
  script(script: LuaScript, keys: readonly string[], args: readonly string[]): Promise<RedisReply>;
}

export interface RedisConnection extends RedisCommands {
  /**
   * A new connection (set) of its own, for a command that blocks on the
   * server (XREAD BLOCK): on a shared connection every command would wait
   * behind it. Its owner closes it.
   */
  dedicated(): Promise<RedisConnection>;
  /** Lets commands in flight finish (for at most a second), then closes. Idempotent. */
  close(): Promise<void>;
  /** Closes at once; commands in flight (a blocked XREAD) reject. Idempotent. */
  destroy(): void;
}

export interface RedisConnectionOptions {
  /** `redis://host:port` of the server, or seeds of a cluster. */
  readonly url: string | readonly string[];
  /** @default true when more than one URL is given */
  readonly cluster?: boolean;
  /** A command without a reply by then rejects with `unavailable` (it may have run). @default 2000 */
  readonly commandTimeoutMs?: number;
  /** The first connection, and each reconnection attempt. @default 5000 */
  readonly connectTimeoutMs?: number;
  /** Connection trouble the client reports between commands (it reconnects on its own). */
  readonly onError?: (error: unknown) => void;
}

interface SendOptions {
  readonly timeout: number;
  readonly rejectInFlight: true;
}

/** How one command reaches the server: the single client ignores the key, the cluster routes by it. */
type Send = (key: string, args: string[], options: SendOptions) => Promise<unknown>;

/** What is used of node-redis's clients, typed by hand: their generic types do not survive `duplicate()`. */
interface Closable {
  on(event: 'error', listener: (error: unknown) => void): unknown;
  connect(): Promise<unknown>;
  close(): Promise<void>;
  destroy(): void;
}

interface SingleClient extends Closable {
  sendCommand(args: string[], options: SendOptions): Promise<unknown>;
  duplicate(): SingleClient;
}

interface ClusterClient extends Closable {
  sendCommand(firstKey: string, isReadonly: boolean, args: string[], options: SendOptions): Promise<unknown>;
  duplicate(overrides: { minimizeConnections: boolean }): ClusterClient;
}

interface Client {
  readonly send: Send;
  connect(): Promise<unknown>;
  close(): Promise<void>;
  destroy(): void;
  duplicate(): Client;
}

/** Doubling, capped, jittered: a fleet of nodes must not reconnect in lockstep after an outage. */
function reconnectDelay(retries: number): number {
  const ceiling = Math.min(2_000, 50 * 2 ** Math.min(retries, 10));
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}

function makeClient(options: RedisConnectionOptions): Client {
  const urls = typeof options.url === 'string' ? [options.url] : [...options.url];
  if (urls.length === 0) throw new Error('redis: at least one URL is needed');
  const onError = options.onError ?? (() => undefined);
  // RESP2: flat arrays for every reply, the shape Lua replies have anyway. No offline
  // queue: while reconnecting, a command fails at once (unavailable) instead of waiting.
  const socket = { connectTimeout: options.connectTimeoutMs ?? 5_000, reconnectStrategy: reconnectDelay };
  if (options.cluster ?? urls.length > 1) {
    const make = (cluster: ClusterClient): Client => {
      cluster.on('error', onError);
      return {
        send: (key, args, commandOptions) => cluster.sendCommand(key, false, args, commandOptions),
        connect: () => cluster.connect(),
        close: () => cluster.close(),
        destroy: () => cluster.destroy(),
        // Only the shards its keys live on: a reader blocks on one or two keys.
        duplicate: () => make(cluster.duplicate({ minimizeConnections: true })),
      };
    };
    // The client connects to the nodes it discovers with `defaults` alone, not with what a
    // seed URL says: TLS and credentials must be there too, or every other shard refuses.
    const seed = new URL(urls[0]!);
    const credentials = {
      ...(seed.username === '' ? {} : { username: decodeURIComponent(seed.username) }),
      ...(seed.password === '' ? {} : { password: decodeURIComponent(seed.password) }),
    };
    const defaults = { socket: { ...socket, tls: seed.protocol === 'rediss:' }, ...credentials, disableOfflineQueue: true };
    return make(createCluster({ rootNodes: urls.map((url) => ({ url })), defaults, RESP: 2 }));
  }
  const make = (client: SingleClient): Client => {
    client.on('error', onError);
    return {
      send: (_key, args, commandOptions) => client.sendCommand(args, commandOptions),
      connect: () => client.connect(),
      close: () => client.close(),
      destroy: () => client.destroy(),
      duplicate: () => make(client.duplicate()),
    };
  };
  return make(createClient({ url: urls[0], socket, disableOfflineQueue: true, RESP: 2 }));
}

/**
 * Connects to a single server or a cluster, and resolves once it answers (or
 * rejects with `unavailable` after `connectTimeoutMs`: the client itself would
 * retry for ever).
 */
export async function connectRedis(options: RedisConnectionOptions): Promise<RedisConnection> {
  return open(makeClient(options), options);
}

async function open(client: Client, options: RedisConnectionOptions): Promise<RedisConnection> {
  const connectTimeoutMs = options.connectTimeoutMs ?? 5_000;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(unavailable(`redis did not answer within ${connectTimeoutMs} ms`)), connectTimeoutMs);
  });
  try {
    await Promise.race([client.connect(), deadline]);
  } catch (error) {
    destroyQuietly(client);
    throw redisFault(error, 'connect');
  } finally {
    clearTimeout(timer);
  }
  return new Connection(client, options);
}

class Connection implements RedisConnection {
  private closed = false;
  private closing: Promise<void> | undefined;
  private readonly commandOptions: { timeout: number; rejectInFlight: true };

  constructor(
    private readonly client: Client,
    private readonly options: RedisConnectionOptions,
  ) {
    this.commandOptions = { timeout: options.commandTimeoutMs ?? 2_000, rejectInFlight: true };
  }

  async command(key: string, args: readonly string[]): Promise<RedisReply> {
    if (this.closed) throw unavailable('redis connection is closed');
    try {
      return (await this.client.send(key, [...args], this.commandOptions)) as RedisReply;
    } catch (error) {
      throw redisFault(error, args[0] ?? 'command');
    }
  }

  async script(script: LuaScript, keys: readonly string[], args: readonly string[]): Promise<RedisReply> {
    if (this.closed) throw unavailable('redis connection is closed');
    const [first] = keys;
    if (first === undefined) throw new Error(`script ${script.name} names no key: it could not be routed on a cluster`);
    const tail = [String(keys.length), ...keys, ...args];
    try {
      try {
        return (await this.client.send(first, ['EVALSHA', script.sha1, ...tail], this.commandOptions)) as RedisReply;
      } catch (error) {
        // Each server loads a script once; after a restart (or on a shard seen for the first time) again.
        if (!isNoScript(error)) throw error;
        return (await this.client.send(first, ['EVAL', script.source, ...tail], this.commandOptions)) as RedisReply;
      }
    } catch (error) {
      throw redisFault(error, `script ${script.name}`);
    }
  }

  dedicated(): Promise<RedisConnection> {
    if (this.closed) return Promise.reject(unavailable('redis connection is closed'));
    return open(this.client.duplicate(), this.options);
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, 1_000);
      });
      await Promise.race([this.client.close().catch(() => undefined), grace]);
      clearTimeout(timer);
      this.destroy();
    })();
    return this.closing;
  }

  destroy(): void {
    this.closed = true;
    destroyQuietly(this.client);
  }
}

/** Closing what may already be closed (or never opened): the client throws then, and there is nothing left to do. */
function destroyQuietly(client: Client): void {
  try {
    client.destroy();
  } catch {
    // Already closed.
  }
}
