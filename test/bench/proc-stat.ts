/**
 * CPU and memory of a process the bench did not write (nginx), from /proc:
 * `/proc/<pid>/stat` for CPU time (utime + stime, in clock ticks), parent and
 * name; `/proc/<pid>/status` for VmRSS; `/proc/<pid>/smaps_rollup` for Pss
 * (shared pages split between the processes that map them). Linux only.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

export interface ProcStat {
  readonly pid: number;
  /** The executable's name as the kernel keeps it (at most 15 characters). */
  readonly comm: string;
  readonly state: string;
  readonly ppid: number;
  /** Clock ticks in user and kernel mode. */
  readonly utimeTicks: number;
  readonly stimeTicks: number;
  /** Clock ticks after boot when it started: with the pid, names one process even if pids are reused. */
  readonly startTicks: number;
}

/**
 * Parses one `/proc/<pid>/stat` line. The name sits in parentheses and may hold
 * spaces or parentheses itself, so fields are counted from the last `)`.
 */
export function parseProcStat(text: string): ProcStat {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) throw new Error(`not a /proc/<pid>/stat line: ${text.slice(0, 80)}`);
  // Fields 3 onwards (state, ppid, …): field n is rest[n - 3].
  const rest = text.slice(close + 2).trim().split(/\s+/);
  const field = (n: number): number => {
    const value = Number(rest[n - 3]);
    if (!Number.isFinite(value)) throw new Error(`/proc/<pid>/stat field ${n} is not a number: ${text.slice(0, 80)}`);
    return value;
  };
  return {
    pid: Number(text.slice(0, open).trim()),
    comm: text.slice(open + 1, close),
    state: rest[0] ?? '?',
    ppid: field(4),
    utimeTicks: field(14),
    stimeTicks: field(15),
    startTicks: field(22),
  };
}

/** A `Name:   123 kB` line of /proc/<pid>/status or smaps_rollup, in bytes; undefined when absent. */
export function parseKbField(text: string, name: string): number | undefined {
  const match = new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(text);
  return match ? Number(match[1]) * 1024 : undefined;
}

/** `getconf CLK_TCK`: the unit of utime and stime (100 on Linux: 10 ms ticks). */
export function clockTicksPerSecond(): number {
  try {
    const value = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    if (Number.isInteger(value) && value > 0) return value;
  } catch {
    // getconf missing: Linux's USER_HZ is 100 on every architecture the bench runs on.
  }
  return 100;
}

export function readProcStat(pid: number): ProcStat | undefined {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** The pids whose parent is `ppid`, by scanning /proc. */
export function childrenOf(ppid: number): ProcStat[] {
  const children: ProcStat[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readProcStat(Number(name));
    if (stat?.ppid === ppid) children.push(stat);
  }
  return children;
}

export interface ProcMemory {
  /** VmRSS: resident pages, shared ones (nginx's shared memory zone) counted in full. */
  readonly rss: number;
  /** Pss: shared pages divided between the processes mapping them; undefined where the kernel has no smaps_rollup. */
  readonly pss: number | undefined;
}

export function readProcMemory(pid: number): ProcMemory | undefined {
  try {
    const rss = parseKbField(readFileSync(`/proc/${pid}/status`, 'utf8'), 'VmRSS');
    if (rss === undefined) return undefined;
    let pss: number | undefined;
    try {
      pss = parseKbField(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'), 'Pss');
    } catch {
      pss = undefined;
    }
    return { rss, pss };
  } catch {
    return undefined;
  }
}
