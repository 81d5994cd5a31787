/**
 * Reads a V8 .cpuprofile and lists the functions with the most self time,
 * each named with the source module it came from: esbuild marks every module
 * in the bundle with a `// path/to/module.ts` comment, and the profile's line
 * numbers point into the bundle.
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface CpuProfile {
  readonly nodes: ReadonlyArray<{ readonly id: number; readonly callFrame: CallFrame }>;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface HotSpot {
  readonly functionName: string;
  readonly where: string;
  readonly selfMs: number;
  /** Share of the profiled time the process was not idle. */
  readonly percent: number;
}

export interface ProfileSummary {
  readonly path: string;
  /** The phase it recorded: `connect` or `sustained`. */
  readonly phase: string;
  readonly busyMs: number;
  readonly idleMs: number;
  readonly top: HotSpot[];
  /** Self time summed by module (source file, Node internal, or native). */
  readonly modules: Array<{ readonly where: string; readonly selfMs: number; readonly percent: number }>;
}

/** Line (0-based) → module, from the bundle's `// module` markers. */
function moduleIndex(bundlePath: string): (line: number) => string {
  const markers: Array<{ line: number; module: string }> = [];
  readFileSync(bundlePath, 'utf8')
    .split('\n')
    .forEach((text, line) => {
      const match = /^\/\/ ((?:services|test|node_modules)\/\S+\.[cm]?[jt]s)$/.exec(text);
      if (match) markers.push({ line, module: match[1]! });
    });
  return (line) => {
    let lo = 0;
    let hi = markers.length - 1;
    let found = 'bundle';
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (markers[mid]!.line <= line) {
        found = markers[mid]!.module;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  };
}

export function summarizeProfile(path: string, bundlePath: string, phase: string, top = 20): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const bundleUrl = pathToFileURL(bundlePath).href;
  const moduleOf = moduleIndex(bundlePath);
  const frames = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));

  // Sample i lasts until sample i+1 (as DevTools counts it).
  const selfUs = new Map<number, number>();
  for (let i = 0; i < profile.samples.length - 1; i++) {
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i + 1] ?? 0));
  }

  const byFunction = new Map<string, { functionName: string; where: string; us: number }>();
  let idleUs = 0;
  let busyUs = 0;
  for (const [id, us] of selfUs) {
    const frame = frames.get(id);
    if (!frame) continue;
    if (frame.functionName === '(idle)') {
      idleUs += us;
      continue;
    }
    busyUs += us;
    const where = frame.url === bundleUrl ? moduleOf(frame.lineNumber) : frame.url || 'native';
    const functionName = frame.functionName || '(anonymous)';
    const key = `${functionName}@${where}:${frame.url === bundleUrl ? frame.lineNumber : ''}`;
    const entry = byFunction.get(key) ?? { functionName, where, us: 0 };
    entry.us += us;
    byFunction.set(key, entry);
  }
  const share = (us: number): number => (busyUs > 0 ? (100 * us) / busyUs : 0);
  const ranked = [...byFunction.values()].sort((a, b) => b.us - a.us).slice(0, top);
  const byModule = new Map<string, number>();
  for (const entry of byFunction.values()) byModule.set(entry.where, (byModule.get(entry.where) ?? 0) + entry.us);
  return {
    path,
    phase,
    busyMs: busyUs / 1000,
    idleMs: idleUs / 1000,
    top: ranked.map((e) => ({ functionName: e.functionName, where: e.where, selfMs: e.us / 1000, percent: share(e.us) })),
    modules: [...byModule]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([where, us]) => ({ where, selfMs: us / 1000, percent: share(us) })),
  };
}
