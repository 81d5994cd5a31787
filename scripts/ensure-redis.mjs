// Makes sure Debian's redis-server (and redis-cli, from redis-tools, which the
// package depends on) is installed for the Redis tests, which start real
// servers and build a small cluster with redis-cli. As root it installs the
// `redis-server` package with apt-get; otherwise it stops with a message naming
// the package. Plain Node, standard library only.
//
//   node scripts/ensure-redis.mjs        exit 0 when /usr/bin/redis-server is there
import { ensureDebianPackage, runAsScript } from './debian-package.mjs';

/** Where Debian's packages put them; scripts/fleet/redis-server.ts runs these paths. */
export const REDIS_SERVER_PATH = process.env.HERALD_REDIS_SERVER ?? '/usr/bin/redis-server';
export const REDIS_CLI_PATH = process.env.HERALD_REDIS_CLI ?? '/usr/bin/redis-cli';

export function ensureRedis() {
  ensureDebianPackage({
    pkg: 'redis-server',
    paths: [REDIS_SERVER_PATH, REDIS_CLI_PATH],
    purpose: 'Redis tests',
    override: 'HERALD_REDIS_SERVER and HERALD_REDIS_CLI to the binaries',
  });
  return REDIS_SERVER_PATH;
}

runAsScript(import.meta.url, 'redis-server', ensureRedis);
