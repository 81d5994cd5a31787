import { runScript } from '../support/run-script';

/** Before the Redis tests, once: Debian's redis-server (installed as root when missing, a clear error otherwise). */
export default function setup(): void {
  runScript('ensure-redis.mjs');
}
