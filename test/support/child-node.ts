import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { withDeadline } from './deadline';

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

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly atMs: number;
}

/** The built node running as a child process, with its output collected line by line. */
export class ChildNode {
  /** stdout JSON log lines, parsed (lines that are not JSON are kept as `{ raw }`). */
  readonly logs: Array<Record<string, unknown>> = [];
  readonly stderrLines: string[] = [];
  readonly exited: Promise<Exit>;
  exit: Exit | undefined;
  private waiters: Array<() => void> = [];

  constructor(readonly child: ChildProcess) {
    this.exited = new Promise<Exit>((resolve) => {
      // 'close', not 'exit': by then stdout and stderr are fully read.
      child.on('close', (code, signal) => {
        this.exit = { code, signal, atMs: Date.now() };
        resolve(this.exit);
        this.wake();
      });
    });
    readLines(child.stdout, (line) => {
      try {
        this.logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        this.logs.push({ raw: line });
      }
      this.wake();
    });
    readLines(child.stderr, (line) => this.stderrLines.push(line));
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** The URL from the `http.listening` log line (port 0 binds a free port). */
  async url(timeoutMs = 10_000): Promise<string> {
    const line = await this.waitFor((l) => l.event === 'http.listening' && typeof l.url === 'string', timeoutMs, 'the child node to log http.listening');
    return line.url as string;
  }

  /** The first stdout log line that matches, waiting for it; rejects if the process exits first. */
  async waitFor(match: (line: Record<string, unknown>) => boolean, timeoutMs = 10_000, what = 'a matching log line'): Promise<Record<string, unknown>> {
    return withDeadline(
      (async () => {
        for (;;) {
          const line = this.logs.find(match);
          if (line) return line;
          if (this.exit) throw new Error(`the node exited (${this.exit.code ?? this.exit.signal}) before ${what}: ${this.stderrLines.join('\n')}`);
          await new Promise<void>((resolve) => this.waiters.push(resolve));
        }
      })(),
      timeoutMs,
      what,
    );
  }

  signal(signal: NodeJS.Signals): void {
    process.kill(this.pid, signal);
  }

  /** Kills the process by its pid if it is still running, and waits for it to go. */
  async stop(): Promise<void> {
    if (this.exit || this.child.pid === undefined) return;
    process.kill(this.child.pid, 'SIGKILL');
    await withDeadline(this.exited, 5000, 'the child node to exit after SIGKILL');
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}

function readLines(stream: NodeJS.ReadableStream | null, onLine: (line: string) => void): void {
  if (!stream) return;
  let buffer = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buffer += chunk;
    let newline: number;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      if (line.trim() !== '') onLine(line);
    }
  });
  stream.on('end', () => {
    if (buffer.trim() !== '') onLine(buffer);
  });
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
