/**
 * The node bundle for tests and the benchmark: built once per file under a
 * lock, and spawned with a clean environment. The process handle, ChildNode,
 * is scripts/fleet/child-node.ts (`npm run cluster` uses it too).
 */
import { execFile, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ChildNode } from '../../scripts/fleet/child-node';

const root = new URL('../../', import.meta.url).pathname;
const LOCK = join(tmpdir(), `herald-build-${Buffer.from(root).toString('base64url').slice(-40)}.lock`);
const STALE_LOCK_MS = 120_000;

export interface BuiltEntry {
  /** A private copy of dist/herald-node.mjs, as `node scripts/build.mjs` made it. */
  readonly path: string;
  dispose(): void;
}

/**
 * Runs `node scripts/build.mjs` and returns a private copy of the bundle.
 *
 * Test files run in parallel workers and may each build: a lock keeps two
 * builds from writing dist/ at once, and the copy keeps a later build from
 * rewriting the file while this file's child process is loading it.
 */
export async function buildEntryPoint(): Promise<BuiltEntry> {
  await acquireLock();
  try {
    await promisify(execFile)(process.execPath, [join(root, 'scripts/build.mjs')], { cwd: root, timeout: 60_000 });
    const dir = mkdtempSync(join(tmpdir(), 'herald-entry-'));
    const path = join(dir, 'herald-node.mjs');
    copyFileSync(join(root, 'dist/herald-node.mjs'), path);
    if (existsSync(join(root, 'dist/herald-node.mjs.map'))) copyFileSync(join(root, 'dist/herald-node.mjs.map'), `${path}.map`);
    return { path, dispose: () => rmSync(dir, { recursive: true, force: true }) };
  } finally {
    rmSync(LOCK, { recursive: true, force: true });
  }
}

async function acquireLock(): Promise<void> {
  const until = Date.now() + 90_000;
  for (;;) {
    try {
      mkdirSync(LOCK);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      try {
        if (Date.now() - statSync(LOCK).mtimeMs > STALE_LOCK_MS) rmSync(LOCK, { recursive: true, force: true });
      } catch {
        // Released between the two calls: try again.
      }
      if (Date.now() > until) throw new Error(`timed out waiting for the build lock ${LOCK}`, { cause: error });
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/**
 * Spawns `node <entry>` with only `env` (and PATH): the node must not pick up
 * HERALD_* settings from the machine running the tests. The working directory
 * is a fresh temporary one, so nothing is written into the repository.
 */
export function spawnChildNode(entry: string, env: Record<string, string>): ChildNode {
  const cwd = mkdtempSync(join(tmpdir(), 'herald-cwd-'));
  const child = spawn(process.execPath, [entry], {
    cwd,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.on('close', () => rmSync(cwd, { recursive: true, force: true }));
  return new ChildNode(child);
}
