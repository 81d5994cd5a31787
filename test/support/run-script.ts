import { spawnSync } from 'node:child_process';

const root = new URL('../../', import.meta.url).pathname;

/** Runs `scripts/<script>` with this Node, for a vitest global setup; throws when it fails. */
export function runScript(script: string): void {
  const result = spawnSync(process.execPath, [`${root}scripts/${script}`], { stdio: 'inherit' });
  if (result.status !== 0) throw new Error(`scripts/${script} failed (exit ${result.status ?? result.signal ?? 'unknown'})`);
}
