import { spawnSync } from 'node:child_process';

const root = new URL('../../', import.meta.url).pathname;

function run(script: string): void {
  const result = spawnSync(process.execPath, [`${root}scripts/${script}`], { stdio: 'inherit' });
  if (result.status !== 0) throw new Error(`scripts/${script} failed (exit ${result.status ?? result.signal ?? 'unknown'})`);
}

/**
 * Before the package tests, once: the tarballs as `npm run pack` builds them
 * (dist/packages/*.tgz, from the current sources), and Debian's Chromium for
 * the test that loads @herald/client in a real browser.
 */
export default function setup(): void {
  run('ensure-chromium.mjs');
  run('pack.mjs');
}
