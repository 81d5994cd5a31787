import { spawnSync } from 'node:child_process';

const root = new URL('../../', import.meta.url).pathname;

function run(script: string): void {
  const result = spawnSync(process.execPath, [`${root}scripts/${script}`], { stdio: 'inherit' });
  if (result.status !== 0) throw new Error(`scripts/${script} failed (exit ${result.status ?? result.signal ?? 'unknown'})`);
}

/**
 * Before the browser tests, once: Debian's Chromium (installed as root when
 * missing, a clear error otherwise), and the build, so the node serves the
 * current client bundle at /herald-client.js.
 */
export default function setup(): void {
  run('ensure-chromium.mjs');
  run('build.mjs');
}
