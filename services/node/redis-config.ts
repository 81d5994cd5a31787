/**
 * The redis mode's settings: where Redis is, and the prefix of every key.
 * URLs may carry a password, so no message here ever repeats a value: a
 * refusal names the variable (and the entry of a list) and what is wrong.
 */
import { ConfigError, type EnvReader } from '../shared/settings';

/** One server (its URL may name a database), or the seed nodes of a Redis Cluster. */
export type RedisTarget = { readonly kind: 'server'; readonly url: string } | { readonly kind: 'cluster'; readonly seeds: readonly string[] };

export interface RedisConfig {
  /** Its URLs may hold a password: never log them. */
  readonly target: RedisTarget;
  /** Starts every key, so that several deployments can share one Redis. */
  readonly keyPrefix: string;
}

export const DEFAULT_REDIS_PREFIX = 'herald:';

const URL_SHAPE = 'redis://[user[:password]@]host[:port][/database] (or rediss:// for TLS)';
/** Printable ASCII but spaces and braces: a brace would make the prefix the hash tag of every key, one cluster slot for all. */
const PREFIX_PATTERN = /^[\x21-\x7A\x7C\x7E]{1,64}$/;
/** Redis's own ceiling for the `databases` setting. */
const MAX_DATABASE = 2_147_483_647;

export function readRedis(read: EnvReader): RedisConfig {
  const url = read.raw('HERALD_REDIS_URL');
  const seeds = read.raw('HERALD_REDIS_CLUSTER_NODES');
  if (url !== undefined && seeds !== undefined) {
    throw new ConfigError('HERALD_REDIS_CLUSTER_NODES', 'set either HERALD_REDIS_URL (one server) or HERALD_REDIS_CLUSTER_NODES (a cluster), not both');
  }
  if (url === undefined && seeds === undefined) {
    throw new ConfigError('HERALD_REDIS_URL', 'or HERALD_REDIS_CLUSTER_NODES is required in redis mode');
  }
  const keyPrefix = read.raw('HERALD_REDIS_PREFIX') ?? DEFAULT_REDIS_PREFIX;
  if (!PREFIX_PATTERN.test(keyPrefix)) {
    throw new ConfigError('HERALD_REDIS_PREFIX', 'is 1-64 printable ASCII characters without spaces, "{" or "}" (a brace would put every key in one cluster slot)');
  }
  if (url !== undefined) {
    checkUrl('HERALD_REDIS_URL', url, 'server');
    return { target: { kind: 'server', url }, keyPrefix };
  }
  return { target: { kind: 'cluster', seeds: readSeeds(seeds!) }, keyPrefix };
}

function readSeeds(list: string): string[] {
  const name = 'HERALD_REDIS_CLUSTER_NODES';
  const entries = list.split(',').map((entry) => entry.trim());
  const urls = entries.map((entry, i) => {
    if (entry === '') throw new ConfigError(name, `entry ${i + 1} is empty: give comma-separated URLs, ${URL_SHAPE}`);
    return checkUrl(name, entry, 'cluster', i + 1);
  });
  // The client connects to the nodes it discovers with the seeds' TLS and credentials: one set for all.
  const first = urls[0]!;
  const differs = urls.findIndex((u) => u.protocol !== first.protocol || u.username !== first.username || u.password !== first.password);
  if (differs >= 0) throw new ConfigError(name, `entry ${differs + 1} differs from entry 1 in its scheme, user or password; every node of a cluster is reached with the same ones`);
  return entries;
}

/** A `redis:` or `rediss:` URL with a host; a database number only for a single server. `entry` numbers an entry of a list. */
function checkUrl(name: string, value: string, kind: 'server' | 'cluster', entry?: number): URL {
  const what = entry === undefined ? '' : `entry ${entry} `;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(name, `${what}is not a URL: expected ${URL_SHAPE}`);
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    // Not even the scheme it has: in a mistyped value it may be part of the password.
    throw new ConfigError(name, `${what}must start with redis:// or rediss://`);
  }
  if (url.hostname === '') throw new ConfigError(name, `${what}names no host: expected ${URL_SHAPE}`);
  if (url.search !== '' || url.hash !== '') throw new ConfigError(name, `${what}takes no query or fragment: expected ${URL_SHAPE}`);
  const path = url.pathname;
  if (path !== '' && path !== '/') {
    if (kind === 'cluster') throw new ConfigError(name, `${what}names a database: Redis Cluster has only database 0, so give none`);
    const database = /^\/(\d{1,10})$/.exec(path)?.[1];
    if (database === undefined || Number(database) > MAX_DATABASE) {
      throw new ConfigError(name, `${what}has a path that is not a database number (0-${MAX_DATABASE}): expected ${URL_SHAPE}`);
    }
  }
  return url;
}
