/**
 * A node process (the built entry, `dist/herald-node.mjs`) as a child of this
 * one, with its output collected line by line: what `npm run cluster`'s nodes
 * are, and what the tests and the benchmark start. Spawning is the caller's
 * (cluster.ts, test/support/child-node.ts); stopping is by pid.
 */
import type { ChildProcess } from 'node:child_process';
import { withDeadline } from './deadline';

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
