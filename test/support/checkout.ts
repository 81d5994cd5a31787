/**
 * A checkout of the repository in a temporary directory, for tests that run
 * the project's own commands (`npm start`, `npm run cluster`) as a user does,
 * without writing into the repository (dist/, .herald/). The dependencies are
 * linked from the repository, never installed.
 */
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChildNode } from '../../scripts/fleet/child-node';
import { withDeadline } from '../../scripts/fleet/deadline';

const root = new URL('../../', import.meta.url).pathname;

export interface Checkout {
  readonly dir: string;
  /**
   * Runs `npm <args>` in the checkout, in a process group of its own as a
   * terminal's foreground job is (so `process.kill(-pid, 'SIGINT')` is a
   * Ctrl-C), with only `env` (and PATH, HOME).
   */
  npm(args: readonly string[], env: Readonly<Record<string, string>>): ChildNode;
  dispose(): void;
}

/**
 * Copies what the commands need: the manifests, scripts and sources. Never
 * test/: no user command may depend on it (`npm run cluster` runs from scripts/fleet/).
 */
export function makeCheckout(): Checkout {
  const dir = mkdtempSync(join(tmpdir(), 'herald-checkout-'));
  for (const file of ['package.json', 'package-lock.json', 'tsconfig.json']) cpSync(join(root, file), join(dir, file));
  for (const sub of ['scripts', 'services', 'docs']) if (existsSync(join(root, sub))) cpSync(join(root, sub), join(dir, sub), { recursive: true });
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'), 'dir');
  // npm ci in a checkout whose node_modules is a link would empty the real one: nothing to install here.
  writeFileSync(join(dir, 'scripts/ensure-deps.mjs'), '// The dependencies are linked from the repository.\n');
  mkdirSync(join(dir, 'dist'), { recursive: true });
  return {
    dir,
    npm: (args, env) =>
      new ChildNode(
        spawn('npm', [...args], {
          cwd: dir,
          detached: true,
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? dir, ...env },
        }),
      ),
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Pids of every process below `pid`, from /proc (Linux). */
function descendants(pid: number): number[] {
  const parents = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // The parent pid is the 4th field, after the command name in parentheses (which may hold spaces).
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parents.set(ppid, [...(parents.get(ppid) ?? []), Number(name)]);
    } catch {
      // Gone meanwhile.
    }
  }
  const found: number[] = [];
  const walk = (parent: number): void => {
    for (const child of parents.get(parent) ?? []) {
      found.push(child);
      walk(child);
    }
  };
  walk(pid);
  return found;
}

/**
 * Snapshots the processes of a command started by `Checkout.npm` (npm and
 * everything below it, once they run), and returns what kills them all by pid
 * when a test ends early. Its nodes run in process groups of their own, which
 * killing npm's group would miss, and a node orphaned by a faulty stop would
 * no longer be found below npm: hence the snapshot.
 */
export function processTree(npm: ChildNode): () => Promise<void> {
  const pids = [npm.pid, ...descendants(npm.pid)];
  return async () => {
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    await withDeadline(npm.exited, 5_000, `npm (pid ${npm.pid}) to exit`);
  };
}
