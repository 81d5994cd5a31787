// `npm test`: installs what is missing, runs every vitest project (arguments
// are passed on, e.g. `npm test -- --project unit`), and ends with one plain
// summary line, `Tests: N passed, N failed, N skipped`, that any CI can read.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';

const root = new URL('..', import.meta.url).pathname;
const run = (command, args) => spawnSync(command, args, { cwd: root, stdio: 'inherit' }).status ?? 1;

const installed = run(process.execPath, [`${root}scripts/ensure-deps.mjs`]);
if (installed !== 0) process.exit(installed);

const results = `${root}test-output/vitest-results.json`;
mkdirSync(`${root}test-output`, { recursive: true });
rmSync(results, { force: true });
const vitest = `${root}node_modules/.bin/vitest`;
const status = run(vitest, ['run', '--reporter=default', '--reporter=json', `--outputFile.json=${results}`, ...process.argv.slice(2)]);

if (existsSync(results)) {
  const report = JSON.parse(readFileSync(results, 'utf8'));
  const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
  console.log(`\nTests: ${report.numPassedTests} passed, ${report.numFailedTests} failed, ${skipped} skipped`);
}
process.exit(status);
