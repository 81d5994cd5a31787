import { spawnSync } from 'node:child_process';

const root = new URL('../../', import.meta.url).pathname;

/** Before the Redis tests, once: Debian's redis-server (installed as root when missing, a clear error otherwise). */
export default function setup(): void {
  const result = spawnSync(process.execPath, [`${root}scripts/ensure-redis.mjs`], { stdio: 'inherit' });
  if (result.status !== 0) throw new Error(`scripts/ensure-redis.mjs failed (exit ${result.status ?? result.signal ?? 'unknown'})`);
}
