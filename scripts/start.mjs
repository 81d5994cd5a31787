// `npm start`: install what is missing, build, and run the node in the
// foreground with `--enable-source-maps` so stack traces point at the sources.
import { spawn, spawnSync } from 'node:child_process';
import { onStopPresses } from './stop-signals.mjs';

const root = new URL('..', import.meta.url).pathname;
const run = (script) => {
  const result = spawnSync(process.execPath, [`${root}scripts/${script}`], { stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
};
run('ensure-deps.mjs');
run('build.mjs');

// In a process group of its own, so that a Ctrl-C reaches the node only as
// this script passes it on: once per press. The terminal's copy and npm's copy
// would otherwise arrive as two, and the node takes a second signal as "exit
// now, skip the drain". It never reads the terminal, so stdin is closed.
const child = spawn(process.execPath, ['--enable-source-maps', `${root}dist/herald-node.mjs`], { stdio: ['ignore', 'inherit', 'inherit'], detached: true });
// The first press drains the node; a second one makes it exit at once.
onStopPresses((signal) => {
  if (child.exitCode === null && child.signalCode === null) child.kill(signal === 'SIGHUP' ? 'SIGTERM' : signal);
});
// Should this script end first (an uncaught error), the node, in a group of its own, must not outlive it.
process.on('exit', () => {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
