/**
 * Every process the bench starts goes through here, so every one of them is
 * stopped by its pid: at the end, on an error, on Ctrl-C, and (SIGKILL, from
 * the synchronous `exit` hook) even when the bench itself dies on a throw.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Hello, Reply, Request } from './ipc';

const started = new Set<IpcChild>();
/** Children started by other helpers (the cluster shape's nodes), killed by pid with the rest. */
const tracked = new Set<ChildProcess>();

/** Makes `child` one of the processes stopped by `stopAll` and the exit guards. */
export function track(child: ChildProcess): void {
  tracked.add(child);
  child.once('exit', () => tracked.delete(child));
}
/**
 * Processes started by a child of ours rather than by us (nginx's workers, whose
 * master the bench spawned), with a check that the pid is still that process
 * and not a reuse: SIGKILLed with the rest, since a worker outlives a killed master.
 */
const trackedPids = new Map<number, (pid: number) => boolean>();

/** Makes `pid` one of the processes stopped by `stopAll` and the exit guards, while `isStill(pid)` holds. */
export function trackPid(pid: number, isStill: (pid: number) => boolean): void {
  trackedPids.set(pid, isStill);
}

export function untrackPid(pid: number): void {
  trackedPids.delete(pid);
}

/** SIGKILLs every tracked pid that is still the process it was. */
function killTrackedPids(): void {
  for (const [pid, isStill] of trackedPids) {
    try {
      if (isStill(pid)) process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  trackedPids.clear();
}
/** Children spawned but not yet said hello: still ours to kill. */
const orphans = new Set<{ readonly label: string; readonly process: ChildProcess }>();

export interface SpawnOptions {
  readonly label: string;
  readonly args: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  /** How long to wait for the child's hello. */
  readonly startTimeoutMs: number;
}

export class IpcChild {
  private sequence = 0;
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  private exited = false;

  private constructor(
    readonly label: string,
    readonly process: ChildProcess,
    readonly hello: Hello,
  ) {
    process.on('message', (message: Reply) => {
      const waiter = this.pending.get(message.id);
      if (!waiter) return;
      this.pending.delete(message.id);
      if (message.ok) waiter.resolve(message.result);
      else waiter.reject(new Error(`${label}: ${message.error}`));
    });
    process.once('exit', (code, signal) => {
      this.exited = true;
      for (const waiter of this.pending.values()) waiter.reject(new Error(`${label} exited (code ${code}, signal ${signal}) before replying`));
      this.pending.clear();
    });
  }

  /** Starts `node <args>` with an IPC channel and waits for its hello. */
  static async spawn(options: SpawnOptions): Promise<IpcChild> {
    const child = spawn(process.execPath, options.args, {
      env: options.env,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'advanced',
    });
    const placeholder = { label: options.label, process: child } as const;
    orphans.add(placeholder);
    try {
      const hello = await new Promise<Hello>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${options.label} did not start within ${options.startTimeoutMs} ms`)), options.startTimeoutMs);
        child.once('message', (message: Hello) => {
          clearTimeout(timer);
          resolve(message);
        });
        child.once('error', (error) => {
          clearTimeout(timer);
          reject(error);
        });
        child.once('exit', (code, signal) => {
          clearTimeout(timer);
          reject(new Error(`${options.label} exited during start (code ${code}, signal ${signal})`));
        });
      });
      const ipc = new IpcChild(options.label, child, hello);
      started.add(ipc);
      return ipc;
    } catch (error) {
      kill(child, 'SIGKILL');
      throw error;
    } finally {
      orphans.delete(placeholder);
    }
  }

  get alive(): boolean {
    return !this.exited && this.process.exitCode === null && this.process.signalCode === null;
  }

  request<T>(cmd: string, fields: Record<string, unknown>, timeoutMs: number): Promise<T> {
    if (!this.alive) return Promise.reject(new Error(`${this.label} is not running`));
    const id = ++this.sequence;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${this.label} to answer ${cmd}`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value as T);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      const message: Request = { ...fields, id, cmd };
      this.process.send(message);
    });
  }

  /** SIGTERM, then SIGKILL if it is still there after `graceMs`. */
  async stop(graceMs = 2000): Promise<void> {
    started.delete(this);
    if (!this.alive) return;
    const exited = new Promise<void>((resolve) => this.process.once('exit', () => resolve()));
    kill(this.process, 'SIGTERM');
    const timer = setTimeout(() => kill(this.process, 'SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }
}

function kill(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(child.pid, signal);
  } catch {
    // Already gone.
  }
}

/** Stops every child still running, each by its pid. */
export async function stopAll(): Promise<void> {
  await Promise.all([...started].map((child) => child.stop()));
  for (const orphan of orphans) kill(orphan.process, 'SIGKILL');
  for (const child of tracked) kill(child, 'SIGKILL');
  killTrackedPids();
}

/**
 * Ctrl-C and SIGTERM stop the children before the bench exits; the `exit` hook
 * is the last resort, synchronous, so it can only SIGKILL.
 */
export function installExitGuards(log: (line: string) => void): void {
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) process.exit(130);
    interrupted = true;
    log(`${signal}: stopping the processes this bench started…`);
    void stopAll().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', () => {
    for (const child of started) kill(child.process, 'SIGKILL');
    for (const orphan of orphans) kill(orphan.process, 'SIGKILL');
    for (const child of tracked) kill(child, 'SIGKILL');
    killTrackedPids();
  });
}
