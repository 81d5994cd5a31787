// `npm start`: install what is missing, build, and run the node in the
// foreground with `--enable-source-maps` so stack traces point at the sources.
import { spawn, spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const run = (script) => {
  const result = spawnSync(process.execPath, [`${root}scripts/${script}`], { stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
};
run('ensure-deps.mjs');
run('build.mjs');

const child = spawn(process.execPath, ['--enable-source-maps', `${root}dist/herald-node.mjs`], { stdio: 'inherit' });
// The node drains on SIGTERM/SIGINT; pass them on instead of dying first.
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
