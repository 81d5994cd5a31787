// Makes sure Debian's redis-server (and redis-cli, from redis-tools, which the
// package depends on) is installed for the Redis tests, which start real
// servers and build a small cluster with redis-cli. As root it installs the `redis-server` package
// with apt-get; otherwise it stops with a message naming the package. Plain
// Node, standard library only.
//
//   node scripts/ensure-redis.mjs        exit 0 when /usr/bin/redis-server is there
import { existsSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

/** Where Debian's packages put them; test/support/redis-server.ts runs these paths. */
export const REDIS_SERVER_PATH = process.env.HERALD_REDIS_SERVER ?? '/usr/bin/redis-server';
export const REDIS_CLI_PATH = process.env.HERALD_REDIS_CLI ?? '/usr/bin/redis-cli';

const installed = () => existsSync(REDIS_SERVER_PATH) && existsSync(REDIS_CLI_PATH);

const apt = (args) => {
  console.error(`[herald] apt-get ${args.join(' ')}`);
  return spawnSync('apt-get', args, {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  }).status;
};

/** apt-get install fails on a machine whose package lists were never fetched (or were cleaned). */
function packageListsPresent() {
  try {
    return readdirSync('/var/lib/apt/lists').some((name) => name.endsWith('_Packages') || name.endsWith('_Packages.lz4'));
  } catch {
    return false;
  }
}

export function ensureRedis() {
  if (installed()) return REDIS_SERVER_PATH;
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!root) {
    throw new Error(
      `redis-server or redis-cli is missing (${REDIS_SERVER_PATH}, ${REDIS_CLI_PATH}). The Redis tests use Debian's \`redis-server\` package: ` +
        'install it with `sudo apt-get install -y redis-server` (or set HERALD_REDIS_SERVER to a redis-server binary), then run the tests again.',
    );
  }
  console.error("[herald] installing Debian's redis-server package for the Redis tests…");
  if (!packageListsPresent() && apt(['update']) !== 0) throw new Error('apt-get update failed');
  let status = apt(['install', '-y', 'redis-server']);
  // Stale lists name package versions the mirror no longer has: refresh once and retry.
  if (status !== 0 && apt(['update']) === 0) status = apt(['install', '-y', 'redis-server']);
  if (status !== 0) throw new Error(`apt-get install -y redis-server failed (exit ${status}); install Debian's \`redis-server\` package by hand`);
  if (!installed()) throw new Error(`redis-server is installed, but ${REDIS_SERVER_PATH} or ${REDIS_CLI_PATH} is still missing`);
  return REDIS_SERVER_PATH;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    console.error(`[herald] redis-server: ${ensureRedis()}`);
  } catch (error) {
    console.error(`[herald] ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  }
}
